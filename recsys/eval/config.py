"""Config of the evaluation stage."""

from __future__ import annotations

import dataclasses
from typing import Literal

from recsys.config import ranged


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    split: Literal["valid", "test"] = "test"
    ks: tuple[int, ...] = ranged((10, 20), ge=1)  # headline cut-offs in metrics.json
    curve_ks: tuple[int, ...] = ranged((1, 5, 10, 20, 50, 100), ge=1)  # Recall@K curve in the report
    head_share: float = ranged(0.2, gt=0, le=1)  # popularity slices: top 20% of items = head, bottom 50% =
    # tail
    tail_share: float = ranged(0.5, gt=0, le=1)
    history_bins: tuple[int, ...] = ranged((5, 10, 20), ge=1)
    overlap_k: int = ranged(10, ge=1)  # teacher-student top-K overlap
    overlap_users: int = ranged(2000, ge=0)  # users sampled for the overlap (exact top-K per user)
    plots: bool = True
    # full ranking scores this many users at a time: peak memory ~30 bytes x block_users x items (1024 x 1M
    # items ~ 30 GiB, so lower it for large catalogues); results do not depend on it
    block_users: int = ranged(1024, ge=1)
    # systems evaluated at a time, each in a thread with one BLAS thread (full ranking is numpy that releases the
    # GIL, half of it single-threaded): 2 fills a 2-core box; peak memory grows by one block per extra worker.
    # The numbers do not depend on it; 1 = one at a time, BLAS on every core
    workers: int = ranged(2, ge=1)
    # 0 = every user with a target. N > 0: a seeded sample of N of them (10M-user logs), and every metric gets
    # a normal-approximation confidence interval (metrics.json rows: "ci", "sampled_users", "population")
    sample_users: int = ranged(0, ge=0)
    sample_seed: int = ranged(0, ge=0)
    confidence: float = ranged(0.95, gt=0, lt=1)
