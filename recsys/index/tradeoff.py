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
from recsys.index.build import build_index
from recsys.index.config import IndexConfig
from recsys.index.search import ItemIndex
from recsys.index.tune import recall_vs_exact

log = logging.getLogger(__name__)

SWEEPS: dict[str, tuple[str | None, tuple[int, ...]]] = {
    "flat": (None, (0,)),
    "ivf_flat": ("nprobe", (1, 2, 4, 8, 16, 32, 64)),
    "ivf_pq": ("nprobe", (1, 2, 4, 8, 16, 32, 64)),
    "hnsw": ("ef_search", (16, 32, 64, 128, 256)),
}


def sweep(items: np.ndarray, *, queries: np.ndarray, cfg: IndexConfig, model_metric: str, k: int = 10,
          built: tuple[ItemIndex, float] | None = None) -> list[dict[str, Any]]:
    """Build each kind and measure (recall@k vs exact, QPS) per search setting. Numpy in, dicts out.

    ``built``: the stage's own index of ``cfg.kind`` over these vectors and its build seconds, swept instead
    of building that kind again (its search parameter is left at the last swept value: set it back)."""
    points: list[dict[str, Any]] = []
    exact_ids: np.ndarray | None = None
    for kind, (param, values) in SWEEPS.items():
        t0 = time.perf_counter()
        # PQ with d/8 sub-quantizers: training the default d/2 of them costs a minute on 2 cores for a plot
        pq_m = max(1, items.shape[1] // 8) if kind == "ivf_pq" and cfg.pq_m == 0 else cfg.pq_m
        if built is not None and kind == cfg.kind and (kind != "ivf_pq" or pq_m == cfg.pq_m) \
                and not want_gpu(cfg.use_gpu):  # the sweep measures CPU search
            index, build_s = built
        else:
            index = build_index(items, cfg=dataclasses.replace(cfg, kind=kind, nprobe=0, ef_search=0,
                                                               use_gpu="never", pq_m=pq_m), model_metric=model_metric)
            build_s = time.perf_counter() - t0
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
