"""The evaluation stage: every system found in the run directory, one split, one metrics.json."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import polars as pl

from recsys.artifacts import RunDir
from recsys.contracts import report as RP
from recsys.data.tables import load_tables
from recsys.eval import plots as P
from recsys.eval.config import EvalConfig
from recsys.eval.report import render
from recsys.eval.slices import POPULARITY, as_dict, history_order, ordered
from recsys.eval.systems import ORDER, System, discover, evaluate, sizes, topk_overlap, tradeoff_points
from recsys.metrics import (
    EvalResult,
    history_length_slices,
    intervals,
    popularity_slices,
    sample_users,
    summarize,
)

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")


def _protocol(run_dir: RunDir, split: str) -> str:
    rec = run_dir.stage_record("data") or {}
    kind = (rec.get("config") or {}).get("split", "leave_one_out")
    name = "leave-one-out" if kind == "leave_one_out" else "temporal"
    return f"{name}, {split} split, full ranking over all items, history excluded"


def served_row(run_dir: RunDir, rows: list[str]) -> dict[str, Any]:
    """The row that is served and why: the rank gate's decision, else the student's ANN list (no ranker ran)."""
    rank = (run_dir.stage_record("rank") or {}).get("report", {}).get("gate")
    if rank and rank.get("served") in rows:
        return {"row": rank["served"], "reason": rank["reason"], "valid": rank["valid"], "margin": rank["margin"]}
    fallback = next((r for r in ("student_kd_ann", "student_kd") if r in rows), rows[0] if rows else None)
    return {"row": fallback, "reason": "no rank gate in this run: the student's own list is served", "valid": {}}


def _map(fn: Callable[[T], R], items: list[T], *, workers: int) -> Iterator[R]:
    """``map(fn, items)`` in order; ``workers`` > 1: that many threads, BLAS at one thread each meanwhile.

    Full ranking of one system is numpy that releases the GIL (the score matmul, partitions, gathers, counts),
    about half of it single-threaded whatever BLAS does: two systems at a time keep both cores of a 2-core box
    busy. Each system's numbers do not depend on it (nothing is shared but read-only inputs)."""
    if workers <= 1 or len(items) <= 1:
        yield from map(fn, items)
        return
    from concurrent.futures import ThreadPoolExecutor

    with _one_blas_thread(), ThreadPoolExecutor(max_workers=workers, thread_name_prefix="eval") as pool:
        yield from pool.map(fn, items)


@contextlib.contextmanager
def _one_blas_thread() -> Iterator[None]:
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn / implicit
        yield
        return
    with threadpool_limits(1, "blas"):
        yield


