"""FAISS indexes for catalogues larger than one machine's memory: shards, scatter-gather, on-disk IVF.

Three ways to split a catalogue, numpy in and numpy out, ids always global catalogue ids:

* ``build_shards`` + ``shard_group``: S sub-indexes (any faiss factory string) over disjoint id ranges,
  searched together through ``faiss.IndexShards`` (one thread per shard). With ``ngpu=-1`` and a GPU
  build of faiss, the shards go one per GPU instead (``index_cpu_to_all_gpus(shard=True)``).
* ``merge_topk``: the scatter-gather merge when each shard lives in its own process or host: every
  shard answers its own top-k and the caller merges (B, S*k) candidates down to the global top-k.
* ``build_ivf_ondisk``: one IVF index whose inverted lists live in a file that is memory-mapped at
  search time: a coarse quantizer is trained once, each shard is filled independently (on any machine),
  and ``faiss.contrib.ondisk.merge_ondisk`` merges their lists into ``<name>.ivfdata``. RAM then holds
  only the centroids and the lists a query probes.

The metric is inner product throughout (as in ``recsys.index``): merges keep the largest scores.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np


def _faiss() -> Any:
    try:
        import faiss
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "recsys.index.shards needs faiss: pip install 'recsys[index]' "
            "(faiss-cpu), or faiss-gpu-cu12 for GPUs"
        ) from e
    return faiss


def shard_bounds(n: int, n_shards: int) -> list[tuple[int, int]]:
    """Contiguous [start, end) row ranges of near-equal size."""
    step = max(1, math.ceil(n / max(1, n_shards)))
    return [(s, min(n, s + step)) for s in range(0, n, step)] or [(0, 0)]


def build_shards(
    vectors: np.ndarray,
    *,
    n_shards: int,
    factory: str = "Flat",
    ids: np.ndarray | None = None,
    train_sample: int = 100_000,
    seed: int = 0,
) -> list[Any]:
    """One inner-product index per id range, each answering in global ids.

    Args:
        vectors: (N, d) float32; row i is item ``ids[i]`` (default i).
        factory: faiss index factory string for each shard ("Flat", "IVF1024,Flat", "HNSW32", ...).
    Returns:
        S faiss indexes (``IndexIDMap2`` around the factory index).
    """
    faiss = _faiss()
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    gid = np.arange(len(x), dtype=np.int64) if ids is None else np.asarray(ids, dtype=np.int64)
    rng = np.random.default_rng(seed)
    shards = []
    for s, e in shard_bounds(len(x), n_shards):
        sub = faiss.index_factory(x.shape[1], factory, faiss.METRIC_INNER_PRODUCT)
        if not sub.is_trained:
            part = x[s:e]
            sample = part[rng.choice(len(part), min(len(part), train_sample), replace=False)]
            sub.train(sample)
        idx = faiss.IndexIDMap2(sub)
        idx.add_with_ids(x[s:e], gid[s:e])
        shards.append(idx)
    return shards


def shard_group(shards: list[Any], *, threaded: bool = True, ngpu: int = 0) -> Any:
    """One searchable index over ``shards`` (``faiss.IndexShards``; ids as the shards give them).

    ``ngpu``: 0 = CPU; -1 = every visible GPU when faiss has GPU support (else CPU, silently);
    n > 0 = at most n GPUs. On GPUs shard j is cloned to GPU ``j % n`` (flat and IVF kinds;
    HNSW has no GPU version and stays on the CPU).
    """
    faiss = _faiss()
    n_gpu = faiss.get_num_gpus() if ngpu and hasattr(faiss, "StandardGpuResources") else 0
    n_gpu = n_gpu if ngpu < 0 else min(ngpu, n_gpu)
    group = faiss.IndexShards(shards[0].d, threaded, False)
    resources = [faiss.StandardGpuResources() for _ in range(n_gpu)]
    for j, sh in enumerate(shards):
        on_gpu = n_gpu and "HNSW" not in type(faiss.downcast_index(sh.index)).__name__
        group.add_shard(faiss.index_cpu_to_gpu(resources[j % n_gpu], j % n_gpu, sh) if on_gpu else sh)
    if resources:
        group.referenced_objects.extend(resources)  # keep the GPU memory pools alive with the group
    return group


def search(index: Any, queries: np.ndarray, *, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(B, d) queries -> scores (B, k) f32 best first, ids (B, k) i64 (-1 where fewer than k)."""
    q = np.ascontiguousarray(queries, dtype=np.float32)
    scores, ids = index.search(q, k)
    return scores, ids


def merge_topk(parts: list[tuple[np.ndarray, np.ndarray]], *, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Merge per-shard answers [(scores (B, k_s), ids (B, k_s)), ...] into the global top-k (inner product).

    Ties keep the shard order, so the merge is deterministic. Missing results (id -1) sort last.
    """
    scores = np.concatenate([np.where(i < 0, -np.inf, s) for s, i in parts], axis=1).astype(np.float32)
    ids = np.concatenate([i for _, i in parts], axis=1).astype(np.int64)
    kk = min(k, scores.shape[1])
    order = np.argsort(-scores, axis=1, kind="stable")[:, :kk]
    out_s, out_i = np.take_along_axis(scores, order, 1), np.take_along_axis(ids, order, 1)
    if kk < k:
        pad = k - kk
        out_s = np.pad(out_s, ((0, 0), (0, pad)), constant_values=-np.inf)
        out_i = np.pad(out_i, ((0, 0), (0, pad)), constant_values=-1)
    out_i[~np.isfinite(out_s)] = -1
    return out_s, out_i


def build_ivf_ondisk(
    vectors: np.ndarray,
    *,
    out_dir: str | Path,
    nlist: int,
    n_shards: int,
    factory_tail: str = "Flat",
    train_sample: int = 200_000,
    seed: int = 0,
) -> Path:
    """Train an IVF once, fill ``n_shards`` shard files independently, merge their lists on disk.

    In production each shard is filled by its own process or machine from its slice of the catalogue
    (all of them start from ``trained.index``); here they are filled in turn. Returns the path of the
    merged index, whose inverted lists live in ``merged.ivfdata`` beside it: open it with ``load_ondisk``.
    """
    faiss = _faiss()
    from faiss.contrib.ondisk import merge_ondisk

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    rng = np.random.default_rng(seed)
    trained = faiss.index_factory(x.shape[1], f"IVF{nlist},{factory_tail}", faiss.METRIC_INNER_PRODUCT)
    trained.train(x[rng.choice(len(x), min(len(x), train_sample), replace=False)])
    faiss.write_index(trained, str(out / "trained.index"))
    shard_files = []
    for j, (s, e) in enumerate(shard_bounds(len(x), n_shards)):
        idx = faiss.read_index(str(out / "trained.index"))
        idx.add_with_ids(x[s:e], np.arange(s, e, dtype=np.int64))
        shard_files.append(str(out / f"shard_{j}.index"))
        faiss.write_index(idx, shard_files[-1])
    merged = faiss.read_index(str(out / "trained.index"))
    merge_ondisk(merged, shard_files, str(out / "merged.ivfdata"))
    faiss.write_index(merged, str(out / "merged.index"))
    for f in shard_files:
        Path(f).unlink()
    return out / "merged.index"


def load_ondisk(path: str | Path, *, nprobe: int = 16) -> Any:
    """Open a merged on-disk IVF index (its ``.ivfdata`` is memory-mapped, not read into RAM)."""
    faiss = _faiss()
    idx = faiss.read_index(str(path), faiss.IO_FLAG_ONDISK_SAME_DIR)
    faiss.extract_index_ivf(idx).nprobe = nprobe
    return idx
