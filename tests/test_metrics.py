"""Metrics against hand-computed values on tiny literal inputs."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys.metrics import (
    MISS,
    dot_scorer,
    evaluate_lists,
    evaluate_scores,
    history_length_slices,
    popularity_slices,
    summarize,
)


def _fixed(scores: np.ndarray):
    return lambda users: scores[users]


def test_rank_excludes_history_and_counts_ties_against_target() -> None:
    # user 0: target item 2 (score .5); item 0 (.9) is history -> excluded; item 1 (.5) ties -> counts against.
    scores = np.array([[0.9, 0.5, 0.5, 0.1]], dtype=np.float32)
    res = evaluate_scores(score_fn=_fixed(scores), targets=pl.DataFrame({"user": [0], "item": [2]}),
                          history=pl.DataFrame({"user": [0], "item": [0]}), n_items=4, ks=(1, 2))
    assert res.per_target["rank"].to_list() == [1]
    s = res.summary(ks=(1, 2))
    assert s["recall@1"] == 0.0 and s["hr@2"] == 1.0
    assert s["ndcg@2"] == pytest.approx(1 / math.log2(3))
    assert s["mrr@2"] == pytest.approx(0.5)


def test_nonfinite_target_is_a_miss_and_nan_elsewhere_ranks_above() -> None:
    scores = np.array([[np.nan, 0.2, 0.3], [0.1, np.inf, 0.0]], dtype=np.float32)
    res = evaluate_scores(score_fn=_fixed(scores), targets=pl.DataFrame({"user": [0, 1], "item": [2, 1]}),
                          history=pl.DataFrame({"user": [], "item": []}, schema={"user": pl.Int32, "item": pl.Int32}),
                          n_items=3, ks=(1,))
    # user 0: item 0 NaN -> above target 2 -> rank 1; user 1: target +inf -> miss.
    assert res.per_target.sort("user")["rank"].to_list() == [1, int(MISS)]
    assert res.nonfinite_targets == 1
    assert res.summary(ks=(1,))["hr@1"] == 0.0


def test_multi_target_recall_ndcg_hand_computed() -> None:
    per_target = pl.DataFrame({"user": [0, 0, 1], "item": [1, 2, 3], "rank": [0, 5, 2]})
    s = summarize(per_target, ks=(3,))
    # user 0: 1 of 2 hit, dcg = 1, idcg = 1 + 1/log2(3); user 1: hit at rank 2, dcg = idcg*?=1/log2(4), idcg = 1
    assert s["recall@3"] == pytest.approx((0.5 + 1.0) / 2)
    assert s["ndcg@3"] == pytest.approx((1 / (1 + 1 / math.log2(3)) + 1 / math.log2(4)) / 2)
    assert s["mrr@3"] == pytest.approx((1.0 + 1 / 3) / 2)


def test_lists_and_scores_agree_and_coverage() -> None:
    rng = np.random.default_rng(0)
    u, n = 7, 30
    scores = rng.normal(size=(u, n)).astype(np.float32)
    hist = pl.DataFrame({"user": [0, 0, 3], "item": [5, 6, 7]})
    targets = pl.DataFrame({"user": np.arange(u), "item": rng.integers(0, n, u)})
    full = evaluate_scores(score_fn=_fixed(scores), targets=targets, history=hist, n_items=n, ks=(5,))
    masked = scores.copy()
    for r, i in hist.iter_rows():
        masked[r, i] = -np.inf
    top = np.argsort(-masked, axis=1)[:, :5]
    lists = pl.DataFrame({"user": np.repeat(np.arange(u), 5), "item": top.ravel(), "rank": np.tile(np.arange(5), u)})
    lst = evaluate_lists(lists=lists, targets=targets, n_items=n, ks=(5,))
    assert full.summary(ks=(5,))["ndcg@5"] == pytest.approx(lst.summary(ks=(5,))["ndcg@5"])
    assert full.coverage[5] == pytest.approx(len(np.unique(top)) / n)


def test_dot_scorer_and_slices() -> None:
    s = dot_scorer(np.eye(2, dtype=np.float32), np.array([[1, 0], [0, 2], [3, 3]], dtype=np.float32))
    np.testing.assert_allclose(s(np.array([1])), [[0, 2, 3]])
    train = pl.DataFrame({"user": [0, 0, 1, 1, 1], "item": [0, 0, 0, 1, 2]})
    pop = popularity_slices(train, n_items=5, head=0.2, tail=0.4)
    assert pop["slice"].to_list() == ["head", "torso", "tail", "cold", "cold"]
    hl = history_length_slices(train, bins=(3,))
    assert dict(hl.iter_rows()) == {0: "<3", 1: ">=3"}


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 6), st.integers(2, 12), st.integers(0, 10_000))
def test_bad_input_metrics_property_rank_matches_sorting(u: int, n: int, seed: int) -> None:
    """For random scores with ties and NaNs, rank = pessimistic position in a full sort; metrics in [0, 1]."""
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 3, size=(u, n)).astype(np.float32)
    scores[rng.random((u, n)) < 0.1] = np.nan
    targets = pl.DataFrame({"user": np.arange(u), "item": rng.integers(0, n, u)})
    res = evaluate_scores(score_fn=_fixed(scores), targets=targets, history=targets.head(0), n_items=n, ks=(1, 3))
    for user, item, rank in res.per_target.iter_rows():
        t = scores[user, item]
        if np.isnan(t):
            assert rank == MISS
            continue
        row = np.where(np.isnan(scores[user]), np.inf, scores[user])
        assert rank == int((row >= t).sum() - 1)
    for v in res.summary(ks=(1, 3)).values():
        assert v >= 0


def test_hold_out_items_removes_only_their_training_events() -> None:
    from recsys.data.split import hold_out_items

    train = pl.DataFrame({"user": [0, 0, 1, 1, 2], "item": [0, 1, 1, 2, 3]})
    kept, cold = hold_out_items(train, share=0.5, seed=0)
    assert len(cold) == 2 and set(cold) <= {0, 1, 2, 3}
    assert set(kept["item"].to_list()).isdisjoint(cold)
    assert kept.height == train.filter(~pl.col("item").is_in(cold)).height
    # the held-out items are labelled "cold" by the popularity slices
    labels = popularity_slices(kept, n_items=4)
    assert set(labels.filter(pl.col("slice") == "cold")["item"].to_list()) == set(cold)


def test_per_user_values_average_to_the_summary_hand_computed() -> None:
    from recsys.metrics import per_user, summarize

    # user 0: targets at ranks 0 and 3 (2 targets); user 1: one target at rank 1; user 2: a miss
    pt = pl.DataFrame({"user": [0, 0, 1, 2], "item": [5, 6, 7, 8], "rank": [0, 3, 1, int(MISS)]})
    ndcg = per_user(pt, metric="ndcg@10")
    idcg2 = 1.0 + 1.0 / math.log2(3)
    assert ndcg["user"].to_list() == [0, 1, 2]
    np.testing.assert_allclose(ndcg["value"].to_numpy(), [(1.0 + 1.0 / math.log2(5)) / idcg2, 1.0 / math.log2(3), 0.0])
    assert per_user(pt, metric="recall@2")["value"].to_list() == [0.5, 1.0, 0.0]
    assert per_user(pt, metric="mrr@10")["value"].to_list() == [1.0, 0.5, 0.0]
    for m in ("ndcg@10", "recall@2", "hr@2", "mrr@10"):
        assert per_user(pt, metric=m)["value"].mean() == pytest.approx(summarize(pt, ks=(2, 10))[m])
    with pytest.raises(KeyError, match="per-user metric"):
        per_user(pt, metric="auc@10")


def test_paired_change_is_exact_for_proportional_systems_and_brackets_noise() -> None:
    from recsys.metrics import paired_change

    b = np.array([0.1, 0.2, 0.0, 0.4, 0.3])
    c = paired_change(2 * b, b, samples=200)  # every resample has mean(a) = 2 mean(b)
    assert c.relative == pytest.approx(1.0) and c.low == pytest.approx(1.0) and c.high == pytest.approx(1.0)
    assert c.users == 5 and c.confidence == 0.95
    rng = np.random.default_rng(0)
    x = rng.random(400)
    noisy = paired_change(x + rng.normal(0, 0.05, 400), x, samples=500)
    assert noisy.low < noisy.relative < noisy.high and noisy.low < 0 < noisy.high  # no real difference
    worse = paired_change(0.5 * x, x, samples=500)
    assert worse.high == pytest.approx(-0.5)  # exactly proportional again
    assert paired_change(np.zeros(3), np.zeros(3)).relative == 0.0
    with pytest.raises(ValueError, match="paired"):
        paired_change(np.zeros(3), np.zeros(4))


def test_one_and_several_targets_per_user_rank_and_cover_as_the_sorted_reference() -> None:
    """The in-place comparison (one target per user) and the gathered one (several) give the ranks and
    coverage of a full sort; a target tied with another item counts the tie against itself in both."""
    rng = np.random.default_rng(3)
    scores = rng.normal(size=(6, 9)).astype(np.float32)
    scores[0, 4] = scores[0, 7]  # a tie with user 0's target
    hist = pl.DataFrame({"user": [0, 2, 2, 5], "item": [1, 3, 4, 0]})
    one = pl.DataFrame({"user": [0, 1, 2, 3, 4, 5], "item": [7, 2, 5, 0, 8, 6]})
    several = pl.concat([one, pl.DataFrame({"user": [1, 3, 3], "item": [4, 1, 8]})])
    for targets in (one, several):
        res = evaluate_scores(score_fn=_fixed(scores), targets=targets, history=hist, n_items=9, ks=(1, 3),
                              batch_size=4)
        got = {(u, i): r for u, i, r in res.per_target.iter_rows()}
        covered = {1: set(), 3: set()}
        for u in range(6):
            s = scores[u].copy()
            s[hist.filter(pl.col("user") == u)["item"].to_numpy()] = -np.inf
            for k in covered:
                covered[k] |= set(np.argsort(-s, kind="stable")[:k].tolist())
            for t in targets.filter(pl.col("user") == u)["item"].to_list():
                assert got[(u, t)] == int((s >= s[t]).sum()) - 1, (u, t)
        assert got[(0, 7)] == int((scores[0] > scores[0, 7]).sum()) + 1 - int(scores[0, 1] > scores[0, 7])  # tie
        assert res.coverage == {k: len(v) / 9 for k, v in covered.items()}


def test_popularity_summary_gives_overall_and_every_popularity_slice() -> None:
    from recsys.metrics import popularity_summary

    # train counts: item 0 x3 (head), item 1 x2 (torso), item 2 x1 (tail), items 3-4 cold (head=0.2, tail=0.4)
    train = pl.DataFrame({"user": [0, 0, 1, 1, 1, 2], "item": [0, 0, 0, 1, 2, 1]})
    # user 0's target item 2 ranks 0th (ndcg 1), user 1's target item 3 ranks 1st (ndcg 1/log2(3)); no head target
    scores = np.array([[0.1, 0.2, 0.9, 0.0, 0.0], [0.5, 0.9, 0.0, 0.6, 0.0]], dtype=np.float32)
    res = evaluate_scores(score_fn=_fixed(scores), targets=pl.DataFrame({"user": [0, 1], "item": [2, 3]}),
                          history=pl.DataFrame({"user": [1], "item": [0]}), n_items=5, ks=(10,))
    out = popularity_summary(res, train=train, ks=(1,), head=0.2, tail=0.4)
    assert list(out) == ["all", "head", "torso", "tail", "cold"]
    assert out["all"] == {"targets": 2.0, "ndcg@1": 0.5, "recall@1": 0.5}
    assert out["tail"] == {"targets": 1.0, "ndcg@1": 1.0, "recall@1": 1.0}
    assert out["cold"] == {"targets": 1.0, "ndcg@1": 0.0, "recall@1": 0.0}
    assert out["head"] == {"targets": 0.0, "ndcg@1": None, "recall@1": None}
    assert popularity_summary(res, train=train, ks=(2,), head=0.2, tail=0.4)["cold"]["ndcg@2"] == \
        pytest.approx(1 / math.log2(3))


def test_top_k_rows_matches_a_full_sort() -> None:
    """The two-level top-k (bucket maxima, then their members) equals a stable full sort: -inf, ties across the
    k-th place (lower ids win) and the remainder columns too."""
    from recsys.topk import top_k_rows

    rng = np.random.default_rng(3)
    for n, k in [(1000, 10), (1003, 25), (97, 5), (40, 10), (12, 12), (7, 20)]:
        s = rng.standard_normal((33, n)).astype(np.float32)
        s[rng.integers(0, 33, 50), rng.integers(0, n, 50)] = -np.inf
        for scores in (s, np.round(s, 1)):  # rounded: many exact ties, also across the k-th place
            got = top_k_rows(scores, k)
            want = np.argsort(-scores, axis=1, kind="stable")[:, :min(k, n)]  # equal scores: the lower id first
            np.testing.assert_array_equal(got, want)


def test_top_k_rows_does_not_depend_on_the_number_of_buckets() -> None:
    """Any bucket count (and the automatic one) gives the same rows, ties included."""
    from recsys.topk import auto_group, top_k_rows

    rng = np.random.default_rng(4)
    s = np.round(rng.standard_normal((40, 3001)), 1).astype(np.float32)
    s[:, 2000:2100] = s[:, :100]  # exact duplicates, as duplicate item texts give the teacher
    for k in (5, 20, 100):
        want = np.argsort(-s, axis=1, kind="stable")[:, :k]
        for g in (2, 4, 7, 16, 0):
            np.testing.assert_array_equal(top_k_rows(s, k, group=g), want)
    assert auto_group(12101, 20) == 16 and auto_group(12101, 100) == 7 and auto_group(50, 20) == 0


def test_take_rows_is_take_along_axis() -> None:
    from recsys.topk import take_rows

    rng = np.random.default_rng(5)
    a = rng.standard_normal((6, 50)).astype(np.float32)
    idx = rng.integers(0, 50, (6, 9))
    np.testing.assert_array_equal(take_rows(a, idx), np.take_along_axis(a, idx, 1))
    np.testing.assert_array_equal(take_rows(a[:, ::2], idx // 2), np.take_along_axis(a[:, ::2], idx // 2, 1))


def test_sorted_unique_is_np_unique() -> None:
    from recsys.topk import sorted_unique

    rng = np.random.default_rng(6)
    for a in (rng.integers(0, 50, 500), rng.integers(-(1 << 40), 1 << 40, 1000), np.zeros(0, np.int64),
              np.array([3]), np.array([2, 2, 2])):
        np.testing.assert_array_equal(sorted_unique(a), np.unique(a))


def test_top_k_set_keeps_the_tie_breakers_choice() -> None:
    """Unique sets are found by buckets; rows with ties across the cut (or NaN) take ``tied``'s choice."""
    from recsys.topk import top_k_set

    rng = np.random.default_rng(9)
    s = rng.standard_normal((30, 2000)).astype(np.float32)
    s[:5] = np.round(s[:5])
    s[5, 3] = np.nan
    for k in (3, 10, 40):
        for tied in (lambda r, k=k: np.argpartition(-r, k, axis=1)[:, :k],
                     lambda r, k=k: np.argpartition(r, r.shape[1] - k, axis=1)[:, r.shape[1] - k:]):
            np.testing.assert_array_equal(np.sort(top_k_set(s, k, tied=tied), 1), np.sort(tied(s), 1))


