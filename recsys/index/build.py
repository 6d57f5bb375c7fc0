"""Build a FAISS index over item vectors: exact flat IP, IVF-Flat, IVF-PQ or IVF fast-scan PQ (+ exact
refinement) or HNSW. IVF kinds take a flat or an HNSW coarse quantizer.

Every kind is wrapped in ``IndexIDMap2`` so the saved file answers in catalogue ids. The metric is
always inner product: ``cosine`` is inner product over L2-normalised vectors (queries are normalised
at search time). There is no L2 option on purpose: an L2 index over an inner-product model ranks by
the wrong quantity (the TorchRec retrieval example's bug), so a mismatch is refused.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from typing import Any

import numpy as np

from recsys.index._faiss import import_faiss, omp_threads
from recsys.index.config import IndexConfig
from recsys.index.errors import MetricMismatchError
from recsys.index.search import ItemIndex, normalize

log = logging.getLogger(__name__)


def check_metric(*, index_metric: str, model_metric: str, where: str = "") -> None:
    """Refuse an index whose similarity differs from the model's (``"ip"``, ``"cosine"``, ``"l2"``)."""
    if index_metric != model_metric:
        raise MetricMismatchError(
            f"{where + ': ' if where else ''}index metric '{index_metric}' but the model scores with "
            f"'{model_metric}' (the student export's meta). Nearest neighbours under the wrong metric are not the "
            f"model's top items; set index.metric={model_metric} and rebuild."
        )


def faiss_metric_name(index: Any) -> str:
    """'ip' or 'l2' (or the raw faiss code) of a faiss index."""
    faiss = import_faiss()
    mt = int(index.metric_type)
    return {faiss.METRIC_INNER_PRODUCT: "ip", faiss.METRIC_L2: "l2"}.get(mt, f"faiss-metric-{mt}")


