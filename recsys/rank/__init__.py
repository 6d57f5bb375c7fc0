"""Rank stage: LightGBM LambdaRank over the retriever's candidates (features via polars joins).

Importing this package does not import lightgbm; ``train`` imports it on first use.
"""

from __future__ import annotations

from recsys.rank.config import RankConfig
from recsys.rank.features import Teacher, build_features, feature_columns, label
from recsys.rank.train import load_model, rerank, save_model, train_ranker

__all__ = ["RankConfig", "Teacher", "build_features", "feature_columns", "label", "load_model", "rerank",
           "save_model", "train_ranker"]
