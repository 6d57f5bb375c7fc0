"""The rank stage: train LambdaRank on the retriever's candidates at the valid point, rerank at test.

Reads ``<run>/<cfg.candidates>/candidates_{valid,test}.parquet``, the tables and (optionally) the teacher's
embeddings and top-K; writes ``<run>/rank/{model.txt, reranked_test.parquet, feature_importance.json}``.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import polars as pl

from recsys.artifacts import (ArtifactError, RunDir, file_sha256, hash_obj, read_safetensors, versions, write_json,
                              write_parquet)
from recsys.data.tables import load_tables
from recsys.rank.config import RankConfig
from recsys.rank.features import Teacher, build_features, feature_columns, label
from recsys.rank.train import importance, rerank, save_model, train_ranker

log = logging.getLogger(__name__)
STAGE = "rank"


def load_teacher(root: Path, *, space: str) -> Teacher | None:
    """Teacher embeddings in ``space`` ("auto" = adapted if present else raw); None if absent or "none"."""
    tdir = root / "teacher"
    if space == "none" or not (tdir / "item_emb.safetensors").exists() or not (tdir / "user_emb.safetensors").exists():
        return None
    items = read_safetensors(tdir / "item_emb.safetensors")
    if space == "auto":
        space = "adapted" if "adapted" in items else "raw"
    users = read_safetensors(tdir / "user_emb.safetensors")
    keys = [space, f"{space}_valid", f"{space}_test"]
    if space not in items or any(k not in users for k in keys[1:]):
        raise ArtifactError(f"{tdir}: teacher space '{space}' not found (items: {sorted(items)}, users: {sorted(users)})")
    empty = pl.DataFrame(schema={"user": pl.Int32, "item": pl.Int32, "rank": pl.Int32})
    topk = {s: pl.read_parquet(tdir / f"topk_{s}.parquet") if (tdir / f"topk_{s}.parquet").exists() else empty
            for s in ("valid", "test")}
    return Teacher(items=items[space], users={s: users[f"{space}_{s}"] for s in ("valid", "test")}, topk=topk)


def teacher_files(root: Path) -> list[Path]:
    return [p for p in [root / "teacher" / n for n in ("item_emb.safetensors", "user_emb.safetensors",
                                                         "topk_valid.parquet", "topk_test.parquet")] if p.exists()]


def _eval(lists: pl.DataFrame, targets: pl.DataFrame, n_items: int) -> dict[str, float]:
    from recsys.metrics import evaluate_lists

    return evaluate_lists(lists=lists, targets=targets, n_items=n_items, ks=(10, 20)).summary(ks=(10, 20))


def run(cfg: RankConfig, run_dir: RunDir, *, force: bool = False) -> dict[str, Any]:
    """Train on valid-point candidates, rerank test-point candidates, save model and importances."""
    lay = run_dir.layout
    cdir = run_dir.root / cfg.candidates
    cand_paths = {s: cdir / f"candidates_{s}.parquet" for s in ("valid", "test")}
    for p in cand_paths.values():
        if not p.exists():
            raise ArtifactError(f"{p}: missing; run the index stage first")
    inputs = [*cand_paths.values(), lay.items, lay.split("train"), lay.split("valid"), lay.split("test")]
    if cfg.teacher_space != "none":
        inputs += teacher_files(run_dir.root)
    key = hash_obj({"cfg": cfg, "v": 1, "inputs": {str(p.relative_to(run_dir.root)): file_sha256(p) for p in inputs}})
    if not force and run_dir.is_fresh(STAGE, key):
        log.info("rank: up to date, skipped")
        return run_dir.stage_record(STAGE)["report"]  # type: ignore[index]
    t0 = time.perf_counter()
    tables = load_tables(lay)
    teacher = load_teacher(run_dir.root, space=cfg.teacher_space)
    cands = {s: pl.read_parquet(p) for s, p in cand_paths.items()}
    fv = label(build_features(cands["valid"], tables=tables, split="valid", teacher=teacher,
                              recent_days=cfg.recent_days), tables.valid)
    features = feature_columns(fv)
    booster, train_report = train_ranker(fv, cfg=cfg, features=features)
    ft = build_features(cands["test"], tables=tables, split="test", teacher=teacher, recent_days=cfg.recent_days)
    reranked = rerank(booster, ft)
    out = lay.stage_dir(STAGE)
    gains = importance(booster)
    outs = [save_model(booster, out / "model.txt"), write_parquet(out / "reranked_test.parquet", reranked),
            write_json(out / "feature_importance.json", {"importance_type": "gain", "features": gains})]
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
