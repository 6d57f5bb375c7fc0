"""Evaluation at scale: user blocks give exactly the in-memory result; a seeded user sample's interval
covers the full-population figure."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from recsys.metrics import EvalResult, dot_scorer, evaluate_scores, intervals, of_users, sample_users


def _problem(n_users: int, n_items: int, *, seed: int = 0) -> tuple[pl.DataFrame, pl.DataFrame, np.ndarray, np.ndarray]:
    """Targets and histories that the vectors half-explain (so metrics are far from 0 and 1)."""
    rng = np.random.default_rng(seed)
    items = rng.normal(size=(n_items, 8)).astype(np.float32)
    users = rng.normal(size=(n_users, 8)).astype(np.float32)
    pref = users @ items.T + rng.gumbel(size=(n_users, n_items)) * 3
    order = np.argsort(-pref, axis=1)
    n_hist = rng.integers(0, 6, n_users)
    hist = [(u, int(i)) for u in range(n_users) for i in order[u, 1:1 + n_hist[u]]]
    targets = pl.DataFrame({"user": np.arange(n_users, dtype=np.int32), "item": order[:, 0].astype(np.int32)})
    # a second target for some users, and a target that is also in the history
    extra = pl.DataFrame({"user": np.arange(0, n_users, 3, dtype=np.int32),
                          "item": order[::3, 1].astype(np.int32)})
    history = pl.DataFrame(hist, schema={"user": pl.Int32, "item": pl.Int32}, orient="row")
    return pl.concat([targets, extra]), history, users, items


def test_user_blocks_equal_one_block() -> None:
    targets, history, u, i = _problem(203, 57)
    scores = dot_scorer(u, i)
    whole = evaluate_scores(score_fn=scores, targets=targets, history=history, n_items=57, ks=(1, 5, 10),
                            batch_size=10_000)
    for block in (1, 7, 64):
        part = evaluate_scores(score_fn=scores, targets=targets, history=history, n_items=57, ks=(1, 5, 10),
                               batch_size=block)
        assert_frame_equal(part.per_target, whole.per_target)
        assert part.coverage == whole.coverage
        # identical ranks; the means only differ in the last bit (polars' group_by order is not fixed)
        assert part.summary(ks=(5, 10)) == pytest.approx(whole.summary(ks=(5, 10)), rel=1e-12)
    assert 0.05 < whole.summary(ks=(10,))["ndcg@10"] < 0.95  # a real ranking problem, not a degenerate one


def test_merged_user_shares_equal_one_call() -> None:
    """The student's shared ranking (``recsys.student.scoring``): contiguous user shares ranked apart and merged
    give the ranks, coverage and figures of one call over everyone."""
    targets, history, u, i = _problem(203, 57)
    scores = dot_scorer(u, i)
    whole = evaluate_scores(score_fn=scores, targets=targets, history=history, n_items=57, ks=(1, 5, 10))
    for world in (2, 3):
        shares = np.array_split(np.unique(targets["user"].to_numpy()), world)
        merged = EvalResult.merge([evaluate_scores(score_fn=scores, targets=of_users(targets, s),
                                                   history=of_users(history, s), n_items=57, ks=(1, 5, 10))
                                   for s in shares])
        assert_frame_equal(merged.per_target, whole.per_target)
        assert merged.coverage == whole.coverage and merged.nonfinite_targets == whole.nonfinite_targets
        assert merged.summary(ks=(5, 10)) == pytest.approx(whole.summary(ks=(5, 10)), rel=1e-12)
    with pytest.raises(ValueError, match="top_items"):
        EvalResult.merge([EvalResult(per_target=whole.per_target, n_items=57, coverage={})])


def test_sampled_interval_covers_the_full_figure() -> None:
    targets, history, u, i = _problem(4000, 300, seed=1)
    scores = dot_scorer(u, i)
    full = evaluate_scores(score_fn=scores, targets=targets, history=history, n_items=300).summary(ks=(10, 20))
    population = targets["user"].n_unique()
    users = sample_users(targets, n=500, seed=0)
    assert len(users) == 500 and np.all(np.diff(users) > 0)
    assert np.array_equal(users, sample_users(targets, n=500, seed=0))  # seeded
    sub = evaluate_scores(score_fn=scores, targets=of_users(targets, users), history=of_users(history, users),
                          n_items=300)
    ci = intervals(sub.per_target, ks=(10, 20), population=population)
    assert set(ci) == {f"{m}@{k}" for m in ("recall", "ndcg", "hr", "mrr") for k in (10, 20)}
    for name, (lo, hi) in ci.items():
        assert lo <= full[name] <= hi, (name, lo, full[name], hi)
        assert 0 < hi - lo < 0.15, (name, lo, hi)  # informative, not vacuous
    # the whole population: no sampling error left
    everyone = sample_users(targets, n=0)
    assert len(everyone) == population
    whole = intervals(evaluate_scores(score_fn=scores, targets=targets, history=history, n_items=300).per_target,
                      ks=(10,), population=population)
    # (0 width; the mean equals the full figure up to the last bit, as polars' group_by order is not fixed)
    assert all(lo == hi and lo == pytest.approx(full[n], rel=1e-12) for n, (lo, hi) in whole.items() if n in full)

