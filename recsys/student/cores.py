"""Let rank 0 use every core of its host while it works alone.

A torchrun worker starts with ``cores // nproc`` threads (``OMP_NUM_THREADS``, which numpy's BLAS reads too),
right while every rank computes. Validation scoring and the export's metrics run on rank 0 only, the other
ranks waiting in a collective: without this, on 2 cores and 2 processes that full-ranking matmul runs on one
thread beside an idle core. BLAS splits a matrix product over output blocks, so the scores do not depend on
the number of threads.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator


@contextlib.contextmanager
def all_cores(*, world: int) -> Iterator[None]:
    """Within the block numpy's BLAS may use every core of this host (a no-op in a 1-process run, which
    has them already, or without ``threadpoolctl``)."""
    local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    if world <= 1 or local <= 1:
        yield
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - installed with the baselines' implicit; optional here
        yield
        return
    with threadpool_limits(limits=os.cpu_count() or local, user_api="blas"):
        yield
