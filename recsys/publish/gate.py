"""The quality gate: a retrained candidate replaces the published version only if it is not worse.

Both systems are scored on the *candidate's* test targets — the newest days of the logs, which
neither trained on — with the candidate's history excluded (full ranking over the whole catalogue).
Vectors are read from files (verified, ``recsys.contracts``) and aligned by raw ids (the id maps), so any two
run directories can be compared even when their id maps differ (e.g. a retrain from scratch).

The published system is measured two ways, and ``gate.baseline`` picks the one that decides:

* ``refreshed`` (default): the published *model* re-applied to today's histories — its weights, run over the
  candidate's tables with no training (``retrain`` exports it as student variant ``published_<variant>``).
  This is what keeping the old model would give; the candidate must beat it by training, not merely by
  having seen the newest events.
* ``as_served``: its stored user vectors, computed from the history it had when it was built (users it has
  never seen have no vector: a miss). Any candidate gains on this one just from fresher histories.

Either way items the published model has never seen cannot be recommended by it (score -inf). The
decision is a point comparison against a tolerance or, for small test windows, a paired bootstrap over
test users (``gate.decision``); the bootstrap interval of the relative change is recorded in both cases.

Beside it, ``Decision.drift`` records how the lists users would see change against the published version
as served (``recsys.publish.drift``: top-k changed, coverage, popularity, score shift, cold items), with
warnings from ``gate.drift`` thresholds that refuse the candidate when ``gate.drift.refuse`` is set.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import polars as pl

from recsys.contracts import student as S
from recsys.contracts import tables as T
from recsys.contracts.layout import Layout
from recsys.data.tables import Split, Tables
from recsys.metrics import EvalResult, paired_change, per_user
from recsys.publish import drift as drift_mod
from recsys.publish.config import DriftConfig, GateConfig


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
    baseline: str = "as_served"  # which published figure decided ("refreshed" or "as_served")
    published_as_served: dict[str, float] | None = None
    change: dict[str, float] | None = None  # relative change vs the deciding baseline, with its bootstrap CI
    drift: dict | None = None  # candidate vs published top-k lists (recsys.publish.drift), with its warnings


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


def system_vectors(run_root: Path, *, variant: str, tables: Tables, split: Split = "test",
                   known_from: Path | None = None) -> Vectors:
    """The student ``variant`` of the run at ``run_root``, aligned to ``tables``' ids.

    ``known_from``: another run whose catalogue limits what may be recommended (the published model
    re-applied to the candidate's tables knows only the published items); default: ``run_root``'s own."""
    lay = Layout(Path(run_root))
    src_users = T.read_id_column(layout=lay, which="users")
    src_items = T.read_id_column(layout=lay, which="items")
    users = S.read_user_vectors(layout=lay, variant=variant, split=split, n_users=len(src_users))
    items = S.read_item_vectors(layout=lay, variant=variant, n_items=len(src_items), dim=users.shape[1])
    u, _ = align_rows(users, src_ids=src_users, dst_ids=tables.users["user_id"])
    i, known = align_rows(items, src_ids=src_items, dst_ids=tables.items["item_id"])
    if known_from is not None:
        ids = T.read_id_column(layout=Layout(Path(known_from)), which="items")
        known &= tables.items["item_id"].cast(pl.String).is_in(ids.cast(pl.String).implode()).to_numpy()
    return Vectors(users=u, items=i, known_items=known)


def evaluate_result(vec: Vectors, *, tables: Tables, split: Split = "test") -> EvalResult:
    """Full-ranking ranks on ``split`` (history excluded); unknown items are never recommended."""
    from recsys.metrics import evaluate_scores

    unknown = ~vec.known_items

    def score(users: np.ndarray) -> np.ndarray:
        s = vec.users[users] @ vec.items.T
        s[:, unknown] = -np.inf
        return s

    return evaluate_scores(score_fn=score, targets=tables.targets(split), history=tables.history(split),
                           n_items=tables.n_items)


def summary(res: EvalResult) -> dict[str, float]:
    return {k: round(float(v), 6) for k, v in res.summary(ks=(10, 20)).items()}


def evaluate_vectors(vec: Vectors, *, tables: Tables, split: Split = "test") -> dict[str, float]:
    """Full-ranking metrics on ``split`` (history excluded); unknown items are never recommended."""
    return summary(evaluate_result(vec, tables=tables, split=split))


def paired_values(a: EvalResult, b: EvalResult, *, metric: str) -> pl.DataFrame:
    """(user, a, b): ``metric`` per test user of two systems scored on the same targets."""
    return per_user(a.per_target, metric=metric).rename({"value": "a"}).join(
        per_user(b.per_target, metric=metric).rename({"value": "b"}), on="user", how="inner")


def change_between(cfg: GateConfig, a: EvalResult, b: EvalResult) -> dict[str, float]:
    """Relative change of ``cfg.metric`` from ``b`` to ``a`` over the same targets, with a paired bootstrap CI."""
    j = paired_values(a, b, metric=cfg.metric)
    return paired_change(j["a"].to_numpy(), j["b"].to_numpy(), samples=cfg.bootstrap_samples,
                         confidence=cfg.confidence).as_dict()


def decide(cfg: GateConfig, *, candidate: dict[str, float], published: dict[str, float] | None,
           change: dict[str, float] | None = None, baseline: str = "as_served",
           published_as_served: dict[str, float] | None = None) -> Decision:
    """``point``: pass iff ``candidate[metric] >= published[metric] * (1 - tolerance) - abs_tolerance``.
    ``bootstrap``: refuse iff the upper end of ``change``'s interval is below ``-tolerance`` (confidently worse) or the
    point estimate is below ``-max_drop``."""
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
    rel = (c - p) / p if p > 0 else float("inf") if c > 0 else 0.0
    ci = "" if change is None else \
        f" ({change['confidence']:.0%} CI {change['low']:+.1%}..{change['high']:+.1%} over {change['users']} users)"
    if cfg.decision == "bootstrap":
        if change is None:
            raise ValueError("gate.decision=bootstrap needs the per-user change")
        confident = change["high"] < -cfg.tolerance
        collapsed = rel < -cfg.max_drop
        ok = not (confident or collapsed)
        reason = (f"candidate {cfg.metric} {c:.4f} vs {baseline} published {p:.4f}: change {rel:+.1%}{ci}; "
                  f"{'confidently' if confident else 'not confidently'} below -{cfg.tolerance:.0%}"
                  + (f", and the point estimate loses more than gate.max_drop={cfg.max_drop:.0%}" if collapsed else ""))
    else:
        ok = c >= threshold
        reason = (f"candidate {cfg.metric} {c:.4f} {'>=' if ok else '<'} threshold {threshold:.4f} "
                  f"({baseline} published {p:.4f} x (1 - {cfg.tolerance}) - {cfg.abs_tolerance}); "
                  f"change {rel:+.1%}{ci}")
    return Decision(ok, reason, cfg.metric, candidate, published, round(threshold, 6), users, baseline,
                    published_as_served, change)


def compare(cfg: GateConfig, *, candidate: Path, published: Path | None, tables: Tables,
            variant: str = "student_kd", refreshed: str | None = None) -> Decision:
    """Score candidate and published runs on ``tables``' test targets and decide.

    ``refreshed``: the candidate run's student variant holding the published model re-applied to the
    candidate's tables; it decides when ``cfg.baseline == "refreshed"``."""
    cand_vec = system_vectors(candidate, variant=variant, tables=tables)
    cand = evaluate_result(cand_vec, tables=tables)
    if published is None:
        return decide(cfg, candidate=summary(cand), published=None)
    served_vec = system_vectors(published, variant=variant, tables=tables)
    served = evaluate_result(served_vec, tables=tables)
    base, name = served, "as_served"
    if cfg.baseline == "refreshed":
        if refreshed is None:
            raise ValueError("gate.baseline=refreshed needs the published model re-applied to the candidate's "
                             "tables (student variant published_<variant>)")
        base = evaluate_result(system_vectors(candidate, variant=refreshed, tables=tables, known_from=published),
                               tables=tables)
        name = "refreshed"
    d = decide(cfg, candidate=summary(cand), published=summary(base), change=change_between(cfg, cand, base),
               baseline=name, published_as_served=summary(served))
    if not cfg.drift.enabled:
        return d
    return with_drift(d, drift_record(cfg.drift, candidate=cand_vec, published=served_vec, tables=tables),
                      cfg=cfg.drift)


def drift_record(cfg: DriftConfig, *, candidate: Vectors, published: Vectors, tables: Tables,
                 split: Split = "test") -> dict:
    """Top-``cfg.k`` lists of both systems for ``split``'s target users that the published version has a vector
    for (at most ``cfg.max_users``), history excluded, compared by ``drift.compare_lists``; plus its warnings."""
    users = np.unique(tables.targets(split)["user"].to_numpy()).astype(np.int64)
    has_pub = np.linalg.norm(published.users[users], axis=1) > 0
    users = users[has_pub][: cfg.max_users]
    hist = tables.history(split).select("user", "item").unique().filter(pl.col("user").is_in(users.tolist()))
    pos = pl.DataFrame({"user": users.astype(np.int32), "row": np.arange(len(users))}) \
        .with_columns(pl.col("user").cast(hist["user"].dtype))
    h = hist.join(pos, on="user").sort("row")
    ptr = np.zeros(len(users) + 1, np.int64)
    np.cumsum(np.bincount(h["row"].to_numpy(), minlength=len(users)), out=ptr[1:])
    idx = h["item"].to_numpy().astype(np.int64)
    cs, ci = drift_mod.top_k(candidate.users[users], candidate.items, k=cfg.k, exclude_ptr=ptr, exclude_idx=idx,
                             allowed=candidate.known_items)
    ps, pi = drift_mod.top_k(published.users[users], published.items, k=cfg.k, exclude_ptr=ptr, exclude_idx=idx,
                             allowed=published.known_items)
    counts = np.bincount(tables.train["item"].to_numpy(), minlength=tables.n_items)
    rec = drift_mod.compare_lists(cand_items=ci, pub_items=pi, cand_scores=cs, pub_scores=ps, popularity=counts,
                                  cold=counts == 0)
    rec["users_without_published_vector"] = int((~has_pub).sum())
    rec["warnings"] = drift_mod.warnings(rec, cfg)
    return rec


def with_drift(d: Decision, record: dict, *, cfg: DriftConfig) -> Decision:
    """``d`` with its drift record; a passing candidate with drift warnings is refused when ``cfg.refuse``."""
    warn = record.get("warnings") or []
    if warn and cfg.refuse and d.passed:
        return dataclasses.replace(d, passed=False, drift=record,
                                   reason=f"{d.reason}; refused on drift (gate.drift.refuse): {'; '.join(warn)}")
    return dataclasses.replace(d, drift=record)
