"""Config of the index stage: which FAISS index to build over the item vectors and how to search it."""

from __future__ import annotations

import dataclasses
from typing import Literal

IndexKind = Literal["flat", "ivf_flat", "ivf_pq", "hnsw"]
Metric = Literal["ip", "cosine"]
UseGpu = Literal["auto", "never", "always"]


@dataclasses.dataclass(frozen=True)
class IndexConfig:
    """Defaults suit catalogues from 10k to a few million items with d <= 256.

    ``flat`` is exact and, below ~200k items, also the fastest (batched matmul); the ANN kinds pay off
    above that. Search parameters (nprobe / efSearch) left at 0 are tuned at build time to reach
    ``target_recall`` of exact search at depth ``k``.
    """

    kind: IndexKind = "hnsw"
    metric: Metric = "ip"  # must equal the student's meta.json metric; a mismatch is refused, never coerced
    k: int = 100  # candidates per user written for the ranker (the depth recall is tuned at)
    target_recall: float = 0.95  # of exact search, at depth k, on the validation users' vectors
    # IVF: nlist 0 -> about 4*sqrt(N) lists (the usual rule; >= 39 training points per list)
    nlist: int = 0
    nprobe: int = 0  # 0 -> tuned
    # IVF-PQ: m sub-quantizers of nbits each (m = 0 -> d/2, i.e. 2 dims per code byte: accurate enough for
    # recall@100 after refinement); the shortlist of refine_factor*k is re-scored exactly (0 = no refinement)
    pq_m: int = 0
    pq_nbits: int = 8
    refine_factor: int = 4
    # HNSW: M links per node, efConstruction build beam. 32/200 give ~0.99 reachable recall at d=64.
    hnsw_m: int = 32
    ef_construction: int = 200
    ef_search: int = 0  # 0 -> tuned
    use_gpu: UseGpu = "auto"  # auto: GPU when CUDA and a GPU build of faiss are present (HNSW stays on CPU)
    tradeoff: bool = True  # also sweep every kind's recall vs QPS on these vectors (index/tradeoff.json, report plot)
    tune_queries: int = 2000  # validation users sampled for tuning and for the exact-vs-ANN report
    batch_size: int = 4096  # queries per search call
    seed: int = 0
