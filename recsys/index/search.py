"""``ItemIndex``: a FAISS index over item vectors with id mapping, seen-item exclusion and CPU/GPU search."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import numpy as np

from recsys.index._faiss import GPU_TOPK_LIMIT, gpu_resources, import_faiss, want_gpu
from recsys.index.config import IndexConfig
from recsys.index.exact import exact_topk
from recsys.index.seen import Seen, drop_seen

log = logging.getLogger(__name__)


def normalize(x: np.ndarray) -> np.ndarray:
    """Row-wise L2 normalisation (zero rows stay zero), float32 copy."""
    x = np.array(x, dtype=np.float32, copy=True)
    n = np.linalg.norm(x, axis=1, keepdims=True)
    np.divide(x, n, out=x, where=n > 0)
    return x


@dataclasses.dataclass
class ItemIndex:
    """A built or loaded index. ``search`` is the one entry: numpy in, numpy out, CPU or GPU."""

    index: Any  # faiss.IndexIDMap2 around the kind's index (inner positions = rows of ``vectors``)
    cfg: IndexConfig
    vectors: np.ndarray  # (N, d) float32 as indexed (L2-normalised when metric = cosine)
    ids: np.ndarray  # (N,) int64 catalogue id of each row
    params: dict[str, int] = dataclasses.field(default_factory=dict)  # nprobe / ef_search / k_factor
    _gpu: Any = dataclasses.field(default=None, repr=False)
    _gpu_tried: bool = dataclasses.field(default=False, repr=False)

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    @property
    def count(self) -> int:
        return int(self.vectors.shape[0])

    @property
    def exact(self) -> bool:
        return self.cfg.kind == "flat"

    # ------------------------------------------------------------------ params
    def set_params(self, **params: int) -> None:
        """Set search-time parameters (``nprobe``, ``ef_search``, ``k_factor``) on the CPU and GPU index."""
        faiss = import_faiss()
        self.params.update({k: int(v) for k, v in params.items()})
        inner = faiss.downcast_index(self.index.index)
        if "nprobe" in self.params:
            ivf = faiss.extract_index_ivf(self.index)
            ivf.nprobe = self.params["nprobe"]
            quant = faiss.downcast_index(ivf.quantizer)
            if isinstance(quant, faiss.IndexHNSW):  # the graph must return nprobe good lists
                quant.hnsw.efSearch = max(64, 2 * self.params["nprobe"])
        if "ef_search" in self.params:
            inner.hnsw.efSearch = self.params["ef_search"]
        if "k_factor" in self.params and isinstance(inner, faiss.IndexRefine):
            inner.k_factor = float(self.params["k_factor"])
        if self._gpu is not None and "nprobe" in self.params:
            faiss.GpuParameterSpace().set_index_parameter(self._gpu, "nprobe", min(self.params["nprobe"], 2048))

    # ------------------------------------------------------------------ search
    def search(
        self, queries: np.ndarray, *, k: int, exclude: Seen | None = None, exact: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` items per query, best first.

        Args:
            queries: (B, d) float32 user (or item) vectors; normalised here when metric = cosine.
            k: results per query.
            exclude: catalogue ids each query must not return (its history); row b of ``exclude`` = query b.
            exact: brute force regardless of the index kind (ground truth for tuning and reports).
        Returns:
            scores (B, k) float32 and ids (B, k) int64 catalogue ids; -inf / -1 pad rows with fewer results.
        """
        q = np.ascontiguousarray(queries, dtype=np.float32)
        if q.ndim != 2 or q.shape[1] != self.dim:
            raise ValueError(f"queries have shape {q.shape}; this index holds {self.dim}-dim vectors")
        if exclude is not None and len(exclude) != len(q):
            raise ValueError(f"exclude has {len(exclude)} rows for {len(q)} queries")
        if self.cfg.metric == "cosine":
            q = normalize(q)
        gpu = self._gpu_index()
        if exact or (self.exact and gpu is None):
            s, rows = exact_topk(self.vectors, q, k=k, exclude=self._rows_of(exclude))
            return s, self._ids_of(rows)
        out_s = np.empty((len(q), k), np.float32)
        out_i = np.empty((len(q), k), np.int64)
        for b0 in range(0, len(q), self.cfg.batch_size):
            b1 = min(len(q), b0 + self.cfg.batch_size)
            ex = exclude.rows(b0, b1) if exclude is not None else None
            fetch = min(self.count, k + (ex.max_len() if ex is not None else 0))
            s, i = self._search_ann(q[b0:b1], fetch, gpu)
            out_s[b0:b1], out_i[b0:b1] = drop_seen(s, i, ex, k=k)
        return out_s, out_i

    def _search_ann(self, q: np.ndarray, fetch: int, gpu: Any) -> tuple[np.ndarray, np.ndarray]:
        if gpu is not None and fetch * self._refine() <= GPU_TOPK_LIMIT:
            kf = self._refine()
            s, rows = gpu.search(q, fetch * kf)
            if kf > 1:  # IndexRefine does not move to GPU: re-score the shortlist exactly here
                s, rows = _rescore(self.vectors, q, rows, fetch)
            return s, self._ids_of(rows)
        if gpu is not None:
            log.warning("k=%d exceeds the faiss GPU top-k limit %d; searching this batch on CPU", fetch, GPU_TOPK_LIMIT)
        s, i = self.index.search(q, fetch)
        return s, i

    def _refine(self) -> int:
        return int(self.params.get("k_factor", 1)) if self.cfg.kind in ("ivf_pq", "ivf_fastscan") else 1

    # ------------------------------------------------------------------ GPU
    def _gpu_index(self) -> Any:
        """The inner index on GPU when wanted and possible (built once); None = search on CPU."""
        if self._gpu_tried:
            return self._gpu
        self._gpu_tried = True
        if not want_gpu(self.cfg.use_gpu):
            return None
        if self.cfg.kind in ("hnsw", "ivf_fastscan") or self.cfg.quantizer == "hnsw":
            log.info("faiss has no GPU %s; searching on CPU",
                     "HNSW" if self.cfg.kind == "hnsw" or self.cfg.quantizer == "hnsw" else "fast-scan PQ")
            return None
        faiss = import_faiss()
        inner = faiss.downcast_index(self.index.index)
        if isinstance(inner, faiss.IndexRefine):
            inner = faiss.downcast_index(inner.base_index)
        self._gpu = faiss.index_cpu_to_gpu(gpu_resources(), 0, inner)
        if "nprobe" in self.params:
            faiss.GpuParameterSpace().set_index_parameter(self._gpu, "nprobe", min(self.params["nprobe"], 2048))
        log.info("index: searching %s on GPU", self.cfg.kind)
        return self._gpu

    # ------------------------------------------------------------------ id mapping
    def _ids_of(self, rows: np.ndarray) -> np.ndarray:
        out = np.where(rows >= 0, self.ids[np.clip(rows, 0, None)], -1)
        return out.astype(np.int64, copy=False)

    def _rows_of(self, exclude: Seen | None) -> Seen | None:
        if exclude is None or _is_identity(self.ids):
            return exclude
        order = np.argsort(self.ids)
        pos = np.searchsorted(self.ids, exclude.indices, sorter=order).clip(0, len(order) - 1)
        hit = self.ids[order[pos]] == exclude.indices
        rows = np.where(hit, order[pos], -1)
        keep = rows >= 0
        row_of, _ = exclude.pairs()
        counts = np.bincount(row_of[keep], minlength=len(exclude))
        indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return Seen(indptr=indptr, indices=rows[keep].astype(np.int64))


def _is_identity(ids: np.ndarray) -> bool:
    return bool(len(ids) == 0 or (ids[0] == 0 and ids[-1] == len(ids) - 1 and np.all(np.diff(ids) == 1)))


def _rescore(vectors: np.ndarray, q: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact scores of a shortlist (B, K') of rows; keep the best ``k``."""
    s = np.einsum("bkd,bd->bk", vectors[np.clip(rows, 0, None)], q).astype(np.float32)
    s[rows < 0] = -np.inf
    o = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(s, o, 1), np.take_along_axis(rows, o, 1)
