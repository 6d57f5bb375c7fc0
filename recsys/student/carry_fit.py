"""Choose the per-item carry's ``shift`` on valid, per run: the one setting of the carry that no one catalogue fixes.

``shift`` decides how much of the residual weight an item did not earn moves to its teacher part
(``recsys.student.carry``). Where few-event items are the ones users come back for (Beauty, Toys: tail and cold
targets), a high shift carries the teacher to them; where the items without events are the ones nobody buys (a
shop log whose rarely sold lines were k-core filtered: UCI Online Retail has 619 of 3,798), the same shift fills
every list with them (valid NDCG@10 there 0.209 at 0.75 vs 0.240 at 0.25).

Rule: among ``shifts``, keep those whose valid NDCG@10 on every tail/cold slice with at least ``min_targets``
targets is at least the adapted teacher's on that slice (the student must carry the teacher where it is better)
and take the best overall valid NDCG@10 among them; if none qualifies, the one closest to qualifying (largest
worst slice ratio). All mixtures come from the same two matmuls (the teacher's ranking is the carried part's
own), so the fit costs two matmuls and one ranking per shift. In a process group every rank ranks a share of the
users (``shift_rankings``) and rank 0 decides on their merge (``recsys.student.stage``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from recsys import metrics
from recsys.contracts.tables import Tables
from recsys.student.carry import item_scales

GUARDED = ("tail", "cold")  # the slices where the student must not lose to its teacher


@dataclasses.dataclass(frozen=True)
class CarryFit:
    shift: float
    trained_shift: float  # what the epochs were validated with
    rows: list[dict[str, Any]]  # per shift: ndcg@10 overall and per slice, qualifies
    teacher: dict[str, Any]  # the adapted teacher's valid NDCG@10 overall and per slice
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def split_parts(*, items: np.ndarray, teacher_dim: int, scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Item vectors encoded with per-item ``scale`` (N, 2) -> their unscaled ``sqrt(a) t`` and ``sqrt(1 - a) r``
    parts. An item whose residual scale is 0 (no training events) gets a zero residual (no shift gives it one)."""
    t = items[:, :teacher_dim] / scale[:, :1]
    r_scale = scale[:, 1:]
    r = np.where(r_scale > 0, items[:, teacher_dim:] / np.where(r_scale > 0, r_scale, 1.0), 0.0)
    return t.astype(np.float32), r.astype(np.float32)


