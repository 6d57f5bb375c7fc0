"""Mean/weighted bags of a whole CSR at once, as sparse matrices: the numpy towers' pooling without a Python loop.

A bag matrix ``M`` (rows, vocabulary) holds each row's pooling weights, so ``M @ table`` is every row's pooled
vector at once (TorchRec's MEAN pooling: duplicates count, an empty bag pools to zeros). Used by
``recsys.student.user_tower`` (history bags of every user) and ``recsys.student.item_tower`` (each item's
brand and category-prefix bags).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def tail(ptr: np.ndarray, last: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The last ``last`` entries of each CSR row: (row (M,), position in the values (M,), age (M,), 0 = newest)."""
    lens = np.diff(ptr)
    take = np.minimum(lens, max(last, 0))
    row = np.repeat(np.arange(len(lens), dtype=np.int64), take)
    offs = np.arange(int(take.sum()), dtype=np.int64) - np.repeat(np.cumsum(take) - take, take)
    pos = np.repeat(ptr[1:] - take, take) + offs
    age = np.repeat(take, take) - 1 - offs
    return row, pos.astype(np.int64), age


def expand(row: np.ndarray, item: np.ndarray, ptr: np.ndarray, vals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each (row, item) pair -> one pair per value of ``item``'s CSR row (e.g. its category prefixes)."""
    k = (ptr[item + 1] - ptr[item]).astype(np.int64)
    offs = np.arange(int(k.sum()), dtype=np.int64) - np.repeat(np.cumsum(k) - k, k)
    return np.repeat(row, k), vals[np.repeat(ptr[item], k) + offs]


def mean_matrix(row: np.ndarray, col: np.ndarray, *, n_rows: int, n_cols: int) -> sp.csr_matrix:
    """(n_rows, n_cols) with 1 / |bag| for each (row, col) entry (repeated entries add up)."""
    cnt = np.bincount(row, minlength=n_rows)
    w = 1.0 / np.maximum(cnt[row], 1)
    return sp.csr_matrix((w.astype(np.float64), (row, col)), shape=(n_rows, n_cols))


def pool(m: sp.csr_matrix, table: np.ndarray) -> np.ndarray:
    """``m @ table`` as float32 (n_rows, dim)."""
    return np.asarray(m @ table.astype(np.float64), dtype=np.float32)
