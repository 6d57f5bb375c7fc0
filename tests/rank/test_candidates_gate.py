"""Candidate union over several retrievers and the serving gate, on tiny literal data."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from recsys.rank.candidates import Source, exact_topk, source_lists, union
from recsys.rank.gate import decide

# 2 users x 4 items in 1-d: user 0 likes high item values, user 1 low ones
ITEMS = np.array([[1.0], [2.0], [3.0], [4.0]], np.float32)
USERS = np.array([[1.0], [-1.0]], np.float32)
HIST = pl.DataFrame({"user": [0, 1], "item": [3, 0]}, schema={"user": pl.Int32, "item": pl.Int32})


def test_exact_topk_excludes_history_and_ranks_by_score() -> None:
    got = exact_topk(users=USERS, items=ITEMS, query=np.array([0, 1]), history=HIST, k=2)
    want = pl.DataFrame({"user": [0, 0, 1, 1], "item": [2, 1, 1, 2], "score": [3.0, 2.0, -2.0, -3.0],
                         "rank": [0, 1, 0, 1]},
                        schema={"user": pl.Int32, "item": pl.Int32, "score": pl.Float32, "rank": pl.Int32})
    assert_frame_equal(got, want)


def test_union_keeps_a_ready_made_list_and_merges_rows_found_twice() -> None:
    ready = pl.DataFrame({"user": [0, 0], "item": [0, 2], "score": [9.0, 8.0], "rank": [0, 1]})  # cut to depth 1
    s = Source("s", USERS, ITEMS, lists=ready)
    a = Source("a", -USERS, ITEMS)  # user 0's top-1 unseen by -x: item 0 (-1)
    u = union(source_lists([s, a], query=np.array([0]), history=HIST, depth=1), sources=[s, a], depth=1)
    want = pl.DataFrame({"user": [0], "item": [0], "s_rank": [0], "a_rank": [0], "n_sources": [2],
                         "s_score": [1.0], "a_score": [-1.0]},  # exact dot products, not the list's 9.0
                        schema={"user": pl.Int32, "item": pl.Int32, "s_rank": pl.Int32, "a_rank": pl.Int32,
                                "n_sources": pl.Int8, "s_score": pl.Float32, "a_score": pl.Float32})
    assert_frame_equal(u, want)


def test_union_sentinel_rank_for_an_item_only_one_source_found() -> None:
    s = Source("s", USERS, ITEMS)  # user 1 top-1 unseen: item 1 (-2)
    a = Source("a", -USERS, ITEMS)  # user 1 top-1 unseen: item 3 (4)
    u = union(source_lists([s, a], query=np.array([1]), history=HIST, depth=1), sources=[s, a], depth=1)
    assert u.select("item", "s_rank", "a_rank", "n_sources", "s_score", "a_score").rows() == [
        (1, 0, 1, 1, -2.0, 2.0), (3, 1, 0, 1, -4.0, 4.0)]


def test_gate_serves_the_ranker_only_above_the_margin() -> None:
    d = decide({"union_rerank": 0.0612, "als": 0.05, "teacher_adapted": 0.06}, ranker="union_rerank", margin=0.02)
    assert (d.served, d.best_single) == ("union_rerank", "teacher_adapted")  # 0.0612 >= 1.02 * 0.06
    d = decide({"union_rerank": 0.0611, "als": 0.05, "teacher_adapted": 0.06}, ranker="union_rerank", margin=0.02)
    assert d.served == "teacher_adapted" and "serving teacher_adapted" in d.reason
    assert decide({"als": 0.05}, ranker="union_rerank", margin=0.0).served == "als"  # no ranker figure
    with pytest.raises(ValueError, match="single retriever"):
        decide({"union_rerank": 0.1}, ranker="union_rerank", margin=0.0)


def test_union_by_keys_equals_the_polars_joins() -> None:
    """The sorted-key union is the joins' frame row for row (ranks, sentinels, counts, exact scores)."""
    from recsys.rank.candidates import _union_joins, pair_scores

    rng = np.random.default_rng(5)
    users, items = rng.standard_normal((40, 6)).astype(np.float32), rng.standard_normal((30, 6)).astype(np.float32)
    hist = pl.DataFrame({"user": rng.integers(0, 40, 60), "item": rng.integers(0, 30, 60)},
                        schema={"user": pl.Int32, "item": pl.Int32})
    ready = exact_topk(users=users[:, ::-1].copy(), items=items, query=np.arange(40), history=hist, k=9)
    srcs = [Source("s", users, items, lists=ready), Source("t", -users, items),
            Source("a", users * 2, items[:, ::-1].copy())]
    lists = source_lists(srcs, query=np.arange(0, 40, 3), history=hist, depth=7)
    assert_frame_equal(union(lists, sources=srcs, depth=7), _union_joins(lists, sources=srcs, depth=7))
    u, i = rng.integers(0, 40, 1000), rng.integers(0, 30, 1000)
    np.testing.assert_array_equal(pair_scores(users, items, u, i, chunk=7), pair_scores(users, items, u, i))