def join_parts(*, t: np.ndarray, r: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return np.concatenate([t * scale[:, :1], r * scale[:, 1:]], axis=1).astype(np.float32)


def choose(*, rows: list[dict[str, Any]], teacher: dict[str, Any], targets: dict[str, float],
           min_targets: int) -> tuple[dict[str, Any], str]:
    """The module's rule over ``rows`` ({"shift", "all", "tail", "cold", ...} valid NDCG@10 per shift; each row
    gets "worst_ratio" and "qualifies" added) against the teacher's slices -> (the chosen row, why)."""
    guarded = [s for s in GUARDED if targets.get(s, 0) >= min_targets and teacher.get(s)]
    for row in rows:
        ratio = min((row[s] / teacher[s] for s in guarded), default=None)
        row["worst_ratio"], row["qualifies"] = ratio, ratio is None or ratio >= 1.0
    ok = [row for row in rows if row["qualifies"]]
    if ok:
        best = max(ok, key=lambda row: row["all"])
        return best, (f"best valid ndcg@10 ({best['all']:.4f}) among shifts whose {'/'.join(guarded) or 'no'} "
                      f"slices reach the teacher's")
    best = max(rows, key=lambda row: row["worst_ratio"])
    return best, (f"no shift reaches the teacher on {'/'.join(guarded)}; the closest (worst slice at "
                  f"{best['worst_ratio']:.2f}x the teacher's)")


def shift_rankings(*, items: np.ndarray, users: np.ndarray, teacher_dim: int, counts: np.ndarray, carry: float,
                   k: float, trained_shift: float, shifts: tuple[float, ...], targets: Any, history: Any,
                   n_items: int) -> list[metrics.EvalResult]:
    """The valid rankings the rule compares, for the users of ``targets`` (all of them, or one rank's share):
    [the teacher's (the carried part alone), then one per shift] (``fit_shift`` for the arguments)."""
    t, r = split_parts(items=items, teacher_dim=teacher_dim,
                       scale=item_scales(counts=counts, carry=carry, k=k, shift=trained_shift))
    scales = [item_scales(counts=counts, carry=carry, k=k, shift=s) for s in shifts]
    ut, ur = users[:, :teacher_dim], users[:, teacher_dim:]

    def blocks(u: np.ndarray) -> list[np.ndarray]:
        st, sr = ut[u] @ t.T, ur[u] @ r.T  # the two cosines' matmuls, shared by every shift and the teacher
        buf = np.empty_like(sr)
        out = [st]
        for sc in scales:  # st * alpha + sr * beta, the same float32 operations without two temporaries each
            mix = np.multiply(st, sc[:, 0])
            mix += np.multiply(sr, sc[:, 1], out=buf)
            out.append(mix)
        return out  # every block built before any is masked

    return metrics.evaluate_many(scores_fn=blocks, n_systems=1 + len(shifts), targets=targets, history=history,
                                 n_items=n_items, ks=(10,), batch_size=512, fresh=True,
                                 coverage_ks=())  # 2 + len(shifts) new (512, N) blocks


def rescaled(*, items: np.ndarray, teacher_dim: int, counts: np.ndarray, carry: float, k: float,
             trained_shift: float, shift: float) -> np.ndarray:
    """``items`` (encoded with ``trained_shift``) re-scaled to ``shift``; the same array when they are equal."""
    if shift == trained_shift:
        return items
    t, r = split_parts(items=items, teacher_dim=teacher_dim,
                       scale=item_scales(counts=counts, carry=carry, k=k, shift=trained_shift))
    return join_parts(t=t, r=r, scale=item_scales(counts=counts, carry=carry, k=k, shift=shift))


def fit_shift(*, items: np.ndarray, users: np.ndarray, teacher_dim: int, counts: np.ndarray, carry: float, k: float,
              trained_shift: float, shifts: tuple[float, ...], tables: Tables, min_targets: int,
              rankings: list[metrics.EvalResult] | None = None) -> tuple[np.ndarray, CarryFit]:
    """Item vectors re-scaled with the chosen shift (N, Dt + d), and the fit's record.

    Args:
        items: (N, Dt + d) the student's item vectors as encoded with ``trained_shift``.
        users: (U, Dt + d) its valid user vectors. Their first ``teacher_dim`` columns and the items' unscaled
            ones are ``sqrt(a)`` times the carried teacher vectors (the user's: the teacher's own recency pooling of
            the history), so their product is the teacher's ranking, the reference of the rule.
        counts: (N,) training events per item.
        rankings: ``shift_rankings`` over every valid user when already computed (e.g. merged from the ranks'
            shares); None = computed here.
    """
    vec = {"teacher_dim": teacher_dim, "counts": counts, "carry": carry, "k": k, "trained_shift": trained_shift}
    results = rankings if rankings is not None else shift_rankings(
        items=items, users=users, shifts=shifts, targets=tables.valid, history=tables.history("valid"),
        n_items=tables.n_items, **vec)
    summaries = [metrics.popularity_summary(res, train=tables.train, ks=(10,)) for res in results]
    teacher = {s: v["ndcg@10"] for s, v in summaries[0].items()}
    targets = {s: v["targets"] for s, v in summaries[0].items()}
    rows = [{"shift": shift, **{s: v["ndcg@10"] for s, v in summ.items()}} for shift, summ in zip(shifts, summaries[1:])]
    best, why = choose(rows=rows, teacher=teacher, targets=targets, min_targets=min_targets)
    chosen = float(best["shift"])
    out = rescaled(items=items, shift=chosen, **vec)
    return out, CarryFit(shift=chosen, trained_shift=trained_shift, rows=rows, teacher=teacher, reason=why)
