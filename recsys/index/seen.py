"""Items to exclude per query (a user's history), as CSR arrays, and the over-fetch filter."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import polars as pl


@dataclasses.dataclass(frozen=True)
class Seen:
    """Row ``i`` of a query batch must not return items ``indices[indptr[i]:indptr[i+1]]`` (catalogue ids)."""

    indptr: np.ndarray  # (B+1,) int64
    indices: np.ndarray  # (nnz,) int64

    @classmethod
    def from_lists(cls, lists: Sequence[Sequence[int] | np.ndarray]) -> Seen:
        lens = np.fromiter((len(x) for x in lists), dtype=np.int64, count=len(lists))
        indptr = np.zeros(len(lists) + 1, dtype=np.int64)
        np.cumsum(lens, out=indptr[1:])
        flat = np.concatenate([np.asarray(x, dtype=np.int64) for x in lists]) if len(lists) else np.zeros(0, np.int64)
        return cls(indptr=indptr, indices=flat.astype(np.int64, copy=False))

    @classmethod
    def from_frame(cls, history: pl.DataFrame, users: np.ndarray) -> Seen:
        """Seen items of ``users`` (B,) from a (user, item) frame; users absent from it have none."""
        users = np.asarray(users, dtype=np.int64)
        order = pl.DataFrame({"user": users, "row": np.arange(len(users), dtype=np.int64)})
        h = (history.select(pl.col("user").cast(pl.Int64), pl.col("item").cast(pl.Int64)).unique()
             .join(order, on="user").sort("row"))
        counts = np.bincount(h["row"].to_numpy(), minlength=len(users)).astype(np.int64)
        indptr = np.zeros(len(users) + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        return cls(indptr=indptr, indices=h["item"].to_numpy().astype(np.int64))

    def __len__(self) -> int:
        return len(self.indptr) - 1

    def rows(self, start: int, stop: int) -> Seen:
        lo, hi = self.indptr[start], self.indptr[stop]
        return Seen(indptr=self.indptr[start:stop + 1] - lo, indices=self.indices[lo:hi])

    def max_len(self) -> int:
        return int(np.diff(self.indptr).max()) if len(self) else 0

    def pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """(row, item) for every excluded pair."""
        return np.repeat(np.arange(len(self), dtype=np.int64), np.diff(self.indptr)), self.indices


def drop_seen(scores: np.ndarray, ids: np.ndarray, seen: Seen | None, *, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Keep the first ``k`` results per row that are neither seen nor padding (-1).

    Args:
        scores, ids: (B, K') over-fetched results, best first.
    Returns:
        (B, k) scores and ids; rows with fewer than k survivors are padded with -inf / -1.
    """
    bad = ids < 0
    if seen is not None and len(seen.indices):
        row, item = seen.pairs()
        span = np.int64(max(int(ids.max(initial=0)), int(item.max(initial=0))) + 1)
        keys = np.arange(len(ids), dtype=np.int64)[:, None] * span + ids
        # membership by one sort + binary search: ``np.isin`` sorts (hash-uniques, in numpy 2.4) both sides
        excluded = np.sort(row * span + item)
        bad |= excluded[np.searchsorted(excluded, keys).clip(max=len(excluded) - 1)] == keys
    order = np.argsort(bad, axis=1, kind="stable")[:, :k]
    s = np.take_along_axis(scores, order, axis=1)
    i = np.take_along_axis(ids, order, axis=1)
    dropped = np.take_along_axis(bad, order, axis=1)
    s[dropped], i[dropped] = -np.inf, -1
    if s.shape[1] < k:  # fewer results than k were fetched (tiny catalogue)
        pad = k - s.shape[1]
        s = np.pad(s, ((0, 0), (0, pad)), constant_values=-np.inf)
        i = np.pad(i, ((0, 0), (0, pad)), constant_values=-1)
    return s.astype(np.float32, copy=False), i.astype(np.int64, copy=False)
