"""Discover the systems a run directory holds and evaluate each with the shared metrics.

A system is evaluated from files only: score vectors for full ranking (exact), or ranked lists for
retrieval through an ANN index and re-ranking. Row names follow the metrics.json contract.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import numpy as np
import polars as pl

from recsys.contracts import baselines as B
from recsys.contracts import index as IC
from recsys.contracts import lists as L
from recsys.contracts import student as S
from recsys.contracts import teacher as TC
from recsys.contracts.layout import Layout
from recsys.data.tables import Split, Tables
from recsys.metrics import (
    EvalResult,
    ScoreFn,
    dot_scorer,
    evaluate_lists,
    evaluate_scores,
    of_users,
)
from recsys.topk import top_k_set

# Report order; anything else found (e.g. extra student variants) follows.
ORDER = ["most_popular", "als", "teacher_raw", "teacher_adapted", "student_no_kd", "student_kd_emb",
         "student_kd_rank", "student_kd", "student_kd_int8", "student_kd_pruned", "student_kd_ann",
         "student_intermediate", "student_kd_ml", "union_rerank"]


@dataclasses.dataclass(frozen=True)
class System:
    name: str
    kind: str  # "full ranking (exact)" | "ANN lists" | "re-ranked lists"
    score_fn: ScoreFn | None = None
    lists: pl.DataFrame | None = None
    vectors: tuple[np.ndarray, np.ndarray] | None = None  # (users, items) when the system is a dot product


def discover(layout: Layout, *, split: Split, n_users: int, n_items: int) -> Iterator[System]:
    """Every system the run holds, each file verified (``recsys.contracts``) before it is scored."""
    if B.has_popularity(layout, split=split):
        counts = B.read_popularity(layout=layout, split=split, n_items=n_items)
        # tiny index-based tie-break so equal counts do not all tie with the target (which would count against it)
        score = counts - 1e-6 * np.arange(len(counts)) / len(counts)
        yield System("most_popular", "full ranking (exact)", score_fn=lambda users: np.broadcast_to(score, (len(users), len(score))))
    if B.has_als(layout, split=split):
        u, i = B.read_als(layout=layout, split=split, n_users=n_users, n_items=n_items)
        yield System("als", "full ranking (exact)", score_fn=dot_scorer(u, i), vectors=(u, i))
    if TC.present(layout):
        items, users = TC.read_items(layout=layout, n_items=n_items), TC.read_users(layout=layout, n_users=n_users)
        for which in ("raw", "adapted"):
            if which in items and f"{which}_{split}" in users:
                u, i = users[f"{which}_{split}"], items[which]
                yield System(f"teacher_{which}", "full ranking (exact)", score_fn=dot_scorer(u, i), vectors=(u, i))
    for v in S.variants(layout):
        if not S.has_user_vectors(layout, variant=v, split=split):
            continue
        u = S.read_user_vectors(layout=layout, variant=v, split=split, n_users=n_users)
        i = S.read_item_vectors(layout=layout, variant=v, n_items=n_items, dim=u.shape[1])
        yield System(v, "full ranking (exact)", score_fn=dot_scorer(u, i), vectors=(u, i))
        if v == "student_kd" and S.has_int8(layout, variant=v):  # one int8 row: the served model
            q, scales = S.read_int8(layout=layout, variant=v, n_items=n_items, dim=u.shape[1])
            iq = q.astype(np.float32) * scales.reshape(-1, 1)
            yield System(f"{v}_int8", "full ranking (exact, int8 items)", score_fn=dot_scorer(u, iq))
        if v == "student_kd" and S.has_pruned(layout, variant=v):  # the pruned twin (size vs quality)
            pu, pi = S.read_pruned_vectors(layout=layout, variant=v, split=split, n_users=n_users, n_items=n_items)
            yield System(f"{v}_pruned", "full ranking (exact, pruned student)", score_fn=dot_scorer(pu, pi),
                         vectors=(pu, pi))
    if L.has_candidates(layout, split=split):
        yield System("student_kd_ann", "ANN lists",
                     lists=L.read_candidates(layout=layout, split=split, n_users=n_users, n_items=n_items))
    if L.has_reranked(layout, split=split):
        yield System("union_rerank", "re-ranked lists",
                     lists=L.read_reranked(layout=layout, split=split, n_users=n_users, n_items=n_items))


def tradeoff_points(layout: Layout) -> list[dict]:
    """The index stage's ANN recall/latency sweep ([] when it did not sweep)."""
    return IC.read_tradeoff(layout=layout)