@pytest.mark.parametrize("dim", [448, 37])
def test_pair_scores_are_the_same_bits_on_any_number_of_threads(dim: int) -> None:
    """Each thread takes a contiguous share of the pairs with its own buffers; every value is the one-thread one
    (a feature that moved by a rounding would move the ranker's splits) and each row's own einsum."""
    from recsys.rank.candidates import pair_scores

    rng = np.random.default_rng(dim)
    users, items = rng.standard_normal((50, dim)).astype(np.float32), rng.standard_normal((80, dim)).astype(np.float32)
    u, i = np.sort(rng.integers(0, 50, 5003)), rng.integers(0, 80, 5003)
    one = pair_scores(users, items, u, i, chunk=8, threads=1)
    for t in (2, 3):
        np.testing.assert_array_equal(pair_scores(users, items, u, i, chunk=8, threads=t), one)
    ref = np.array([np.einsum("nd,nd->n", users[u[j:j + 1]], items[i[j:j + 1]])[0] for j in range(0, 5003, 97)])
    np.testing.assert_array_equal(one[::97], ref)


def test_union_of_a_list_repeating_a_pair_falls_back_to_the_joins() -> None:
    twice = pl.DataFrame({"user": [0, 0], "item": [1, 1], "score": [1.0, 1.0], "rank": [0, 1]},
                         schema={"user": pl.Int32, "item": pl.Int32, "score": pl.Float32, "rank": pl.Int32})
    s = Source("s", USERS, ITEMS, lists=twice)
    assert union({"s": twice}, sources=[s], depth=2).height == 2  # one row per match, as the joins give


def test_lightgbm_threads_follow_the_row_count_unless_set() -> None:
    from recsys.rank.config import RankConfig
    from recsys.rank.train import threads_for

    auto = RankConfig(single_thread_rows=1000)
    assert threads_for(999, cfg=auto) == 1 and threads_for(1000, cfg=auto) == 0  # 0 = every core
    assert threads_for(10, cfg=RankConfig(num_threads=2)) == 2 and threads_for(10**7, cfg=RankConfig(num_threads=1)) == 1


def test_top_set_is_the_set_argpartition_keeps() -> None:
    """The bucketed selection keeps exactly argpartition's set, also where ties cross the k-th place (there
    argpartition's own choice is taken), with -inf history, NaN and catalogues too small for buckets."""
    from recsys.rank.candidates import _top_set

    rng = np.random.default_rng(8)
    for n, b in ((5000, 40), (1000, 9), (57, 6), (300, 12)):
        s = rng.standard_normal((b, n)).astype(np.float32)
        s[:, n // 2:n // 2 + n // 10] = s[:, 1:1 + n // 10]  # duplicate items
        s[:3] = np.round(s[:3] * 2)  # many ties across the cut
        s[3, :] = -np.inf
        s[3, :3] = 1.0  # fewer finite scores than k
        s[4, 7] = np.nan
        for k in (1, 10, 50):
            if k >= n:
                continue
            want = np.sort(np.argpartition(s, n - k, axis=1)[:, n - k:], axis=1)
            np.testing.assert_array_equal(np.sort(_top_set(s, k), axis=1), want)


def test_early_stopping_ignores_a_lucky_first_round_and_stops_after_patience() -> None:
    import collections

    import pytest
    from lightgbm.callback import EarlyStopException

    from recsys.rank.train import early_stopping

    env = collections.namedtuple("Env", "iteration end_iteration evaluation_result_list")
    curve = [0.9] + [0.5 + 0.001 * r for r in range(1, 60)] + [0.55] * 40  # a spike at round 1, best at 60
    cb = early_stopping(patience=5, min_rounds=10)
    with pytest.raises(EarlyStopException) as stop:
        for i, score in enumerate(curve):
            cb(env(i, len(curve), [("valid_0", "ndcg@10", score, True)]))
    assert stop.value.best_iteration + 1 == 60 and stop.value.best_score[0][2] == pytest.approx(0.559)
    cb = early_stopping(patience=100, min_rounds=3)  # never patient enough: stops at the last round, its best
    with pytest.raises(EarlyStopException) as stop:
        for i, score in enumerate([0.1, 0.2, 0.4, 0.3, 0.35]):
            cb(env(i, 5, [("valid_0", "ndcg@10", score, True)]))
    assert stop.value.best_iteration + 1 == 3
