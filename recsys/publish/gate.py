"""The quality gate: a retrained candidate replaces the published version only if it is not worse.

Both systems are scored on the *candidate's* test targets — the newest days of the logs, which
neither trained on — with the candidate's history excluded (full ranking over the whole catalogue).
Vectors are read from files and aligned by raw ids (``users.parquet`` / ``items.parquet``), so any two
run directories can be compared even when their id maps differ (e.g. a retrain from scratch).

The published system is measured *as served*: its stored item vectors and its stored user vectors,
which were computed from the history it had when it was built. Items it has never seen cannot be
recommended by it (score -inf) and users it has never seen have no vector (a miss). That is the
question the gate answers: would serving the candidate instead of what is served now be worse?
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import polars as pl

from recsys.artifacts import read_npy
from recsys.data.tables import Split, Tables
from recsys.publish.config import GateConfig


@dataclasses.dataclass(frozen=True)
class Vectors:
    """A dot-product system in some table's id space: users (U, d), items (N, d), known items (N,) bool."""

    users: np.ndarray
    items: np.ndarray
    known_items: np.ndarray


@dataclasses.dataclass(frozen=True)
class Decision:
    passed: bool
    reason: str
    metric: str
    candidate: dict[str, float]
    published: dict[str, float] | None
    threshold: float | None
    test_users: int


def align_rows(values: np.ndarray, *, src_ids: pl.Series, dst_ids: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``values`` (indexed like ``src_ids``) reordered to ``dst_ids``; absent ids get zero rows.

    Returns (aligned (len(dst), d), found (len(dst),) bool).
    """
    src = pl.DataFrame({"id": src_ids.cast(pl.String), "src": np.arange(len(src_ids), dtype=np.int64)})
    dst = pl.DataFrame({"id": dst_ids.cast(pl.String)}).with_row_index("dst")
    m = dst.join(src, on="id", how="left").sort("dst")
    found = m["src"].is_not_null().to_numpy()
    out = np.zeros((len(dst_ids), values.shape[1]), dtype=np.float32)
    out[found] = values[m["src"].drop_nulls().to_numpy()]
    return out, found


def system_vectors(run_root: Path, *, variant: str, tables: Tables, split: Split = "test") -> Vectors:
    """The student ``variant`` of the run at ``run_root``, aligned to ``tables``' ids."""
    d = run_root / "student" / variant
    users = read_npy(d / f"user_vectors_{split}.npy")
    items = read_npy(d / "item_vectors.npy")
    src_users = pl.read_parquet(run_root / "tables" / "users.parquet", columns=["user_id"])["user_id"]
    src_items = pl.read_parquet(run_root / "tables" / "items.parquet", columns=["item_id"])["item_id"]
    u, _ = align_rows(users, src_ids=src_users, dst_ids=tables.users["user_id"])
    i, known = align_rows(items, src_ids=src_items, dst_ids=tables.items["item_id"])
    return Vectors(users=u, items=i, known_items=known)


def evaluate_vectors(vec: Vectors, *, tables: Tables, split: Split = "test") -> dict[str, float]:
    """Full-ranking metrics on ``split`` (history excluded); unknown items are never recommended."""
    from recsys.metrics import evaluate_scores

    unknown = ~vec.known_items

    def score(users: np.ndarray) -> np.ndarray:
        s = vec.users[users] @ vec.items.T
        s[:, unknown] = -np.inf
        return s

    res = evaluate_scores(score_fn=score, targets=tables.targets(split), history=tables.history(split),
                          n_items=tables.n_items)
    return {k: round(float(v), 6) for k, v in res.summary(ks=(10, 20)).items()}


def decide(cfg: GateConfig, *, candidate: dict[str, float], published: dict[str, float] | None) -> Decision:
    """Pass iff ``candidate[metric] >= published[metric] * (1 - tolerance) - abs_tolerance``."""
    users = int(candidate.get("users", 0))
    if cfg.metric not in candidate:
        raise KeyError(f"gate.metric '{cfg.metric}' is not measured; choose one of {sorted(candidate)}")
    c = candidate[cfg.metric]
    if published is None:
        return Decision(True, "nothing published yet: the first version is published as is", cfg.metric,
                        candidate, None, None, users)
    if users < cfg.min_users:
        return Decision(False, f"only {users} test users (< gate.min_users={cfg.min_users}): no evidence",
                        cfg.metric, candidate, published, None, users)
    p = published[cfg.metric]
    threshold = p * (1.0 - cfg.tolerance) - cfg.abs_tolerance
    ok = c >= threshold
    rel = (c - p) / p if p > 0 else float("inf") if c > 0 else 0.0
    reason = (f"candidate {cfg.metric} {c:.4f} {'>=' if ok else '<'} threshold {threshold:.4f} "
              f"(published {p:.4f} x (1 - {cfg.tolerance}) - {cfg.abs_tolerance}); change {rel:+.1%}")
    return Decision(ok, reason, cfg.metric, candidate, published, round(threshold, 6), users)


def compare(cfg: GateConfig, *, candidate: Path, published: Path | None, tables: Tables,
            variant: str = "student_kd") -> Decision:
    """Score candidate and published runs on ``tables``' test targets and decide."""
    cand = evaluate_vectors(system_vectors(candidate, variant=variant, tables=tables), tables=tables)
    pub = None
    if published is not None:
        pub = evaluate_vectors(system_vectors(published, variant=variant, tables=tables), tables=tables)
    return decide(cfg, candidate=cand, published=pub)
