"""Drift of a retrained candidate against the published version: how much would what users see change?

Beside the gate's quality figure, a retrain records for the candidate's test users (those the published
version also has a vector for) the top-``k`` lists both systems would serve now (history excluded) and:

* ``changed_share``: share of users whose top-k *set* differs; ``overlap``: mean |cand ∩ pub| / k;
* ``coverage``: distinct recommended items / catalogue size, for each system;
* ``mean_log_popularity``: mean of log(1 + training events) over recommended slots (a rise = more popular items);
* ``score``: mean and std of the top-k scores of each, and the two-sample Kolmogorov-Smirnov distance;
* ``cold_share``: share of recommended slots that are cold items (no training event in the candidate's data).

``warnings`` lists every threshold of ``DriftConfig`` that is crossed; with ``refuse=True`` the gate refuses
the candidate on any. Everything here is numpy on arrays: the gate gathers the vectors.
"""

from __future__ import annotations

import numpy as np

from recsys.publish.config import DriftConfig


def top_k(users: np.ndarray, items: np.ndarray, *, k: int, exclude_ptr: np.ndarray, exclude_idx: np.ndarray,
          allowed: np.ndarray | None = None, chunk: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner-product top-``k`` per user row, best first: (scores (U, k) f32, items (U, k) i64).

    Row u never returns ``exclude_idx[exclude_ptr[u]:exclude_ptr[u+1]]`` nor items with ``allowed`` False;
    rows with fewer than k candidates are padded with (-inf, -1)."""
    n_users, n_items = users.shape[0], items.shape[0]
    k_eff = min(k, n_items)
    out_s = np.full((n_users, k), -np.inf, np.float32)
    out_i = np.full((n_users, k), -1, np.int64)
    for lo in range(0, n_users, chunk):
        hi = min(n_users, lo + chunk)
        s = (users[lo:hi] @ items.T).astype(np.float32)
        if allowed is not None:
            s[:, ~allowed] = -np.inf
        lens = np.diff(exclude_ptr[lo:hi + 1])
        s[np.repeat(np.arange(hi - lo), lens), exclude_idx[exclude_ptr[lo]:exclude_ptr[hi]]] = -np.inf
        part = np.argpartition(-s, k_eff - 1, axis=1)[:, :k_eff]
        ps = np.take_along_axis(s, part, axis=1)
        order = np.argsort(-ps, axis=1, kind="stable")
        idx, sc = np.take_along_axis(part, order, axis=1), np.take_along_axis(ps, order, axis=1)
        idx = np.where(np.isfinite(sc), idx, -1)
        out_s[lo:hi, :k_eff], out_i[lo:hi, :k_eff] = sc, idx
    return out_s, out_i


def ks_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic: max |F_a(x) - F_b(x)| over x (0 = same distribution)."""
    a, b = np.sort(np.asarray(a, np.float64)), np.sort(np.asarray(b, np.float64))
    if not len(a) or not len(b):
        return 0.0
    x = np.concatenate([a, b])
    return float(np.abs(np.searchsorted(a, x, side="right") / len(a) - np.searchsorted(b, x, side="right") / len(b))
                 .max())


def compare_lists(*, cand_items: np.ndarray, pub_items: np.ndarray, cand_scores: np.ndarray, pub_scores: np.ndarray,
                  popularity: np.ndarray, cold: np.ndarray) -> dict[str, object]:
    """Drift figures of two (U, k) top-k lists over the same users (-1 = empty slot).

    Args:
        popularity: (N,) training events per item; cold: (N,) True for items without one."""
    n_users, k = cand_items.shape
    if n_users == 0:
        return {"users": 0}
    overlap = np.array([len(set(c[c >= 0]) & set(p[p >= 0])) for c, p in zip(cand_items, pub_items)])
    changed = np.array([set(c[c >= 0]) != set(p[p >= 0]) for c, p in zip(cand_items, pub_items)])
    n_items = len(popularity)

    def side(items: np.ndarray, scores: np.ndarray) -> dict[str, float]:
        got = items[items >= 0]
        s = scores[np.isfinite(scores)]
        return {"coverage": round(len(np.unique(got)) / n_items, 6),
                "mean_log_popularity": round(float(np.log1p(popularity[got]).mean()) if got.size else 0.0, 6),
                "cold_share": round(float(cold[got].mean()) if got.size else 0.0, 6),
                "score_mean": round(float(s.mean()) if s.size else 0.0, 6),
                "score_std": round(float(s.std()) if s.size else 0.0, 6)}

    return {"users": int(n_users), "k": int(k), "changed_share": round(float(changed.mean()), 6),
            "overlap": round(float(overlap.mean() / k), 6), "candidate": side(cand_items, cand_scores),
            "published": side(pub_items, pub_scores),
            "score_ks": round(ks_distance(cand_scores[np.isfinite(cand_scores)],
                                          pub_scores[np.isfinite(pub_scores)]), 6)}


def warnings(record: dict[str, object], cfg: DriftConfig) -> list[str]:
    """Every threshold of ``cfg`` the record crosses, as a sentence naming the figure and the limit."""
    if not record.get("users"):
        return []
    c, p = record["candidate"], record["published"]  # type: ignore[index]
    out = []
    if record["changed_share"] > cfg.max_changed_share:  # type: ignore[operator]
        out.append(f"top-{record['k']} changed for {record['changed_share']:.0%} of users "
                   f"(> drift.max_changed_share {cfg.max_changed_share:.0%})")
    if p["coverage"] > 0 and c["coverage"] < cfg.min_coverage_ratio * p["coverage"]:
        out.append(f"catalogue coverage fell to {c['coverage']:.1%} from {p['coverage']:.1%} "
                   f"(< drift.min_coverage_ratio {cfg.min_coverage_ratio} x published)")
    shift = c["mean_log_popularity"] - p["mean_log_popularity"]
    if abs(shift) > cfg.max_popularity_shift:
        out.append(f"mean log-popularity of recommended items moved by {shift:+.2f} "
                   f"(|shift| > drift.max_popularity_shift {cfg.max_popularity_shift})")
    if record["score_ks"] > cfg.max_score_ks:  # type: ignore[operator]
        out.append(f"score distribution shifted: KS distance {record['score_ks']:.2f} (> drift.max_score_ks "
                   f"{cfg.max_score_ks})")
    if c["cold_share"] - p["cold_share"] > cfg.max_cold_share_increase:
        out.append(f"cold items take {c['cold_share']:.1%} of recommended slots, up from {p['cold_share']:.1%} "
                   f"(> drift.max_cold_share_increase {cfg.max_cold_share_increase:.0%})")
    return out
