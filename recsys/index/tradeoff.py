"""Recall-vs-speed trade-off of every index kind on the run's own vectors, for the report's plot.

Each kind is built over the same item vectors and swept over its search parameter; each point is
(recall@k of exact search, queries/second) on the same validation-user queries, history not excluded
(the plot compares engines, not recommendations).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

import numpy as np

from recsys.index._faiss import want_gpu
from recsys.index.build import build_index, coarse_centroids
from recsys.index.config import IndexConfig
from recsys.index.search import ItemIndex
from recsys.index.tune import recall_vs_exact

log = logging.getLogger(__name__)

# IVF-PQ (8-bit codes) is not swept by default: its 448-d codebooks took 29 s of one core on Beauty (Intel Xeon,
# 2026-12-01), and fast-scan PQ with an exact re-score, 6 s to build, is the faster of the two at every recall
# at 1M items (benchmarks/README.md)
SWEEPS: dict[str, tuple[str | None, tuple[int, ...]]] = {
    "flat": (None, (0,)),
    "ivf_flat": ("nprobe", (1, 2, 4, 8, 16, 32, 64)),
    "ivf_fastscan": ("nprobe", (1, 2, 4, 8, 16, 32, 64)),
    "hnsw": ("ef_search", (16, 32, 64, 128, 256)),
}


def _pq_m(kind: str, cfg: IndexConfig, d: int) -> int:
    # PQ with d/8 sub-quantizers: training the default d/2 of them costs a minute on 2 cores for a plot
    return max(1, d // 8) if kind == "ivf_pq" and cfg.pq_m == 0 else cfg.pq_m


def _reuses(kind: str, cfg: IndexConfig, d: int) -> bool:
    """True when the stage's own index (of ``cfg.kind``, made concrete) is swept for ``kind`` instead of building
    another."""
    return kind == cfg.kind and (kind != "ivf_pq" or _pq_m(kind, cfg, d) == cfg.pq_m) \
        and not want_gpu(cfg.use_gpu)  # the sweep measures CPU search


def build_kinds(items: np.ndarray, *, cfg: IndexConfig, model_metric: str,
                skip_own: bool = True) -> dict[str, tuple[ItemIndex, float]]:
    """Every kind of ``SWEEPS`` built over ``items`` with its sweep settings -> kind -> (index, build seconds);
    ``skip_own``: not the kind the stage's own index stands for (``sweep``'s ``built``).

    The slow part of the sweep (the IVF kinds' k-means: ~5 s each on Beauty, one thread) and timing nothing
    but the builds, so the index stage runs it in a background thread while it searches (faiss releases the
    GIL); the QPS are measured afterwards, alone. On a busy machine a build's seconds then include waiting for
    a core. The IVF kinds after the first reuse its coarse centroids (``build_index(centroids=)``), so their build
    seconds leave out the k-means."""
    out: dict[str, tuple[ItemIndex, float]] = {}
    centroids = None  # the IVF kinds share one coarse k-means (same seed and sample: the same centroids)
    for kind in SWEEPS:
        if not (skip_own and _reuses(kind, cfg, items.shape[1])):
            out[kind] = _build_one(items, kind, cfg, model_metric, centroids=centroids)
            centroids = centroids if centroids is not None else coarse_centroids(out[kind][0])
    return out


def sweep(items: np.ndarray, *, queries: np.ndarray, cfg: IndexConfig, model_metric: str, k: int = 10,
          built: tuple[ItemIndex, float] | None = None,
          prebuilt: dict[str, tuple[ItemIndex, float]] | None = None) -> list[dict[str, Any]]:
    """Build each kind and measure (recall@k vs exact, QPS) per search setting. Numpy in, dicts out.

    ``built``: the stage's own index of ``cfg.kind`` over these vectors and its build seconds, swept instead
    of building that kind again (its search parameter is left at the last swept value: set it back).
    ``prebuilt``: kinds already built by ``build_kinds`` (the others are built here)."""
    points: list[dict[str, Any]] = []
    exact_ids: np.ndarray | None = None
    prebuilt = dict(prebuilt or {})
    for kind, (param, values) in SWEEPS.items():
        if built is not None and _reuses(kind, cfg, items.shape[1]):
            index, build_s = built
        elif kind in prebuilt:
            index, build_s = prebuilt.pop(kind)
        else:
            index, build_s = _build_one(items, kind, cfg, model_metric)
        if exact_ids is None:
            exact_ids = index.search(queries, k=k, exact=True)[1]
        nlist = None
        for v in values:
            if param == "nprobe":
                if nlist is None:
                    from recsys.index._faiss import import_faiss

                    nlist = int(import_faiss().extract_index_ivf(index.index).nlist)
                if v > nlist:
                    continue
            if param is not None:
                index.set_params(**{param: v})
            index.search(queries[:64], k=k)  # warm-up
            t = time.perf_counter()
            ids = index.search(queries, k=k)[1]
            secs = time.perf_counter() - t
            points.append({"kind": kind, "param": param, "value": v, "recall": recall_vs_exact(ids, exact_ids),
                           "qps": len(queries) / max(secs, 1e-9), "build_seconds": round(build_s, 3)})
        log.info("index trade-off: %s built in %.1fs, %d settings", kind, build_s, len(values))
    return points


def _build_one(items: np.ndarray, kind: str, cfg: IndexConfig, model_metric: str,
               centroids: np.ndarray | None = None) -> tuple[ItemIndex, float]:
    t0 = time.perf_counter()
    index = build_index(items, cfg=dataclasses.replace(cfg, kind=kind, nprobe=0, ef_search=0, use_gpu="never",
                                                       pq_m=_pq_m(kind, cfg, items.shape[1])),
                        model_metric=model_metric, centroids=centroids)
    return index, time.perf_counter() - t0
