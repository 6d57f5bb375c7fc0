"""The rank stage: train LambdaRank on the retriever's candidates at the valid point, rerank at test.

Reads the retriever's candidates at the valid and test points (from the ``cfg.candidates`` folder), the tables
and (optionally) the teacher's embeddings and top-K, all through ``recsys.contracts`` (verified); writes the
LightGBM model, the reranked test lists and the feature importances.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import polars as pl

from recsys.artifacts import RunDir, file_sha256, hash_obj, versions
from recsys.contracts import lists as L
from recsys.contracts import problem
from recsys.contracts import ranker as R
from recsys.data.tables import load_tables
from recsys.rank.config import RankConfig
from recsys.rank.features import build_features, feature_columns, label
from recsys.rank.teacher import load_teacher, teacher_files
from recsys.rank.train import importance, rerank, save_model, train_ranker

log = logging.getLogger(__name__)
STAGE = "rank"


def _eval(lists: pl.DataFrame, targets: pl.DataFrame, n_items: int) -> dict[str, float]:
    from recsys.metrics import evaluate_lists

    return evaluate_lists(lists=lists, targets=targets, n_items=n_items, ks=(10, 20)).summary(ks=(10, 20))


def run(cfg: RankConfig, run_dir: RunDir, *, force: bool = False) -> dict[str, Any]:
    """Train on valid-point candidates, rerank test-point candidates, save model and importances."""
    lay = run_dir.layout
    cand_paths = {s: lay.candidates(s, folder=cfg.candidates) for s in ("valid", "test")}
    for p in cand_paths.values():
        if not p.exists():
            raise problem(p, "missing", "run the index stage first (`recsys build-index`)")
    inputs = [*cand_paths.values(), lay.items, *(lay.split(s) for s in ("train", "valid", "test"))]
    if cfg.teacher_space != "none":
        inputs += teacher_files(run_dir.root)
    key = hash_obj({"cfg": cfg, "v": 1, "inputs": {str(p.relative_to(run_dir.root)): file_sha256(p) for p in inputs}})
    if not force and run_dir.is_fresh(STAGE, key):
        log.info("rank: up to date, skipped")
        return run_dir.stage_record(STAGE)["report"]  # type: ignore[index]
    t0 = time.perf_counter()
    tables = load_tables(lay)
    teacher = load_teacher(run_dir.root, space=cfg.teacher_space, n_users=tables.n_users, n_items=tables.n_items)
    cands = {s: L.read_candidates(layout=lay, split=s, n_users=tables.n_users, n_items=tables.n_items,
                                  folder=cfg.candidates) for s in ("valid", "test")}
    fv = label(build_features(cands["valid"], tables=tables, split="valid", teacher=teacher,
                              recent_days=cfg.recent_days), tables.valid)
    features = feature_columns(fv)
    booster, train_report = train_ranker(fv, cfg=cfg, features=features)
    ft = build_features(cands["test"], tables=tables, split="test", teacher=teacher, recent_days=cfg.recent_days)
    reranked = rerank(booster, ft)
    gains = importance(booster)
    outs = [save_model(booster, layout=lay), L.write(path=lay.reranked("test"), frame=reranked),
            R.write_importance(layout=lay, importance={"importance_type": "gain", "features": gains})]
    report: dict[str, Any] = {"train": train_report, "features": features, "teacher": teacher is not None}
    try:
        report["test_retriever"] = _eval(cands["test"], tables.test, tables.n_items)
        report["test_reranked"] = _eval(reranked, tables.test, tables.n_items)
        log.info("rank: test ndcg@10 retriever %.4f -> reranked %.4f", report["test_retriever"]["ndcg@10"],
                 report["test_reranked"]["ndcg@10"])
    except ImportError:  # pragma: no cover - metrics is part of the package
        log.warning("rank: recsys.metrics unavailable; skipping the evaluation summary")
    run_dir.record(STAGE, key=key, config=cfg, outputs=outs, seconds=time.perf_counter() - t0, report=report,
                   versions=versions())
    return report
