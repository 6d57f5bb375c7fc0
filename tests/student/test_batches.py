"""KJT batch construction from tiny literal frames."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torchrec  # noqa: F401  (a broken install must fail the suite, never skip it)

from recsys.student.batches import histories, item_features, make_batch, next_item_examples

ITEMS = pl.DataFrame({"item": [0, 1, 2], "brand": ["acme", None, "zeta"],
                      "categories": [["Makeup", "Lips"], ["Makeup"], []]},
                     schema={"item": pl.Int32, "brand": pl.String, "categories": pl.List(pl.String)})
TRAIN = pl.DataFrame({"user": [0, 0, 0, 1, 1], "item": [0, 1, 2, 2, 0], "pos": [0, 1, 2, 0, 1]})


def test_features_and_examples() -> None:
    f = item_features(ITEMS, TRAIN, text=None)
    assert f.brand.tolist() == [0, -1, 1] and f.n_brands == 2
    assert f.cat_ptr.tolist() == [0, 2, 3, 3] and f.cat_vals.tolist() == [0, 1, 0]  # Makeup, Makeup>Lips
    assert f.train_count.tolist() == [2, 1, 2]
    h = histories(TRAIN, n_users=3)  # user 2 has no events
    assert h.ptr.tolist() == [0, 3, 5, 5] and h.items.tolist() == [0, 1, 2, 2, 0]
    users, pos = next_item_examples(h)
    assert users.tolist() == [0, 0, 1] and pos.tolist() == [1, 2, 4]  # targets 1, 2 (user 0) and 0 (user 1)


def test_kjt_layout() -> None:
    f = item_features(ITEMS, TRAIN, text=np.eye(3, dtype=np.float32))
    h = histories(TRAIN, n_users=2)
    users, pos = next_item_examples(h)
    b = make_batch(feats=f, users=users, starts=h.ptr[users], ends=pos, flat=h.items, items=h.items[pos],
                   keep_id=np.array([1, 0, 1]), history_len=50, recent_len=1)
    d = b.kjt.to_dict()
    rows = {k: [v.tolist() for v in d[k].to_dense()] for k in d}
    assert b.n_user_rows == 3 and b.kjt.stride() == 6
    assert rows["hist_item"] == [[0], [0, 1], [2], [], [], []]
    assert rows["recent_item"] == [[0], [1], [2], [], [], []]
    assert rows["hist_brand"] == [[0], [0], [1], [], [], []]  # item 1 has no brand
    assert rows["hist_cat"] == [[0, 1], [0, 1, 0], [], [], [], []]
    assert rows["user"] == [[0], [0], [0], [], [], []]  # no user-id table: dummy row 0
    assert rows["item"] == [[], [], [], [1], [2], [0]]
    assert rows["brand"] == [[], [], [], [], [1], [0]]
    assert rows["cat"] == [[], [], [], [0], [], [0, 1]]
    assert b.keep_id.tolist() == [1.0, 0.0, 1.0]
    assert b.text is not None and b.text.tolist() == [[0, 1, 0], [0, 0, 1], [1, 0, 0]]


def test_history_truncation_keeps_the_last_items() -> None:
    f = item_features(ITEMS, TRAIN, text=None)
    h = histories(TRAIN, n_users=2)
    b = make_batch(feats=f, users=np.array([0]), starts=h.ptr[:1], ends=h.ptr[1:2], flat=h.items,
                   items=np.zeros(0, np.int64), history_len=2, recent_len=1, user_ids=True)
    d = b.kjt.to_dict()
    assert d["hist_item"].to_dense()[0].tolist() == [1, 2]
    assert d["recent_item"].to_dense()[0].tolist() == [2]
    assert d["user"].to_dense()[0].tolist() == [0]


# user 0: items 0, 1, 2 at t 10, 20, 30; user 1: 2, 0, 1 at 15, 25, 35; user 2: 1, 2 at 5, 40
TIMED = pl.DataFrame({"user": [0, 0, 0, 1, 1, 1, 2, 2], "item": [0, 1, 2, 2, 0, 1, 1, 2],
                      "pos": [0, 1, 2, 0, 1, 2, 0, 1], "timestamp": [10, 20, 30, 15, 25, 35, 5, 40]})


def test_window_selects_the_examples_whose_target_is_new_and_keeps_their_full_history() -> None:
    from recsys.student.batches import window_examples

    h = histories(TIMED, n_users=3)
    users, pos = next_item_examples(h)  # targets: (0: t20, t30), (1: t25, t35), (2: t40)
    times = TIMED.sort("user", "pos")["timestamp"].to_numpy()[pos]
    assert times.tolist() == [20, 30, 25, 35, 40]
    new, old = window_examples(times, since=26)
    assert new.tolist() == [1, 3, 4] and old.tolist() == [0, 2]
    assert window_examples(times, since=30)[0].tolist() == [1, 3, 4]  # at/after: t == since is new
    assert window_examples(times, since=41)[0].tolist() == []
    assert window_examples(times, since=0)[1].tolist() == []
    # histories of the window's examples still hold the events before `since`
    f = item_features(ITEMS, TIMED, text=None)
    b = make_batch(feats=f, users=users[new], starts=h.ptr[users[new]], ends=pos[new], flat=h.items,
                   items=h.items[pos[new]])
    assert [r.tolist() for r in b.kjt.to_dict()["hist_item"].to_dense()][:3] == [[0, 1], [2, 0], [1]]
    assert b.item_ids.tolist() == [2, 1, 2]


def test_without_a_window_every_example_is_trained_on_and_the_epoch_draws_are_unchanged() -> None:
    from recsys.student.batches import epoch_examples, window_examples

    new, old = window_examples(np.array([20, 30, 25, 35, 40]), since=None)
    assert new.tolist() == [0, 1, 2, 3, 4] and old.size == 0
    replay_rng = np.random.default_rng(7)
    before = replay_rng.bit_generator.state
    pool = epoch_examples(window=new, older=old, replay_fraction=0.5, rng=replay_rng)
    assert pool.tolist() == [0, 1, 2, 3, 4] and replay_rng.bit_generator.state == before  # nothing drawn
    # the training loop permutes the pool: the same permutation as the former ``permutation(n_examples)``
    np.testing.assert_array_equal(np.random.default_rng([0, 3]).permutation(pool),
                                  np.random.default_rng([0, 3]).permutation(5))


def test_replay_sample_size_membership_and_determinism() -> None:
    from recsys.student.batches import epoch_examples, replay_size

    window, older = np.array([10, 11, 12]), np.arange(10)
    assert [replay_size(10, fraction=f) for f in (0.0, 0.14, 0.2, 0.36, 1.0)] == [0, 1, 2, 4, 10]
    with pytest.raises(ValueError, match="replay_fraction"):
        replay_size(10, fraction=1.5)
    a = epoch_examples(window=window, older=older, replay_fraction=0.3, rng=np.random.default_rng([0, 1, 1]))
    b = epoch_examples(window=window, older=older, replay_fraction=0.3, rng=np.random.default_rng([0, 1, 1]))
    assert a.tolist() == b.tolist() and len(a) == 6 and a.tolist() == sorted(set(a.tolist()))
    assert set(a.tolist()) >= {10, 11, 12} and set(a.tolist()) - {10, 11, 12} <= set(range(10))
    draws = {tuple(epoch_examples(window=window, older=older, replay_fraction=0.3,
                                  rng=np.random.default_rng([0, e, 1])).tolist()) for e in range(20)}
    assert len(draws) > 1  # a fresh sample each epoch
    every = epoch_examples(window=window, older=older, replay_fraction=1.0, rng=np.random.default_rng(0))
    assert every.tolist() == list(range(13))
