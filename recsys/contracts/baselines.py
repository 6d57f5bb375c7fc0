"""baselines/: popularity counts (N,) and ALS factors (U, f) / (N, f) at each split's prediction point."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from recsys.contracts import _checks as C
from recsys.contracts.layout import Layout
from recsys.contracts.manifests import present, verify

STAGE = "baselines"


def write_popularity(*, layout: Layout, split: str, counts: np.ndarray) -> Path:
    from recsys.artifacts import write_npy

    return write_npy(layout.popularity(split), counts)


def write_als(*, layout: Layout, split: str, users: np.ndarray, items: np.ndarray) -> list[Path]:
    from recsys.artifacts import write_npy

    return [write_npy(layout.als_users(split), users), write_npy(layout.als_items(split), items)]


def has_popularity(layout: Layout, *, split: str) -> bool:
    return present(layout.popularity(split), layout=layout)


def has_als(layout: Layout, *, split: str) -> bool:
    return present(layout.als_users(split), layout=layout) or present(layout.als_items(split), layout=layout)


def read_popularity(*, layout: Layout, split: str, n_items: int) -> np.ndarray:
    """(N,) counts, verified: one finite value per catalogue item."""
    p = verify(layout.popularity(split), layout=layout, stage=STAGE)
    x = C.load_npy(p, stage=STAGE)
    if x.dtype.kind in "iu":
        x = x.astype(np.float64)
    return C.check_array(x, path=p, stage=STAGE, kind="f", ndim=1, rows=n_items, what="one count per item")


def read_als(*, layout: Layout, split: str, n_users: int, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """(users (U, f), items (N, f)) float32, verified."""
    up, ip = verify(layout.als_users(split), layout=layout, stage=STAGE), \
        verify(layout.als_items(split), layout=layout, stage=STAGE)
    u = C.check_array(C.load_npy(up, stage=STAGE), path=up, stage=STAGE, kind="f", ndim=2, rows=n_users,
                      what="one row per user")
    i = C.check_array(C.load_npy(ip, stage=STAGE), path=ip, stage=STAGE, kind="f", ndim=2, rows=n_items,
                      cols=u.shape[1], what="one row per item, as many factors as the user file")
    return u, i
