"""Pick nprobe / efSearch automatically: the smallest value whose recall@k of exact search reaches a target."""

from __future__ import annotations

import dataclasses
import logging
import time

import numpy as np

from recsys.index._faiss import import_faiss
from recsys.index.search import ItemIndex

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class TuneResult:
    param: str | None  # "nprobe" / "ef_search" / None (exact index)
    value: int | None
    recall: float  # achieved recall@k of exact search on the tuning queries
    k: int
    target: float
    tried: dict[int, float]  # value -> recall (at the chosen k_factor)
    k_factor: int | None = None  # refined kinds: the shortlist factor kept
    by_k_factor: dict[int, dict[str, float]] = dataclasses.field(default_factory=dict)  # k_factor -> value,
    # recall, qps of its smallest value reaching the target (refined kinds whose k_factor was tuned)

    @property
    def reached(self) -> bool:
        return self.recall >= self.target


def recall_vs_exact(ann_ids: np.ndarray, exact_ids: np.ndarray) -> float:
    """Mean over queries of |ANN top-k ∩ exact top-k| / |exact top-k| (padding -1 ignored).

    Vectorised over rows (a loop of ``np.intersect1d`` cost seconds per 20k queries): each row's ids are
    made unique, the two lists concatenated and sorted, and an id held by both is an adjacent equal pair."""
    if len(exact_ids) == 0:
        return 1.0
    a, e = _unique_rows(np.asarray(ann_ids)), _unique_rows(np.asarray(exact_ids))
    both = np.sort(np.concatenate([a, e], axis=1), axis=1)
    hits = ((both[:, 1:] == both[:, :-1]) & (both[:, 1:] >= 0)).sum(1)
    return float(np.mean(hits / np.maximum(1, (np.asarray(exact_ids) >= 0).sum(1))))


def _unique_rows(ids: np.ndarray) -> np.ndarray:
    """(B, k) ids sorted per row with repeats (and padding) set to -1."""
    s = np.sort(ids.astype(np.int64, copy=False), axis=1)
    s[:, 1:][s[:, 1:] == s[:, :-1]] = -1
    return np.where(s >= 0, s, -1)


def refine_ladder(*, refine_factor: int, refine_max: int) -> list[int]:
    """Shortlist factors tune tries: 1, 2, 4, ... up to ``refine_max`` (and it), or just ``refine_factor``."""
    if refine_factor <= 0:
        return []
    if refine_max <= 0:
        return [refine_factor]
    out = [1 << i for i in range(refine_max.bit_length()) if 1 << i <= refine_max]
    return sorted({*out, refine_max})


def tune(index: ItemIndex, *, queries: np.ndarray, k: int, target_recall: float) -> TuneResult:
    """Set the index's search parameter to the smallest value reaching ``target_recall`` (recall@k vs exact).

    Doubling finds a value that reaches the target, then bisection finds the smallest one (recall grows
    monotonically with nprobe / efSearch, up to noise). A fixed value in the config is measured, not tuned.
    If even the largest value misses the target, it is kept and the shortfall is logged and reported.
    Refined kinds (IVF-PQ, IVF fast-scan) with ``refine_max`` > 0: each shortlist factor of
    ``refine_ladder`` gets its smallest nprobe; the pair with the highest QPS on ``queries`` is kept.
    """
    k = min(k, index.count)
    if index.exact:  # nothing to tune, nothing to search
        return TuneResult(param=None, value=None, recall=1.0, k=k, target=target_recall, tried={})
    exact_ids = index.search(queries, k=k, exact=True)[1]
    cfg = index.cfg
    if cfg.kind == "hnsw":
        param, fixed, lo, hi = "ef_search", cfg.ef_search, max(16, k), max(4096, 4 * k)
    else:
        nlist = int(import_faiss().extract_index_ivf(index.index).nlist)
        param, fixed, lo, hi = "nprobe", cfg.nprobe, 1, nlist
    ladder = refine_ladder(refine_factor=cfg.refine_factor, refine_max=cfg.refine_max) \
        if "k_factor" in index.params else []
    if fixed or len(ladder) <= 1:
        res = _tune_one(index, param=param, fixed=fixed, lo=lo, hi=hi, queries=queries, exact_ids=exact_ids, k=k,
                        target=target_recall)
        res = dataclasses.replace(res, k_factor=index.params.get("k_factor"))
    else:
        found: dict[int, tuple[TuneResult, float]] = {}
        cap = hi
        for kf in sorted(ladder, reverse=True):  # largest shortlist first: it needs the smallest nprobe
            index.set_params(k_factor=kf)
            r = _tune_one(index, param=param, fixed=0, lo=lo, hi=cap, queries=queries, exact_ids=exact_ids, k=k,
                          target=target_recall)
            found[kf] = (r, _qps(index, queries, k) if r.reached else 0.0)
            if not r.reached:  # a smaller shortlist needs even more lists
                break
            cap = min(hi, 8 * int(r.value or lo))  # 8x the lists scanned cannot pay for a shorter re-score
        ok = [kf for kf, (r, _) in found.items() if r.reached]
        kf = max(ok, key=lambda f: found[f][1]) if ok else max(found, key=lambda f: found[f][0].recall)
        best = found[kf][0]
        index.set_params(k_factor=kf, **{param: int(best.value or lo)})
        res = dataclasses.replace(best, k_factor=kf, by_k_factor={
            f: {"value": float(r.value or 0), "recall": r.recall, "qps": q} for f, (r, q) in found.items()})
    if not res.reached:
        log.warning("index: %s=%d reaches recall@%d %.3f < target %.3f; build a finer index (more nlist / hnsw_m)",
                    param, res.value, k, res.recall, target_recall)
    else:
        log.info("index: %s=%d (k_factor %s) -> recall@%d %.3f (target %.3f)", param, res.value, res.k_factor, k,
                 res.recall, target_recall)
    return res


def _qps(index: ItemIndex, queries: np.ndarray, k: int) -> float:
    index.search(queries[:64], k=k)  # warm-up
    t = time.perf_counter()
    index.search(queries, k=k)
    return len(queries) / max(time.perf_counter() - t, 1e-9)


def _tune_one(index: ItemIndex, *, param: str, fixed: int, lo: int, hi: int, queries: np.ndarray,
              exact_ids: np.ndarray, k: int, target: float) -> TuneResult:
    """The smallest ``param`` in [lo, hi] reaching ``target`` at the index's other settings; left set on it."""
    tried: dict[int, float] = {}

    def measure(v: int) -> float:
        if v not in tried:
            index.set_params(**{param: v})
            tried[v] = recall_vs_exact(index.search(queries, k=k)[1], exact_ids)
        return tried[v]

    if fixed:
        return TuneResult(param=param, value=fixed, recall=measure(fixed), k=k, target=target, tried=tried)
    v, prev = lo, None
    while measure(v) < target and v < hi:
        prev, v = v, min(hi, v * 2)
    if measure(v) >= target and prev is not None:
        a, b = prev, v  # recall(a) < target <= recall(b)
        while b - a > max(1, a // 8):  # within 12.5%: finer steps cost more tuning than they save at search
            mid = (a + b) // 2
            a, b = (mid, b) if measure(mid) < target else (a, mid)
        v = b
    index.set_params(**{param: v})
    return TuneResult(param=param, value=v, recall=tried[v], k=k, target=target, tried=dict(sorted(tried.items())))
