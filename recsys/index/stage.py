"""The index stage: student item vectors -> tuned FAISS index + top-K candidates for the ranker.

Reads a student variant's item and user vectors + meta and the tables (``recsys.contracts``, verified); writes
the index, its manifest and the candidates at the valid and test points.
Candidates are written for the users that have targets at that point (the ones anything is evaluated or
trained on), history excluded, ``rank`` 0-based.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import polars as pl

from recsys.artifacts import RunDir, file_sha256, hash_obj, versions
from recsys.contracts import index as IC
from recsys.contracts import lists as L
from recsys.contracts import student as S
from recsys.contracts import tables as T
from recsys.contracts.layout import variant_of
from recsys.data.tables import Split, Tables, load_tables
from recsys.index.build import build_index, check_metric
from recsys.index.config import IndexConfig
from recsys.index.io import save_index
from recsys.index.search import ItemIndex
from recsys.index.seen import Seen
from recsys.index.tune import recall_vs_exact, tune

log = logging.getLogger(__name__)
STAGE = "index"


def search_split(index: ItemIndex, *, user_vectors: np.ndarray, tables: Tables, split: Split, k: int,
                 exact: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top-``k`` for the users with targets at ``split``, history excluded: users (B,), scores and ids (B, k)."""
    users = tables.targets(split)["user"].unique().sort().to_numpy().astype(np.int64)
    seen = Seen.from_frame(tables.history(split), users)
    s, i = index.search(user_vectors[users], k=k, exclude=seen, exact=exact)
    return users, s, i


def to_frame(users: np.ndarray, scores: np.ndarray, ids: np.ndarray) -> pl.DataFrame:
    """(user, item, score, rank 0-based) rows; padding (-1) dropped."""
    k = ids.shape[1]
    keep = (ids >= 0).ravel()
    return pl.DataFrame({
        "user": np.repeat(users, k).astype(np.int32)[keep],
        "item": ids.ravel().astype(np.int32)[keep],
        "score": scores.ravel().astype(np.float32)[keep],
        "rank": np.tile(np.arange(k, dtype=np.int32), len(users))[keep],
    })


def _metrics(cands: pl.DataFrame, tables: Tables, split: Split, ks: tuple[int, ...]) -> dict[str, float]:
    from recsys.metrics import evaluate_lists

    return evaluate_lists(lists=cands, targets=tables.targets(split), n_items=tables.n_items, ks=ks).summary(ks=ks)


def run(cfg: IndexConfig, run_dir: RunDir, *, vectors: str = "student/student_kd", force: bool = False) -> dict:
    """Build, tune and save the index; write candidates for the valid and test points. Returns the report."""
    lay = run_dir.layout
    variant = variant_of(vectors)
    meta = S.read_meta(layout=lay, variant=variant)
    where = str(lay.student_meta(variant))
    check_metric(index_metric=cfg.metric, model_metric=meta["metric"], where=where)
    vec_files = S.paths(lay, variant=variant)[:3]
    key = hash_obj({"cfg": cfg, "vectors": vectors, "v": 2,
                    "inputs": {lay.rel(p): file_sha256(p) for p in [*vec_files, *T.paths(lay)] if p.exists()}})
    if not force and run_dir.is_fresh(STAGE, key):
        log.info("index: up to date, skipped")
        return run_dir.stage_record(STAGE)["report"]  # type: ignore[index]
    t0 = time.perf_counter()
    tables = load_tables(lay)
    items = S.read_item_vectors(layout=lay, variant=variant, n_items=tables.n_items, dim=meta["dim"])
    uv = {s: S.read_user_vectors(layout=lay, variant=variant, split=s, n_users=tables.n_users, dim=items.shape[1])
          for s in ("valid", "test")}
    tb = time.perf_counter()
    index = build_index(items, cfg=cfg, model_metric=meta["metric"])
    build_s = time.perf_counter() - tb
    built = index.cfg  # ``auto`` made concrete
    rng = np.random.default_rng(cfg.seed)
    vusers = tables.targets("valid")["user"].unique().to_numpy()
    tq = uv["valid"][rng.choice(vusers, min(cfg.tune_queries, len(vusers)), replace=False)] if len(vusers) \
        else uv["valid"][:cfg.tune_queries]
    tuned = tune(index, queries=tq, k=cfg.k, target_recall=cfg.target_recall)  # alone: it may time searches
    outs = save_index(index, lay.index, vectors_path=lay.item_vectors(variant), tune=tuned)
    others = None
    if cfg.tradeoff:
        # the trade-off's other kinds are built in a background thread while the candidates are searched (the IVF
        # kinds' k-means take ~5 s each of one core; faiss releases the GIL): on an idle 2-core box the two overlap. So
        # search_seconds_* count the shared cores; the sweep's QPS are measured after, alone
        from concurrent.futures import ThreadPoolExecutor

        from recsys.index.tradeoff import build_kinds

        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="index-tradeoff")
        others = pool.submit(build_kinds, items, cfg=built, model_metric=meta["metric"])
        pool.shutdown(wait=False)
    report: dict[str, Any] = {"kind": built.kind, "metric": cfg.metric, "items": index.count, "dim": index.dim,
                              "build_seconds": round(build_s, 3), "search_params": dict(index.params),
                              "tuned_recall_at_k": tuned.recall, "k": cfg.k, "target_recall": cfg.target_recall}
    for split in ("valid", "test"):
        ts = time.perf_counter()
        users, sc, ids = search_split(index, user_vectors=uv[split], tables=tables, split=split, k=cfg.k)
        report[f"search_seconds_{split}"] = round(time.perf_counter() - ts, 3)
        cands = to_frame(users, sc, ids)
        outs.append(L.write(path=lay.candidates(split), frame=cands))
        if split == "test":
            ks = tuple(sorted({10, 20, cfg.k}))
            report["test_ann"] = _metrics(cands, tables, split, ks)
            if index.exact:  # these lists are the exact ones: nothing to search or score again
                eids, report["test_exact"] = ids, report["test_ann"]
            else:
                _, esc, eids = search_split(index, user_vectors=uv[split], tables=tables, split=split, k=cfg.k,
                                            exact=True)
                report["test_exact"] = _metrics(to_frame(users, esc, eids), tables, split, ks)
            report["ann_vs_exact_recall@10"] = recall_vs_exact(ids[:, :10], eids[:, :10])
            report[f"ann_vs_exact_recall@{cfg.k}"] = recall_vs_exact(ids, eids)
    if others is not None:  # the QPS are measured now, with nothing else running in this process
        from recsys.index.tradeoff import sweep

        points = sweep(items, queries=tq, cfg=built, model_metric=meta["metric"], built=(index, build_s),
                       prebuilt=others.result())
        if tuned.param is not None:  # the sweep moved the stage's own index through its settings
            index.set_params(**{tuned.param: int(tuned.value)})  # type: ignore[arg-type]
        outs.append(IC.write_tradeoff(layout=lay, tradeoff={"k": 10, "queries": len(tq), "points": points}))
    run_dir.record(STAGE, key=key, config=cfg, outputs=outs, seconds=time.perf_counter() - t0, vectors=vectors,
                   report=report, tune=tuned, versions=versions())
    log.info("index: %s, exact-vs-ANN recall@10 %.4f, test recall@%d %.4f (exact %.4f)", built.kind,
             report["ann_vs_exact_recall@10"], cfg.k, report["test_ann"][f"recall@{cfg.k}"],
             report["test_exact"][f"recall@{cfg.k}"])
    return report

