"""KJT batch construction from tiny literal frames."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

pytest.importorskip("torchrec")

from recsys.student.batches import histories, item_features, make_batch, next_item_examples  # noqa: E402

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
