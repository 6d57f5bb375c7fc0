"""Full-ranking metrics of the student's vectors, computed by every rank of the process group at once.

Each epoch's validation and the export's rankings (valid, unless the best epoch's is reused, and test) score
every user with a target against the whole catalogue. Every rank holds the full vectors (``encode`` all-gathers them), so rank r
ranks the r-th contiguous share of the target users and rank 0 merges the shares (``metrics.EvalResult.merge``):
the same per-target ranks and top-K sets as one process ranking everyone, in about 1 / world of the time, where
rank 0 alone used to rank them while the others waited in a collective.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import polars as pl
import torch.distributed as dist

from recsys import metrics


def _group() -> tuple[int, int]:
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def shared(*, targets: pl.DataFrame, history: pl.DataFrame,
           rank_fn: Callable[[pl.DataFrame, pl.DataFrame], list[metrics.EvalResult]]) -> list[metrics.EvalResult] | None:
    """``rank_fn(targets, history)`` (rankings of the users of the frames it is given) over every target user, each
    rank of the group running it on a contiguous share of them. Every rank must call it (a collective); -> the
    merged results on rank 0 (the same per-target rows as one call over everyone), None elsewhere."""
    rank, world = _group()
    if world == 1:
        return rank_fn(targets, history)
    share = np.array_split(np.unique(targets["user"].to_numpy()), world)[rank]
    part = rank_fn(metrics.of_users(targets, share), metrics.of_users(history, share))
    parts: list[list[metrics.EvalResult]] | None = [part] * world if rank == 0 else None
    dist.gather_object(part, parts, dst=0)
    if parts is None or rank != 0:
        return None
    return [metrics.EvalResult.merge([p[j] for p in parts]) for j in range(len(part))]


def evaluate(*, users: np.ndarray, items: np.ndarray, targets: pl.DataFrame, history: pl.DataFrame,
             n_items: int, coverage_ks: Sequence[int] | None = None) -> metrics.EvalResult | None:
    """``metrics.evaluate_scores`` of inner products ``users[u] @ items.T`` (users (U, d), items (N, d)), the target
    users split over the ranks (``shared``); -> the result on rank 0, None elsewhere. ``coverage_ks``: as in
    ``metrics.evaluate_scores`` (``()``: no catalogue coverage, each user's top-K, a fifth of a validation's time;
    the ranks behind every other metric are the same)."""
    score = metrics.dot_scorer(users, items)  # a new array each call (fresh): ranked in place, not copied
    res = shared(targets=targets, history=history, rank_fn=lambda t, h: [metrics.evaluate_scores(
        score_fn=score, targets=t, history=h, n_items=n_items, coverage_ks=coverage_ks)])
    return None if res is None else res[0]
