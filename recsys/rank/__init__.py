"""Rank stage: LightGBM LambdaRank over the retriever's candidates (features via polars joins).

Importing this package does not import lightgbm; ``train`` imports it on first use.
"""

from __future__ import annotations

from recsys.rank.config import RankConfig
from recsys.rank.features import FeatureContext, Teacher, build_features, candidate_features, feature_columns, \
    feature_context, label
from recsys.rank.train import load_model, rerank, save_model, train_ranker

__all__ = ["FeatureContext", "RankConfig", "Teacher", "build_features", "candidate_features", "feature_columns",
           "feature_context", "label", "load_model", "rerank", "save_model", "train_ranker"]
