"""Config of the index stage: which FAISS index to build over the item vectors and how to search it."""

from __future__ import annotations

import dataclasses
from typing import Literal

from recsys.config import ranged

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
    k: int = ranged(100, ge=1)  # candidates per user written for the ranker (the depth recall is tuned at)
    target_recall: float = ranged(0.95, gt=0, le=1)  # of exact search, at depth k, on the validation users'
    # vectors IVF: nlist 0 -> about 4*sqrt(N) lists (the usual rule; >= 39 training points per list)
    nlist: int = ranged(0, ge=0)
    nprobe: int = ranged(0, ge=0)  # 0 -> tuned
    # IVF-PQ: m sub-quantizers of nbits each (m = 0 -> d/2, i.e. 2 dims per code byte: accurate enough for
    # recall@100 after refinement); the shortlist of refine_factor*k is re-scored exactly (0 = no refinement)
    pq_m: int = ranged(0, ge=0)
    pq_nbits: int = ranged(8, ge=1, le=16)
    refine_factor: int = ranged(4, ge=0)
    # HNSW: M links per node, efConstruction build beam. 32/200 give ~0.99 reachable recall at d=64.
    hnsw_m: int = ranged(32, ge=2)
    ef_construction: int = ranged(200, ge=1)
    ef_search: int = ranged(0, ge=0)  # 0 -> tuned
    use_gpu: UseGpu = "auto"  # auto: GPU when CUDA and a GPU build of faiss are present (HNSW stays on CPU)
    tradeoff: bool = True  # also sweep every kind's recall vs QPS on these vectors (index/tradeoff.json,
    # report plot)
    tune_queries: int = ranged(2000, ge=1)  # validation users sampled for tuning and for the exact-vs-ANN
    # report
    batch_size: int = ranged(4096, ge=1)  # queries per search call
    seed: int = ranged(0, ge=0)
