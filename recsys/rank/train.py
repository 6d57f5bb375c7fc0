"""LightGBM LambdaRank: query groups, training with early stopping, prediction, text-format save/load."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from recsys.contracts import ranker as R
from recsys.contracts.layout import Layout
from recsys.rank.config import RankConfig

log = logging.getLogger(__name__)


def import_lightgbm() -> Any:
    try:
        import lightgbm
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("the rank stage needs lightgbm: `pip install 'recsys[rank]'`") from e
    return lightgbm


def matrix(f: pl.DataFrame, features: list[str]) -> np.ndarray:
    """(n, F) float32 feature matrix; nulls -> NaN (LightGBM's missing value)."""
    missing = [c for c in features if c not in f.columns]
    if missing:
        raise KeyError(f"feature columns {missing} are absent; the model was trained with {features}")
    return f.select(pl.col(c).cast(pl.Float32) for c in features).to_numpy()


def groups(f: pl.DataFrame) -> np.ndarray:
    """Group sizes of a frame sorted by ``user`` (LightGBM's query layout: contiguous rows per query)."""
    return f.group_by("user", maintain_order=True).len()["len"].to_numpy()


def with_positives(f: pl.DataFrame) -> pl.DataFrame:
    """Keep only queries with at least one positive (the others carry no ranking signal)."""
    return f.filter(pl.col("label").max().over("user") > 0)


def early_stopping(*, patience: int, min_rounds: int) -> Any:
    """LightGBM callback: the best round (first validation metric, higher is better) among rounds >= ``min_rounds``;
    stop once ``patience`` rounds passed without a better one, or at the last round; the booster's
    ``best_iteration`` / ``best_score`` are that round's. LightGBM's own ``early_stopping`` also takes the first
    rounds, where one lucky evaluation on a small holdout can end training."""
    from lightgbm.callback import EarlyStopException

    best: dict[str, Any] = {"score": float("-inf"), "round": 0, "results": None}

    def callback(env: Any) -> None:
        rnd = env.iteration + 1  # 1-based, as best_iteration
        if rnd >= min_rounds and env.evaluation_result_list:
            score = env.evaluation_result_list[0][2]
            if score > best["score"]:
                best.update(score=score, round=rnd, results=list(env.evaluation_result_list))
        if best["results"] is not None and (rnd - best["round"] >= patience or rnd == env.end_iteration):
            raise EarlyStopException(best["round"] - 1, best["results"])

    callback.order = 30  # type: ignore[attr-defined]  (after the evaluation, as lightgbm's own)
    return callback


def threads_for(rows: int, *, cfg: RankConfig) -> int:
    """LightGBM's ``num_threads`` for ``rows`` candidate rows: ``cfg.num_threads`` when set, else 1 below
    ``cfg.single_thread_rows`` and 0 (LightGBM's default, every core) above."""
    if cfg.num_threads:
        return cfg.num_threads
    return 1 if rows < cfg.single_thread_rows else 0


def train_ranker(train: pl.DataFrame, *, cfg: RankConfig, features: list[str]) -> tuple[Any, dict[str, Any]]:
    """Fit LambdaRank on labelled candidates (user, item, label, <features>).

    Queries without a positive are dropped; a random ``holdout_fraction`` of the remaining queries drives
    early stopping. Returns the booster and a small training report.
    """
    lgb = import_lightgbm()
    n_queries = train["user"].n_unique()
    train = with_positives(train).sort("user", "s_rank")
    users = train["user"].unique().sort().to_numpy()
    if len(users) == 0:
        raise ValueError("no training query has its target among the candidates; retrieve deeper (index.k) "
                         "or check that the valid-point candidates belong to these tables")
    rng = np.random.default_rng(cfg.seed)
    n_hold = int(len(users) * cfg.holdout_fraction) if len(users) >= 20 else 0
    hold = rng.choice(users, n_hold, replace=False) if n_hold else np.zeros(0, users.dtype)
    is_hold = pl.col("user").is_in(pl.Series(hold))
    tr, va = train.filter(~is_hold), train.filter(is_hold)
    params = {
        "objective": "lambdarank", "metric": "ndcg", "ndcg_eval_at": [cfg.eval_at],
        "num_leaves": cfg.num_leaves, "learning_rate": cfg.learning_rate, "min_data_in_leaf": cfg.min_data_in_leaf,
        "feature_fraction": cfg.feature_fraction, "lambdarank_truncation_level": cfg.lambdarank_truncation_level,
        "seed": cfg.seed, "deterministic": True, "verbose": -1,
        # column-wise histograms: the same sums whatever the thread count, and no timing of both layouts at
        # Dataset construction (LightGBM's own advice with deterministic = true)
        "force_col_wise": True,
    }
    threads = threads_for(train.height, cfg=cfg)
    if threads:
        params["num_threads"] = threads
    dtr = lgb.Dataset(matrix(tr, features), label=tr["label"].to_numpy(), group=groups(tr), feature_name=features)
    sets, callbacks = [], []
    if va.height:
        sets = [lgb.Dataset(matrix(va, features), label=va["label"].to_numpy(), group=groups(va), reference=dtr)]
        callbacks = [early_stopping(patience=cfg.early_stopping_rounds, min_rounds=min(cfg.min_rounds, cfg.n_estimators))]
    booster = lgb.train(params, dtr, num_boost_round=cfg.n_estimators, valid_sets=sets, callbacks=callbacks)
    report = {"queries": n_queries, "queries_with_positive": int(len(users)), "holdout_queries": int(n_hold),
              "rows": train.height, "best_iteration": int(booster.best_iteration or booster.current_iteration())}
    if va.height:
        report[f"holdout_ndcg@{cfg.eval_at}"] = float(booster.best_score["valid_0"][f"ndcg@{cfg.eval_at}"])
    log.info("rank: trained on %d/%d queries with a positive, %d rounds", len(users), n_queries,
             report["best_iteration"])
    return booster, report


def rerank(booster: Any, f: pl.DataFrame, *, num_threads: int = 0) -> pl.DataFrame:
    """Score candidates with the model; (user, item, score, rank 0-based) best first per user.

    ``num_threads``: LightGBM prediction threads (0 = its default, all cores). On a few hundred rows (a service
    request) 1 is ~6x faster: starting the OpenMP team costs more than walking the trees."""
    feats = list(booster.feature_name())
    extra = {"num_threads": num_threads} if num_threads > 0 else {}
    score = booster.predict(matrix(f, feats), num_iteration=booster.best_iteration or None, **extra)
    return (f.select("user", "item").with_columns(pl.Series("score", score.astype(np.float32)))
            .sort(["user", "score"], descending=[False, True], maintain_order=True)  # ties: the input order
            .with_columns(pl.int_range(pl.len()).over("user").cast(pl.Int32).alias("rank")))


def save_model(booster: Any, *, layout: Layout) -> Path:
    """LightGBM text format (readable, portable across versions), written atomically; never pickle."""
    return R.write_model(layout=layout,
                         save=lambda tmp: booster.save_model(str(tmp), num_iteration=booster.best_iteration or None))


def load_model(*, layout: Layout) -> Any:
    """The run's ranker, verified (digest, text header) before LightGBM's native parser sees a byte."""
    text = R.read_model_text(layout=layout)
    lgb = import_lightgbm()
    try:
        return lgb.Booster(model_str=text)
    except lgb.basic.LightGBMError as e:
        raise R.problem(layout.ranker_model, f"LightGBM cannot parse it ({' '.join(str(e).split())[:200]})",
                        R.rebuild(R.STAGE)) from None


def importance(booster: Any) -> dict[str, float]:
    gain = booster.feature_importance(importance_type="gain")
    pairs = sorted(zip(booster.feature_name(), gain.tolist()), key=lambda p: -p[1])
    return {name: round(float(g), 4) for name, g in pairs}
