"""Config of the index stage: which FAISS index to build over the item vectors and how to search it."""

from __future__ import annotations

import dataclasses
from typing import Literal

from recsys.config import ranged

IndexKind = Literal["auto", "flat", "ivf_flat", "ivf_pq", "ivf_fastscan", "hnsw"]
Quantizer = Literal["flat", "hnsw"]
Metric = Literal["ip", "cosine"]
UseGpu = Literal["auto", "never", "always"]


@dataclasses.dataclass(frozen=True)
class IndexConfig:
    """Defaults suit catalogues from 10k to a few million items with d <= 256.

    ``flat`` is exact and, below ~200k items, also the fastest (batched matmul); the ANN kinds pay off
    above that. ``ivf_fastscan`` is IVF over 4-bit PQ codes scanned with SIMD lookups (faiss
    ``IndexIVFPQFastScan``) whose shortlist is re-scored exactly: the fastest kind at 1M items on CPU
    (benchmarks/README.md). Search parameters (nprobe / efSearch, and the shortlist factor of the
    refined kinds) left at 0 are tuned at build time to reach ``target_recall`` of exact search at depth ``k``.
    ``auto`` (the default) picks by catalogue size when the index is built (``recsys.index.build.resolve_kind``):
    ``flat`` up to ``flat_max_items`` items, ``ivf_fastscan`` above; the manifest records the kind it built.
    """

    kind: IndexKind = "auto"
    # "auto": exact search up to this many items. Beauty's 12k x 448 student vectors: the valid and test searches
    # of 22k users each took 2.7 s exact vs 7.5 s through the tuned HNSW (ef_search 100, recall@100 0.956), whose
    # build and tuning cost another 5 s (Intel Xeon, 2 cores, 2026-12-01); at 1M items fast-scan IVF is 31x exact
    flat_max_items: int = ranged(200_000, ge=0)
    metric: Metric = "ip"  # must equal the student's meta.json metric; a mismatch is refused, never coerced
    k: int = ranged(100, ge=1)  # candidates per user written for the ranker (the depth recall is tuned at)
    target_recall: float = ranged(0.95, gt=0, le=1)  # of exact search, at depth k, on the validation users'
    # vectors IVF: nlist 0 -> about 4*sqrt(N) lists (the usual rule; >= 39 training points per list)
    nlist: int = ranged(0, ge=0)
    nprobe: int = ranged(0, ge=0)  # 0 -> tuned
    # IVF coarse quantizer: flat = exact (one GEMM per query batch); hnsw = an HNSW graph over the centroids
    # (IndexHNSWFlat, efSearch = max(64, 2*nprobe)), for nlist far above 8k. At 1M items with nlist 2k..8k flat
    # was the faster one, batched and one query at a time (benchmarks/README.md, index)
    quantizer: Quantizer = "flat"
    kmeans_iters: int = ranged(25, ge=1)  # IVF k-means iterations (faiss's default; fewer = faster, coarser lists)
    # faiss threads for IVF / PQ training and adding (0 = faiss's default, every core). 1: on the shared 2-core
    # box the OpenMP team spins while BLAS threads hold the cores; the report's IVF-PQ over 12k x 448 Beauty
    # vectors took 10.5 CPU s (30 s wall) with one thread, 33 CPU s (125 s) with two, the same index
    train_threads: int = ranged(1, ge=0)
    train_per_list: int = ranged(64, ge=39)  # k-means sample: train_per_list * nlist + 50k vectors (faiss warns < 39)
    # IVF-PQ: m sub-quantizers of nbits each (m = 0 -> d/2, i.e. 2 dims per code byte: accurate enough for
    # recall@100 after refinement); the shortlist of refine_factor*k is re-scored exactly (0 = no refinement).
    # ivf_fastscan always uses 4 bits (the SIMD layout) and m = 0 -> d up to d = 128, d/2 above (1 dim per 4-bit
    # code for narrow vectors, 2 for the 448-d teacher-carry ones whose rank is far below d): with 2 dims per code
    # at 64-d, recall@10 stops at 0.93 on 1M resampled student vectors even with all lists and a 32x shortlist.
    pq_m: int = ranged(0, ge=0)
    pq_nbits: int = ranged(8, ge=1, le=16)
    refine_factor: int = ranged(4, ge=0)
    # refined kinds with nprobe tuned: shortlist factors 1, 2, 4, ... up to refine_max each get their smallest
    # nprobe reaching the target, and the pair with the highest QPS on the tuning queries is kept (0 -> always
    # refine_factor). 4-bit codes need ~8-32x at recall@10; refine_factor = 0 turns refinement off altogether
    refine_max: int = ranged(32, ge=0)
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
