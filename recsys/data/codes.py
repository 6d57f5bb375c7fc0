"""String ids -> dense int codes, and the one sort the data stage needs, on packed 64-bit keys.

Why not ``group_by`` / joins / ``Categorical`` on the strings: on a 10M-row log each of those is a hash
table probed with 10M strings, several seconds apiece on a small machine. Here a string column is
hashed once (``Series.hash``, a cheap vectorised pass) and the *integers* are sorted instead: a value
sort of ``hash << b | row`` (numpy, no argsort) groups equal hashes and says which row sits where.

Exactness does not rest on the hash: the first string of every group is checked against every row of
the group (``values[codes] == column``), and the rows that differ (a truncated-hash collision, a few rows
at most) get their own codes from an exact string ``unique``. So ``values[codes]`` always reproduces the
column, null included (a null is one more value).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import polars as pl

_U = np.uint64
_SLICE = 1 << 20  # rows per slice when checking codes against the strings


@dataclasses.dataclass(frozen=True)
class Coded:
    """A column as codes: ``values.gather(codes)`` equals the column, row for row."""

    codes: np.ndarray  # (N,) int32 in [0, K)
    values: pl.Series  # (K,) the distinct values (null at most once), mostly in order of first appearance

    @property
    def null_code(self) -> int | None:
        nulls = self.values.is_null()
        return int(nulls.arg_true()[0]) if nulls.any() else None


def row_bits(n: int) -> int:
    """Bits that hold a row number below ``n``."""
    return max(1, (n - 1).bit_length())


def encode(s: pl.Series) -> Coded:
    """Dense int32 codes of ``s`` (any dtype ``Series.hash`` takes; built for String ids)."""
    n = s.len()
    if n == 0:
        return Coded(np.zeros(0, np.int32), s.clear())
    if s.null_count() == 0 and (s == s[0]).all():  # one value (an "event" column, one source file)
        return Coded(np.zeros(n, np.int32), s.head(1))
    b = _U(row_bits(n))
    key = s.hash().to_numpy() >> b  # the hash's top (64 - b) bits, then the row number
    key <<= b
    key |= np.arange(n, dtype=np.uint64)
    key.sort()
    rows = (key & _U((1 << int(b)) - 1)).view(np.int64)  # rows grouped by hash, each group in row order
    key >>= b
    first = np.empty(n, dtype=bool)
    first[0] = True
    np.not_equal(key[1:], key[:-1], out=first[1:])
    del key
    group = np.cumsum(first, dtype=np.int32) - 1  # hash group of each sorted position
    rep = rows[first]  # first row of each group
    by_row = np.argsort(rep)
    code_of = np.empty(len(rep), dtype=np.int32)
    code_of[by_row] = np.arange(len(rep), dtype=np.int32)  # codes in order of first appearance
    codes = np.empty(n, dtype=np.int32)
    codes[rows] = code_of[group]
    values = s.gather(rep[by_row])  # ascending rows: a sequential read
    del rows, first, group
    at = np.concatenate([  # rows whose string differs from their group's first (in slices: less memory)
        values.gather(codes[a:a + _SLICE]).eq_missing(s.slice(a, _SLICE)).not_().arg_true().to_numpy() + a
        for a in range(0, n, _SLICE)])
    if at.size:  # strings that share their truncated hash with another one: exact codes for those rows
        other = s.gather(at)
        extra = other.unique(maintain_order=True)
        sub = (other.to_frame("v")
               .join(extra.to_frame("v").with_row_index("c"), on="v", how="left", nulls_equal=True,
                     maintain_order="left")["c"].to_numpy())
        codes[at] = values.len() + sub.astype(np.int32)
        values = pl.concat([values, extra])
    return Coded(codes, values)


def rank_codes(values: pl.Series) -> np.ndarray:
    """(K,) int32 position of each value in ``values.sort()`` order (nulls first, like ``DataFrame.sort``)."""
    order = values.arg_sort().to_numpy()
    rank = np.empty(len(order), dtype=np.int32)
    rank[order] = np.arange(len(order), dtype=np.int32)
    return rank


def lex_order(major: np.ndarray, minor: pl.Series, *, tiebreak: np.ndarray | None = None) -> np.ndarray:
    """(N,) row numbers sorted by (``major``, ``minor``, ``tiebreak``); stable (row number last).

    Args:
        major: (N,) non-negative ints below N (codes or ranks).
        minor: (N,) Int64, nulls allowed (they sort first, as in ``DataFrame.sort``).
        tiebreak: (N,) a permutation of 0..N-1 that orders equal (major, minor); None = the row order.
    Two value sorts (least significant key first), each of ``key << b | position``: numpy sorts 64-bit
    values several times faster than it arg-sorts them.
    """
    n = len(major)
    b = _U(row_bits(n))
    mask = _U((1 << int(b)) - 1)
    lo, hi = minor.min(), minor.max()
    if lo is None:  # all null
        key = np.zeros(n, dtype=np.uint64)
    elif (int(hi) - int(lo) + 2).bit_length() + int(b) <= 64:  # type: ignore[arg-type]
        if minor.null_count():
            # null -> 0, the rest 1..
            key = (minor - lo + 1).fill_null(0).cast(pl.UInt64).to_numpy(writable=True)
        else:
            key = np.subtract(minor.to_numpy(), np.int64(lo), dtype=np.int64)  # type: ignore[arg-type]
            key = key.view(np.uint64)
    else:  # a span too wide to pack next to a row number: use the dense rank of the values instead
        key = minor.rank("dense").fill_null(0).cast(pl.UInt64).to_numpy(writable=True)
    key <<= b
    key |= np.arange(n, dtype=np.uint64) if tiebreak is None else tiebreak.astype(np.uint64)
    key.sort()
    key &= mask
    pos = key.view(np.int64)  # tiebreak values, ordered by (minor, tiebreak)
    if tiebreak is not None:
        inv = np.empty(n, dtype=np.int64)
        inv[tiebreak] = np.arange(n)
        pos = inv[pos]  # -> row numbers
    key = major[pos].astype(np.uint64)
    key <<= b
    key |= np.arange(n, dtype=np.uint64)
    key.sort()
    key &= mask
    return pos[key.view(np.int64)]


def tie_runs(sorted_keys: list[np.ndarray]) -> np.ndarray:
    """(N,) bool: positions of a sorted sequence that are in a run of >= 2 equal key tuples."""
    n = len(sorted_keys[0])
    same = np.ones(max(n - 1, 0), dtype=bool)
    for k in sorted_keys:
        same &= k[1:] == k[:-1]
    member = np.zeros(n, dtype=bool)
    member[1:] |= same
    member[:-1] |= same
    return member
