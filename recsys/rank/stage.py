"""The rank stage: one LightGBM LambdaRank over the union of every retriever's candidates, gated on valid.

Sources (each a dot-product retriever at the prediction point): the distilled student (its ANN candidates from
the index stage), the adapted teacher and ALS (exact top-K from their vectors). Every candidate carries every
source's exact score and its rank in that source's list (sentinel = ``depth`` when absent). The ranker trains on
the valid point's candidates of a seeded share of the valid users; the others (``gate_fraction``) are the gate:
there the ranker's list and each single retriever's list are scored, and the ranker is served only if it beats
the best of them by ``gate_margin`` (``recsys.rank.gate``); otherwise that retriever's list is served. It is then
refitted on every valid user (same number of rounds) and re-ranks the test point's candidates.

Everything is read and written through ``recsys.contracts`` (verified); the decision and the valid figures go
into the stage record (``report.gate``) and the manifest's ``served``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from recsys.artifacts import RunDir, file_sha256, hash_obj, versions
from recsys.contracts import lists as L
from recsys.contracts import ranker as R
from recsys.data.tables import Split, Tables, load_tables

from recsys.rank.candidates import source_lists, union
from recsys.rank.config import RankConfig
from recsys.rank.features import candidate_features, feature_columns, feature_context, label
from recsys.rank.gate import decide
from recsys.rank.sources import RANKER_ROW, SOURCE_ROWS, load_sources, source_files
from recsys.rank.train import import_lightgbm, importance, rerank, save_model, threads_for, train_ranker

log = logging.getLogger(__name__)
STAGE = "rank"


def _eval(lists: pl.DataFrame, targets: pl.DataFrame, n_items: int) -> dict[str, float]:
    from recsys.metrics import evaluate_lists

    return evaluate_lists(lists=lists, targets=targets, n_items=n_items, ks=(10, 20)).summary(ks=(10, 20))


def candidates(root: Path, cfg: RankConfig, *, tables: Tables, split: Split) -> tuple[pl.DataFrame, dict[str, pl.DataFrame]]:
    """The union of the sources' top-``depth`` for the users with targets at ``split``, and each source's list."""
    sources = load_sources(root, cfg, split=split, n_users=tables.n_users, n_items=tables.n_items)
    query = tables.targets(split)["user"].unique().sort().to_numpy()
    lists = source_lists(sources, query=query, history=tables.history(split), depth=cfg.depth)
    return union(lists, sources=sources, depth=cfg.depth), lists


def user_blocks(frame: pl.DataFrame, *, block_users: int) -> list[pl.DataFrame]:
    """``frame`` split into consecutive blocks of ``block_users`` users (one block when 0)."""
    if not block_users:
        return [frame]
    users = frame["user"].unique().sort()
    return [frame.filter(pl.col("user").is_in(users.slice(s, block_users).implode()))
            for s in range(0, len(users), block_users)]


def _prefetch_lightgbm() -> None:
    with contextlib.suppress(ImportError):  # ``train_ranker`` raises the error that says what to install
        import_lightgbm()


def gate_users(users: np.ndarray, *, share: float, seed: int) -> np.ndarray:
    """The seeded share of the valid users held out from training for the gate."""
    n = int(round(share * len(users)))
    return np.sort(np.random.default_rng(seed + 7).choice(users, size=n, replace=False)) if n else users[:0]


def run(cfg: RankConfig, run_dir: RunDir, *, force: bool = False) -> dict[str, Any]:
    """Train on valid-point candidates, gate on held-out valid users, rerank test-point candidates."""
    lay = run_dir.layout
    root = run_dir.root
    inputs = [p for ps in source_files(lay, cfg).values() for p in ps if p.exists()]
    inputs += [lay.items, *(lay.split(s) for s in ("train", "valid", "test"))]
    key = hash_obj({"cfg": cfg, "v": 2, "inputs": {str(p.relative_to(root)): file_sha256(p) for p in inputs}})
    if not force and run_dir.is_fresh(STAGE, key):
        log.info("rank: up to date, skipped")
        return run_dir.stage_record(STAGE)["report"]  # type: ignore[index]
    t0 = time.perf_counter()
    # lightgbm's import (~1.5 s, most of it scikit-learn's when installed) in a thread while the candidates are
    # built on numpy, which releases the GIL; ``train_ranker``'s own import then waits for it
    threading.Thread(target=_prefetch_lightgbm, name="import-lightgbm", daemon=True).start()
    tables = load_tables(lay)
    cv, lists_v = candidates(root, cfg, tables=tables, split="valid")
    if cfg.train_users:
        from recsys.metrics import of_users, sample_users

        cv = of_users(cv, sample_users(cv, n=cfg.train_users, seed=cfg.seed))
    ctx_v = feature_context(tables=tables, split="valid", recent_days=cfg.recent_days)
    fv = label(candidate_features(cv, ctx=ctx_v), tables.valid)
    features = feature_columns(fv)
    held = pl.Series("user", gate_users(cv["user"].unique().sort().to_numpy(), share=cfg.gate_fraction, seed=cfg.seed))
    is_gate = pl.col("user").is_in(held.implode())
    booster, train_report = train_ranker(fv.filter(~is_gate), cfg=cfg, features=features)
    gate_targets = tables.valid.filter(is_gate)
    prefix_row = {p: row for p, row in SOURCE_ROWS.values()}
    valid_fig = {prefix_row[p]: _eval(lst.filter(is_gate), gate_targets, tables.n_items) for p, lst in lists_v.items()}
    gate_fv = fv.filter(is_gate)
    valid_fig[RANKER_ROW] = _eval(rerank(booster, gate_fv, num_threads=threads_for(gate_fv.height, cfg=cfg)),
                                  gate_targets, tables.n_items)
    decision = decide({r: m[cfg.gate_metric] for r, m in valid_fig.items()}, ranker=RANKER_ROW, margin=cfg.gate_margin)
    log.info("rank gate: %s", decision.reason)
    if cfg.refit and held.len():  # the gate users are data too: refit on every valid user, same rounds
        rounds = int(train_report["best_iteration"])
        booster, refit_report = train_ranker(fv, cfg=dataclasses.replace(cfg, holdout_fraction=0.0,
                                                                          n_estimators=max(1, rounds)), features=features)
        train_report["refit"] = refit_report
    ct, _ = candidates(root, cfg, tables=tables, split="test")
    ctx = feature_context(tables=tables, split="test", recent_days=cfg.recent_days)  # once, for every block
    reranked = pl.concat([_rerank_block(booster, candidate_features(block, ctx=ctx), cfg=cfg)
                          for block in user_blocks(ct, block_users=cfg.block_users)])
    outs = [save_model(booster, layout=lay), L.write(path=lay.reranked("test"), frame=reranked),
            R.write_importance(layout=lay, importance={"importance_type": "gain", "features": importance(booster)})]
    report: dict[str, Any] = {
        "train": train_report, "features": features, "sources": [prefix_row[p] for p in lists_v], "depth": cfg.depth,
        "gate": decision.as_dict(), "valid_gate_users": int(held.len()), "valid": valid_fig,
        "candidates_per_user": {"valid": round(cv.height / max(1, cv["user"].n_unique()), 1),
                                "test": round(ct.height / max(1, ct["user"].n_unique()), 1)},
        "test_reranked": _eval(reranked, tables.test, tables.n_items)}
    log.info("rank: served %s; test ndcg@10 of the re-ranked union %.4f", decision.served,
             report["test_reranked"]["ndcg@10"])
    run_dir.record(STAGE, key=key, config=cfg, outputs=outs, seconds=time.perf_counter() - t0, report=report,
                   versions=versions())
    run_dir.update_manifest(served={"row": decision.served, "reason": decision.reason, "valid": decision.valid,
                                    "margin": decision.margin, "metric": cfg.gate_metric})
    return report


def _rerank_block(booster: Any, f: pl.DataFrame, *, cfg: RankConfig) -> pl.DataFrame:
    return rerank(booster, f, num_threads=threads_for(f.height, cfg=cfg))
