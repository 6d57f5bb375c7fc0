"""Full-ranking metrics of the student's vectors, computed by every rank of the process group at once.

Each epoch's validation and the export's rankings (valid, unless the best epoch's is reused, and test) score
every user with a target against the whole catalogue. Every rank holds the full vectors (``encode`` all-gathers them), so rank r
ranks the r-th contiguous share of the target users and rank 0 merges the shares (``metrics.EvalResult.merge``):
the same per-target ranks and top-K sets as one process ranking everyone, in about 1 / world of the time, where
rank 0 alone used to rank them while the others waited in a collective.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import torch.distributed as dist

from recsys import metrics


def _group() -> tuple[int, int]:
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def evaluate(*, users: np.ndarray, items: np.ndarray, targets: pl.DataFrame, history: pl.DataFrame,
             n_items: int, coverage: bool = True) -> metrics.EvalResult | None:
    """``metrics.evaluate_scores`` of inner products ``users[u] @ items.T`` (users (U, d), items (N, d)), the target
    users split over the ranks. Every rank must call it (a collective); -> the result on rank 0, None elsewhere.
    ``coverage=False``: no catalogue coverage (each user's top-K, a fifth of a validation's time; the ranks behind
    every other metric are the same)."""
    rank, world = _group()
    score = metrics.dot_scorer(users, items)  # a new array each call (fresh): ranked in place, not copied
    cov = None if coverage else ()
    if world == 1:
        return metrics.evaluate_scores(score_fn=score, targets=targets, history=history, n_items=n_items,
                                       coverage_ks=cov)
    share = np.array_split(np.unique(targets["user"].to_numpy()), world)[rank]
    part = metrics.evaluate_scores(score_fn=score, targets=metrics.of_users(targets, share),
                                   history=metrics.of_users(history, share), n_items=n_items, coverage_ks=cov)
    parts: list[metrics.EvalResult] | None = [part] * world if rank == 0 else None
    dist.gather_object(part, parts, dst=0)
    return metrics.EvalResult.merge(parts) if parts is not None and rank == 0 else None