def run(cfg: EvalConfig, run_dir: RunDir, *, dataset: str | None = None) -> dict[str, Any]:
    """Evaluate all systems; write metrics.json, report.md and report/*.png. Always re-runs (cheap)."""
    t0 = time.perf_counter()
    lay = run_dir.layout
    tables = load_tables(lay)
    split = cfg.split
    curve_ks = tuple(sorted(set(cfg.curve_ks) | set(cfg.ks)))
    pop = popularity_slices(tables.train, n_items=tables.n_items, head=cfg.head_share, tail=cfg.tail_share)
    hist_len = history_length_slices(tables.history(split), bins=cfg.history_bins)
    systems = sorted(discover(lay, split=split, n_users=tables.n_users, n_items=tables.n_items), key=lambda s: (ORDER.index(s.name) if s.name in ORDER else 99, s.name))
    population = tables.targets(split)["user"].n_unique()
    users = sample_users(tables.targets(split), n=cfg.sample_users, seed=cfg.sample_seed) if cfg.sample_users else None
    if users is not None:
        log.info("eval: a seeded sample of %d of %d users (eval.sample_users)", len(users), population)
    rows, curves, pop_parts, len_parts = [], {}, [], []
    h_order = history_order(cfg.history_bins)
    slice_metrics = [f"{m}@{k}" for k in cfg.ks for m in ("ndcg", "recall")]
    found = {}

    def one(s: System) -> tuple[EvalResult, float]:
        t = time.perf_counter()
        res = evaluate(s, tables, split=split, ks=curve_ks, block_users=cfg.block_users, users=users,
                       coverage_ks=cfg.ks)
        return res, time.perf_counter() - t

    for s, (res, secs) in zip(systems, _map(one, systems, workers=cfg.workers)):
        summ = res.summary(ks=cfg.ks)
        row = {"model": s.name, "kind": s.kind, **summ, "eval_seconds": round(secs, 2)}
        if users is not None:
            ci = intervals(res.per_target, ks=cfg.ks, population=population, confidence=cfg.confidence)
            row.update(sampled_users=len(users), population=population, confidence=cfg.confidence,
                       ci={m: [round(lo, 6), round(hi, 6)] for m, (lo, hi) in ci.items()})
        rows.append(row)
        curves[s.name] = {k: v for k, v in summarize(res.per_target, ks=curve_ks).items() if k.startswith("recall@")}
        curves[s.name] = {int(k.split("@")[1]): v for k, v in curves[s.name].items()}
        by_pop = ordered(res.by_slice(pop, on="item", ks=cfg.ks), POPULARITY)
        by_len = ordered(res.by_slice(hist_len, on="user", ks=cfg.ks), h_order)
        rows[-1]["slices"] = {"popularity": as_dict(by_pop, order=POPULARITY, metrics=slice_metrics),
                              "history": as_dict(by_len, order=h_order, metrics=slice_metrics)}
        pop_parts.append(by_pop.with_columns(pl.lit(s.name).alias("model")))
        len_parts.append(by_len.with_columns(pl.lit(s.name).alias("model")))
        found[s.name] = s
        log.info("eval: %-24s recall@10 %.4f  ndcg@10 %.4f", s.name, summ.get("recall@10", 0), summ.get("ndcg@10", 0))
    overlap, tops = {}, {}
    for a, b in [("teacher_adapted", "student_kd"), ("teacher_raw", "student_kd"), ("teacher_raw", "student_no_kd")]:
        if a in found and b in found and cfg.overlap_users > 0:
            overlap[f"top-{cfg.overlap_k} overlap {a} / {b}"] = topk_overlap(
                found[a], found[b], tables, split=split, k=cfg.overlap_k, n_users=cfg.overlap_users, tops=tops)
    pop_frame = pl.concat(pop_parts, how="diagonal_relaxed") if pop_parts else pl.DataFrame()
    len_frame = pl.concat(len_parts, how="diagonal_relaxed") if len_parts else pl.DataFrame()
    counts = dict(tables.targets(split).join(pop, on="item").group_by("slice").len().iter_rows())
    slice_counts = {s: counts.get(s, 0) for s in POPULARITY}
    served = served_row(run_dir, [r["model"] for r in rows])
    plots = []
    if cfg.plots and rows:
        lay.report.mkdir(parents=True, exist_ok=True)
        P.recall_curves({k: v for k, v in curves.items()}, RP.plot_path(lay, "recall_at_k"))
        P.slice_bars(pop_frame, metric=f"ndcg@{cfg.ks[0]}", title="NDCG by item popularity",
                     path=RP.plot_path(lay, "slices_popularity"))
        P.slice_bars(len_frame, metric=f"ndcg@{cfg.ks[0]}", title="NDCG by history length",
                     path=RP.plot_path(lay, "slices_history"))
        plots = [lay.rel(RP.plot_path(lay, n)) for n in ("recall_at_k", "slices_popularity", "slices_history")]
        ann = tradeoff_points(lay)
        if ann:
            P.ann_tradeoff(ann, RP.plot_path(lay, "ann_tradeoff"))
            plots.append(lay.rel(RP.plot_path(lay, "ann_tradeoff")))
    manifest = run_dir.manifest()
    data_rec = manifest.get("stages", {}).get("data", {})
    dataset = dataset or data_rec.get("source", "dataset")
    protocol = _protocol(run_dir, split)
    size = sizes(lay)
    metrics = {"dataset": dataset, "protocol": protocol, "split": split, "served": served["row"],
               "served_why": served, "rows": rows, "sizes": size,
               "slices": {"popularity": pop_frame.to_dicts(), "history_length": len_frame.to_dicts()},
               "overlap": overlap}
    RP.write_metrics(layout=lay, metrics=metrics)
    RP.write_report(layout=lay, text=render(dataset=dataset, protocol=protocol, rows=rows, ks=cfg.ks, pop_slices=pop_frame,
                                     len_slices=len_frame, slice_counts=slice_counts, overlap=overlap, served=served,
                                     manifest=manifest, plots=plots, sizes=size))
    run_dir.update_manifest(eval={"seconds": round(time.perf_counter() - t0, 2), "rows": [r["model"] for r in rows]})
    return metrics
