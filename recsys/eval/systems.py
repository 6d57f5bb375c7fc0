"""Discover the systems a run directory holds and evaluate each with the shared metrics.

A system is evaluated from files only: score vectors for full ranking (exact), or ranked lists for
retrieval through an ANN index and re-ranking. Row names follow the metrics.json contract.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl

from recsys.artifacts import Layout, read_npy, read_safetensors
from recsys.data.tables import Split, Tables
from recsys.metrics import EvalResult, ScoreFn, dot_scorer, evaluate_lists, evaluate_scores

# Report order; anything else found (e.g. extra student variants) follows.
ORDER = ["most_popular", "als", "teacher_raw", "teacher_adapted", "student_no_kd", "student_kd_emb",
         "student_kd_rank", "student_kd", "student_kd_int8", "student_kd_ann", "student_kd_ann_rerank"]


@dataclasses.dataclass(frozen=True)
class System:
    name: str
    kind: str  # "full ranking (exact)" | "ANN lists" | "re-ranked lists"
    score_fn: ScoreFn | None = None
    lists: pl.DataFrame | None = None
    vectors: tuple[np.ndarray, np.ndarray] | None = None  # (users, items) when the system is a dot product


def discover(layout: Layout, *, split: Split) -> Iterator[System]:
    base = layout.stage_dir("baselines")
    pop = base / f"popularity_{split}.npy"
    if pop.exists():
        counts = read_npy(pop)
        # tiny index-based tie-break so equal counts do not all tie with the target (which would count against it)
        score = counts - 1e-6 * np.arange(len(counts)) / len(counts)
        yield System("most_popular", "full ranking (exact)", score_fn=lambda users: np.broadcast_to(score, (len(users), len(score))))
    if (base / f"als_user_{split}.npy").exists():
        u, i = read_npy(base / f"als_user_{split}.npy"), read_npy(base / f"als_item_{split}.npy")
        yield System("als", "full ranking (exact)", score_fn=dot_scorer(u, i), vectors=(u, i))
    t = layout.stage_dir("teacher")
    if (t / "item_emb.safetensors").exists():
        items, users = read_safetensors(t / "item_emb.safetensors"), read_safetensors(t / "user_emb.safetensors")
        for which in ("raw", "adapted"):
            if which in items and f"{which}_{split}" in users:
                u, i = users[f"{which}_{split}"], items[which]
                yield System(f"teacher_{which}", "full ranking (exact)", score_fn=dot_scorer(u, i), vectors=(u, i))
    sdir = layout.stage_dir("student")
    if sdir.exists():
        for d in sorted(p for p in sdir.iterdir() if (p / "item_vectors.npy").exists()):
            uf = d / f"user_vectors_{split}.npy"
            if not uf.exists():
                continue
            u, i = read_npy(uf), read_npy(d / "item_vectors.npy")
            yield System(d.name, "full ranking (exact)", score_fn=dot_scorer(u, i), vectors=(u, i))
            q, scales = d / "item_vectors_int8.npy", d / "item_vectors_scales.npy"
            if d.name == "student_kd" and q.exists() and scales.exists():  # one int8 row: the served model
                iq = read_npy(q).astype(np.float32) * read_npy(scales).reshape(-1, 1)
                yield System(f"{d.name}_int8", "full ranking (exact, int8 items)", score_fn=dot_scorer(u, iq))
    for path, name, kind in [(layout.stage_dir("index") / f"candidates_{split}.parquet", "student_kd_ann", "ANN lists"),
                             (layout.stage_dir("rank") / f"reranked_{split}.parquet", "student_kd_ann_rerank",
                              "re-ranked lists")]:
        if path.exists():
            yield System(name, kind, lists=pl.read_parquet(path))


def evaluate(system: System, tables: Tables, *, split: Split, ks: tuple[int, ...]) -> EvalResult:
    targets = tables.targets(split)
    if system.score_fn is not None:
        return evaluate_scores(score_fn=system.score_fn, targets=targets, history=tables.history(split),
                               n_items=tables.n_items, ks=ks)
    assert system.lists is not None
    return evaluate_lists(lists=system.lists, targets=targets, n_items=tables.n_items, ks=ks)


def topk_overlap(a: System, b: System, tables: Tables, *, split: Split, k: int, n_users: int, seed: int = 0) -> float:
    """Mean |top-k(a) ∩ top-k(b)| / k over a sample of users (history excluded in both)."""
    assert a.score_fn is not None and b.score_fn is not None
    users = np.unique(tables.targets(split)["user"].to_numpy())
    users = np.random.default_rng(seed).choice(users, size=min(n_users, len(users)), replace=False)
    hist = tables.history(split).filter(pl.col("user").is_in(users.tolist()))
    pos = {u: r for r, u in enumerate(users)}
    rows = np.array([pos[u] for u in hist["user"].to_list()], dtype=np.int64)
    cols = hist["item"].to_numpy()

    def top(s: System) -> np.ndarray:
        sc = np.array(s.score_fn(users), dtype=np.float32, copy=True)  # type: ignore[misc]
        sc[rows, cols] = -np.inf
        return np.argpartition(-sc, k, axis=1)[:, :k]

    ta, tb = top(a), top(b)
    return float(np.mean([len(np.intersect1d(x, y)) / k for x, y in zip(ta, tb)]))


def load_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}
