"""Config of the evaluation stage."""

from __future__ import annotations

import dataclasses
from typing import Literal


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    split: Literal["valid", "test"] = "test"
    ks: tuple[int, ...] = (10, 20)  # headline cut-offs in metrics.json
    curve_ks: tuple[int, ...] = (1, 5, 10, 20, 50, 100)  # Recall@K curve in the report
    head_share: float = 0.2  # popularity slices: top 20% of items = head, bottom 50% = tail
    tail_share: float = 0.5
    history_bins: tuple[int, ...] = (5, 10, 20)
    overlap_k: int = 10  # teacher-student top-K overlap
    overlap_users: int = 2000  # users sampled for the overlap (exact top-K per user)
    plots: bool = True
