"""Config of the rank stage: LightGBM LambdaRank over the retriever's own candidates."""

from __future__ import annotations

import dataclasses
from typing import Literal

TeacherSpace = Literal["auto", "adapted", "raw", "none"]


@dataclasses.dataclass(frozen=True)
class RankConfig:
    """Defaults are LightGBM's lambdarank defaults made smaller: a few thousand queries of ~100 candidates
    each overfit 31-leaf trees quickly, so fewer leaves, more data per leaf and early stopping."""

    candidates: str = "index"  # run-dir folder holding candidates_{valid,test}.parquet
    teacher_space: TeacherSpace = "auto"  # auto: "adapted" if present, else "raw"; none: no teacher features
    recent_days: float = 30.0  # window of the "recent popularity" feature, before the prediction point
    num_leaves: int = 15
    learning_rate: float = 0.05
    n_estimators: int = 300
    min_data_in_leaf: int = 20
    feature_fraction: float = 0.9
    lambdarank_truncation_level: int = 20  # NDCG is optimised for the top of the list
    eval_at: int = 10
    early_stopping_rounds: int = 30
    holdout_fraction: float = 0.15  # training queries held out for early stopping (0 = none)
    seed: int = 0