def test_coverage_ks_changes_only_the_coverage_measured() -> None:
    """``coverage_ks`` limits which coverage@K is computed; the ranks (every other metric) are the same."""
    rng = np.random.default_rng(7)
    n = 60
    scores = rng.standard_normal((30, n)).astype(np.float32)
    targets = pl.DataFrame({"user": np.arange(30), "item": rng.integers(0, n, 30)})
    hist = pl.DataFrame({"user": np.repeat(np.arange(30), 3), "item": rng.integers(0, n, 90)})
    full = evaluate_scores(score_fn=_fixed(scores), targets=targets, history=hist, n_items=n, ks=(1, 5, 10, 20))
    part = evaluate_scores(score_fn=_fixed(scores), targets=targets, history=hist, n_items=n, ks=(1, 5, 10, 20),
                           coverage_ks=(5,))
    assert part.per_target.equals(full.per_target)
    assert part.coverage == {5: full.coverage[5]}
    assert part.summary(ks=(5,)) == full.summary(ks=(5,))


def test_dot_scorer_results_are_not_copied_but_views_are() -> None:
    """A fresh matmul result is masked in place; a broadcast view (most popular) is copied, never written."""
    from recsys.metrics import _writable

    s = dot_scorer(np.eye(2, dtype=np.float32), np.ones((3, 2), dtype=np.float32))
    block = s(np.array([0, 1]))
    assert s.fresh and _writable(block, fresh=True) is block
    base = np.arange(3, dtype=np.float32)
    out = _writable(np.broadcast_to(base, (2, 3)), fresh=True)
    out[:] = -1
    assert base.tolist() == [0.0, 1.0, 2.0]
