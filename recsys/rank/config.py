"""Config of the rank stage: LightGBM LambdaRank over the retriever's own candidates."""

from __future__ import annotations

import dataclasses
from typing import Literal

from recsys.config import ranged

TeacherSpace = Literal["auto", "adapted", "raw", "none"]


@dataclasses.dataclass(frozen=True)
class RankConfig:
    """Defaults are LightGBM's lambdarank defaults made smaller: a few thousand queries of ~100 candidates
    each overfit 31-leaf trees quickly, so fewer leaves, more data per leaf and early stopping."""

    candidates: str = "index"  # run-dir folder holding candidates_{valid,test}.parquet
    teacher_space: TeacherSpace = "auto"  # auto: "adapted" if present, else "raw"; none: no teacher features
    recent_days: float = ranged(30.0, gt=0)  # window of the "recent popularity" feature, before the
    # prediction point
    num_leaves: int = ranged(15, ge=2)
    learning_rate: float = ranged(0.05, gt=0)
    n_estimators: int = ranged(300, ge=1)
    min_data_in_leaf: int = ranged(20, ge=1)
    feature_fraction: float = ranged(0.9, gt=0, le=1)
    lambdarank_truncation_level: int = ranged(20, ge=1)  # NDCG is optimised for the top of the list
    eval_at: int = ranged(10, ge=1)
    early_stopping_rounds: int = ranged(30, ge=1)
    holdout_fraction: float = ranged(0.15, ge=0, lt=1)  # training queries held out for early stopping (0 =
    # none)
    seed: int = ranged(0, ge=0)