def evaluate(system: System, tables: Tables, *, split: Split, ks: tuple[int, ...], block_users: int = 1024,
             users: np.ndarray | None = None, coverage_ks: tuple[int, ...] | None = None) -> EvalResult:
    """Full ranking in blocks of ``block_users``, or the system's lists; only ``users`` (None = all) count.
    ``coverage_ks``: the cut-offs whose coverage is measured (None = ``ks``; the report shows only its headline
    ones, and each user's top-K for coverage is the costliest part of full ranking after the scores)."""
    targets, history = tables.targets(split), tables.history(split)
    if users is not None:
        targets, history = of_users(targets, users), of_users(history, users)
    if system.score_fn is not None:
        return evaluate_scores(score_fn=system.score_fn, targets=targets, history=history,
                               n_items=tables.n_items, ks=ks, batch_size=block_users, coverage_ks=coverage_ks)
    assert system.lists is not None
    lists = system.lists if users is None else of_users(system.lists, users)
    return evaluate_lists(lists=lists, targets=targets, n_items=tables.n_items,
                          ks=ks if coverage_ks is None else coverage_ks)


def overlap_users(tables: Tables, *, split: Split, n_users: int, seed: int = 0) -> np.ndarray:
    """The seeded sample of users with a target at ``split`` that ``topk_overlap`` compares on."""
    users = np.unique(tables.targets(split)["user"].to_numpy())
    return np.random.default_rng(seed).choice(users, size=min(n_users, len(users)), replace=False)


def top_sets(s: System, tables: Tables, *, split: Split, k: int, users: np.ndarray) -> np.ndarray:
    """(len(users), k) item ids of each user's top-``k`` by ``s`` (history excluded; order within a row unset)."""
    assert s.score_fn is not None
    hist = tables.history(split).filter(pl.col("user").is_in(users.tolist()))
    pos = {u: r for r, u in enumerate(users)}
    rows = np.array([pos[u] for u in hist["user"].to_list()], dtype=np.int64)
    cols = hist["item"].to_numpy()
    sc = np.array(s.score_fn(users), dtype=np.float32, copy=True)
    sc[rows, cols] = -np.inf
    # the set ``np.argpartition(-sc, k)[:, :k]`` keeps (its choice among ties across the k-th place included),
    # without a partition over every item of every row
    return top_k_set(sc, k, tied=lambda r: np.argpartition(-r, k, axis=1)[:, :k])


def topk_overlap(a: System, b: System, tables: Tables, *, split: Split, k: int, n_users: int, seed: int = 0,
                 tops: dict[str, np.ndarray] | None = None) -> float:
    """Mean |top-k(a) ∩ top-k(b)| / k over a sample of users (history excluded in both).

    ``tops``: a cache of ``top_sets`` by system name (the same sample of users, ``k`` and ``split``), filled here,
    so a system compared twice is scored once."""
    users = overlap_users(tables, split=split, n_users=n_users, seed=seed)
    tops = {} if tops is None else tops
    for s in (a, b):
        if s.name not in tops:
            tops[s.name] = top_sets(s, tables, split=split, k=k, users=users)
    ta, tb = tops[a.name], tops[b.name]
    return float(np.mean([len(np.intersect1d(x, y)) / k for x, y in zip(ta, tb)]))


def sizes(layout: Layout, *, variant: str = "student_kd") -> dict:
    """Model bytes of ``variant`` as trained (fp32), int8 and pruned, from its pruned meta ({} when not pruned)."""
    if not S.has_pruned(layout, variant=variant):
        return {}
    meta = S.read_pruned_meta(layout=layout, variant=variant)
    return {"variant": variant, "config": meta.get("config", {}), **meta.get("sizes", {})}
