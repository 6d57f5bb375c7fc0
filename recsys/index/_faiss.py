"""The one place that imports faiss (lazily), plus GPU detection."""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Iterator
from typing import Any

log = logging.getLogger(__name__)

GPU_TOPK_LIMIT = 2048  # faiss GPU k-selection (and nprobe) limit


def import_faiss() -> Any:
    try:
        import faiss
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the index stage needs faiss: `pip install 'recsys[index]'` (faiss-cpu), or faiss-gpu-cu12 for GPU"
        ) from e
    return faiss


@contextlib.contextmanager
def omp_threads(n: int) -> Iterator[None]:
    """faiss's OpenMP threads set to ``n`` inside the block (0 = leave them), restored after."""
    faiss = import_faiss()
    before = faiss.omp_get_max_threads()
    if n > 0:
        faiss.omp_set_num_threads(n)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


@functools.lru_cache(maxsize=1)
def gpu_available() -> bool:
    """True when faiss is a GPU build and sees at least one CUDA device."""
    faiss = import_faiss()
    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


def want_gpu(use_gpu: str) -> bool:
    if use_gpu == "never":
        return False
    ok = gpu_available()
    if use_gpu == "always" and not ok:
        raise RuntimeError("index.use_gpu='always' but faiss sees no GPU (CPU build of faiss or no CUDA device); "
                           "install faiss-gpu-cu12 or set index.use_gpu=auto")
    return ok


@functools.lru_cache(maxsize=1)
def gpu_resources() -> Any:
    return import_faiss().StandardGpuResources()