def auto_nlist(n: int) -> int:
    """~4*sqrt(N) lists, with >= 39 training points each (faiss's k-means minimum)."""
    return int(max(1, min(round(4 * math.sqrt(n)), n // 39)))


IVF = ("ivf_flat", "ivf_pq", "ivf_fastscan")  # kinds with a coarse quantizer (nlist lists)
REFINED = ("ivf_pq", "ivf_fastscan")  # kinds whose PQ shortlist is re-scored exactly (IndexRefineFlat)


def auto_pq(d: int, n: int, *, m: int, nbits: int, fastscan: bool = False) -> tuple[int, int]:
    """Sub-quantizers dividing d (default d/2; fast-scan: d up to d = 128, d/2 above) and bits small enough
    for k-means on n points (fast-scan: always 4)."""
    if fastscan:
        m = m or max(1, d if d <= 128 else d // 2)
        while d % m:
            m -= 1
        return m, 4
    m = m or max(1, d // 2)
    while d % m:
        m -= 1
    while nbits > 4 and n < 39 * (1 << nbits):
        nbits -= 1
    return m, nbits


def coarse_centroids(index: ItemIndex) -> np.ndarray | None:
    """(nlist, d) centroids of an IVF index's flat coarse quantizer (None for other kinds)."""
    faiss = import_faiss()
    if index.cfg.kind not in IVF or index.cfg.quantizer != "flat":
        return None
    ivf = faiss.extract_index_ivf(index.index)
    return faiss.rev_swig_ptr(faiss.downcast_index(ivf.quantizer).get_xb(), ivf.nlist * index.dim) \
        .reshape(ivf.nlist, index.dim).copy()


def resolve_kind(cfg: IndexConfig, *, n_items: int) -> IndexConfig:
    """``cfg`` with ``kind = "auto"`` made concrete for ``n_items`` vectors: ``flat`` (exact; batched matmul is the
    fastest search at this size) up to ``cfg.flat_max_items``, ``ivf_fastscan`` (IVF over 4-bit PQ codes with an
    exact re-score of the shortlist, the fastest kind at 1M items, benchmarks/README.md) above."""
    if cfg.kind != "auto":
        return cfg
    return dataclasses.replace(cfg, kind="flat" if n_items <= cfg.flat_max_items else "ivf_fastscan")


def build_index(
    vectors: np.ndarray, *, cfg: IndexConfig, model_metric: str | None = None, ids: np.ndarray | None = None,
    centroids: np.ndarray | None = None,
) -> ItemIndex:
    """Build and fill an index.

    Args:
        vectors: (N, d) item vectors, row i = item ``ids[i]`` (default ``i``).
        cfg: index kind (``auto``: ``resolve_kind``), metric and build parameters.
        model_metric: the metric the vectors were trained with (meta.json); refused if != ``cfg.metric``.
        centroids: IVF kinds with a flat quantizer: (nlist, d) coarse centroids already trained on these vectors
            (``coarse_centroids`` of another IVF index over them), so only the codes are trained. Same seed, same
            sample: the k-means would find the very same centroids.
    Returns:
        ItemIndex with provisional search parameters (``tune`` sets them for a target recall).
    """
    faiss = import_faiss()
    if model_metric is not None:
        check_metric(index_metric=cfg.metric, model_metric=model_metric)
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"item vectors must be a non-empty (N, d) array, got shape {x.shape}")
    if not np.isfinite(x).all():
        bad = np.flatnonzero(~np.isfinite(x).all(1))[:5].tolist()
        raise ValueError(f"item vectors contain NaN/inf (rows {bad}...); the student export is broken")
    if cfg.metric == "cosine":
        x = normalize(x)
    n, d = x.shape
    cfg = resolve_kind(cfg, n_items=n)
    ids = np.arange(n, dtype=np.int64) if ids is None else np.asarray(ids, dtype=np.int64)
    ip = faiss.METRIC_INNER_PRODUCT
    params: dict[str, int] = {}
    if cfg.kind == "flat":
        inner = faiss.IndexFlatIP(d)
    elif cfg.kind in IVF:
        nlist = cfg.nlist or auto_nlist(n)
        if nlist > n:
            raise ValueError(f"index.nlist={nlist} exceeds the {n} item vectors; lower it or leave it at 0 (auto)")
        quant = faiss.IndexHNSWFlat(d, 32, ip) if cfg.quantizer == "hnsw" else faiss.IndexFlatIP(d)
        if cfg.kind == "ivf_flat":
            inner = faiss.IndexIVFFlat(quant, d, nlist, ip)
        elif cfg.kind == "ivf_pq":
            m, nbits = auto_pq(d, n, m=cfg.pq_m, nbits=cfg.pq_nbits)
            inner = faiss.IndexIVFPQ(quant, d, nlist, m, nbits, ip)
        else:
            m, _ = auto_pq(d, n, m=cfg.pq_m, nbits=4, fastscan=True)
            inner = faiss.IndexIVFPQFastScan(quant, d, nlist, m, 4, ip)
        if centroids is not None:
            if cfg.quantizer != "flat" or centroids.shape != (nlist, d):
                raise ValueError(f"centroids {centroids.shape} do not fit a flat quantizer of {nlist} x {d}")
            quant.add(np.ascontiguousarray(centroids, dtype=np.float32))  # trained: IndexIVF.train skips it
        inner.own_fields = True
        quant.this.disown()
        inner.cp.niter = cfg.kmeans_iters
        clus = faiss.IndexFlatIP(d) if cfg.quantizer == "hnsw" else None
        if clus is not None:  # k-means assigns with exact search; the graph is built once, over the final centroids
            inner.clustering_index = clus
            quant.hnsw.efSearch = 64  # assignment beam while adding items (set_params sets it for search)
        rng = np.random.default_rng(cfg.seed)
        n_train = cfg.train_per_list * nlist + 50_000
        sample = x if n <= n_train else x[np.sort(rng.choice(n, n_train, replace=False))]
        with omp_threads(cfg.train_threads):
            inner.train(sample)
        if clus is not None:
            inner.clustering_index = None  # ``clus`` (Python-owned) is freed with this frame, never saved
        params["nprobe"] = cfg.nprobe or min(nlist, 16)
        if cfg.kind in REFINED and cfg.refine_factor > 0:
            base = inner
            inner = faiss.IndexRefineFlat(base)
            base.this.disown()
            inner.own_fields = True
            params["k_factor"] = cfg.refine_factor
    elif cfg.kind == "hnsw":
        inner = faiss.IndexHNSWFlat(d, cfg.hnsw_m, ip)
        inner.hnsw.efConstruction = cfg.ef_construction
        params["ef_search"] = cfg.ef_search or max(64, cfg.k)
    else:  # pragma: no cover - Literal-checked by the config loader
        raise ValueError(f"unknown index kind {cfg.kind!r}")
    index = faiss.IndexIDMap2(inner)
    inner.this.disown()
    index.own_fields = True
    with omp_threads(cfg.train_threads if cfg.kind != "hnsw" else 0):  # IVF add = quantizer assignment + encoding
        index.add_with_ids(x, ids)
    out = ItemIndex(index=index, cfg=cfg, vectors=x, ids=ids)
    out.set_params(**params)
    log.info("index: %s over %d x %d (%s), params %s", cfg.kind, n, d, cfg.metric, params)
    return out
