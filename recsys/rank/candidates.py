"""Candidates from every retriever: each source's top-K per user, their union, and each source's score and rank.

A *source* is a dot-product retriever known by its vectors at the prediction point: ``users`` (U, D) and
``items`` (N, D). Its list is its exact top-K with the user's history excluded, unless a ready-made list is
given (the student's ANN candidates from the index stage, which is what serving retrieves). Every candidate of
the union gets every source's *exact* score (a dot product, so never missing when the vectors are there) and
its rank in that source's list, or the sentinel ``depth`` when the source did not retrieve it.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import polars as pl

from recsys.topk import sorted_unique, top_k_set

LIST_SCHEMA = {"user": pl.Int32, "item": pl.Int32, "score": pl.Float32, "rank": pl.Int32}


@dataclasses.dataclass(frozen=True)
class Source:
    """One retriever at one prediction point.

    Args:
        name: short prefix of its feature columns ("s" student, "t" teacher, "a" ALS).
        users: (U, D) float32 user vectors; items: (N, D) float32 item vectors.
        lists: optional ready-made (user, item, score, rank) top-K; None = exact top-K from the vectors.
    """

    name: str
    users: np.ndarray
    items: np.ndarray
    lists: pl.DataFrame | None = None


def exact_topk(*, users: np.ndarray, items: np.ndarray, query: np.ndarray, history: pl.DataFrame, k: int,
               batch: int = 2048) -> pl.DataFrame:
    """Exact inner-product top-``k`` of the ``query`` users (Q,), history (user, item) excluded.

    Returns (user, item, score, rank 0-based) sorted by user then rank; ties broken by the lower item id.
    """
    n = items.shape[0]
    k = min(k, n)
    h = history.select(pl.col("user").cast(pl.Int64), pl.col("item").cast(pl.Int64)).unique().sort("user")
    hu, hi = h["user"].to_numpy(), h["item"].to_numpy()
    parts = []
    for s in range(0, len(query), batch):
        ub = np.asarray(query[s:s + batch], dtype=np.int64)
        sc = users[ub] @ items.T  # (B, N)
        lo, hi_ = np.searchsorted(hu, ub, "left"), np.searchsorted(hu, ub, "right")
        counts = hi_ - lo
        rows = np.repeat(np.arange(len(ub)), counts)
        cols = hi[np.repeat(lo - np.cumsum(counts) + counts, counts) + np.arange(len(rows))] if len(rows) else rows
        sc[rows, cols] = -np.inf
        top = _top_set(sc, k)
        ts = np.take_along_axis(sc, top, 1)
        order = np.lexsort((top, -ts), axis=1)
        top, ts = np.take_along_axis(top, order, 1), np.take_along_axis(ts, order, 1)
        keep = np.isfinite(ts).ravel()
        parts.append(pl.DataFrame({"user": np.repeat(ub, k).astype(np.int32)[keep],
                                   "item": top.ravel().astype(np.int32)[keep],
                                   "score": ts.ravel().astype(np.float32)[keep],
                                   "rank": np.tile(np.arange(k, dtype=np.int32), len(ub))[keep]}))
    return pl.concat(parts) if parts else pl.DataFrame(schema=LIST_SCHEMA)


def _top_set(sc: np.ndarray, k: int) -> np.ndarray:
    """(B, k) columns of each row's ``k`` largest scores, in no order: exactly the set that
    ``np.argpartition(sc, n - k, axis=1)[:, n - k:]`` keeps (``topk.top_k_set``: ~5x less work where that set
    is unique, argpartition itself on the rows where ties cross the cut).

    Not ``topk.top_k_rows``: among equal scores at the k-th place (the teacher's duplicate item texts) it keeps
    the lower ids where argpartition keeps others, and every list the ranker was tuned on would move."""
    n = sc.shape[1]
    if k >= n:
        return np.tile(np.arange(n), (sc.shape[0], 1))
    return top_k_set(sc, k, tied=lambda rows: np.argpartition(rows, n - k, axis=1)[:, n - k:])


def source_lists(sources: list[Source], *, query: np.ndarray, history: pl.DataFrame, depth: int) -> dict[str, pl.DataFrame]:
    """Each source's top-``depth`` list for the ``query`` users (ready-made lists are cut to ``depth``)."""
    out = {}
    q = pl.Series("user", query.astype(np.int32))
    for src in sources:
        if src.lists is not None:
            lst = src.lists.filter((pl.col("rank") < depth) & pl.col("user").is_in(q.implode()))
            out[src.name] = lst.select(pl.col(c).cast(t) for c, t in LIST_SCHEMA.items())
        else:
            out[src.name] = exact_topk(users=src.users, items=src.items, query=query, history=history, k=depth)
    return out


def pair_scores(users: np.ndarray, items: np.ndarray, u: np.ndarray, i: np.ndarray, *,
                chunk: int = 256, threads: int = 0) -> np.ndarray:
    """(n,) float32 ``users[u] . items[i]``, in chunks (the gathered rows of millions of pairs would not fit).

    The rows are gathered (``np.take(out=)``) into two small buffers allocated once, which stay in the CPU
    cache between the gather and the products: chunks of 128k pairs (fresh (chunk, D) arrays) cost 3x the CPU
    at D = 448. Each product is one row's einsum, so the values do not depend on the chunk, nor on which of the
    ``threads`` (0 = one per core, at most 4) computed it: contiguous shares of the pairs, each thread with its own
    buffers (numpy's take and einsum release the GIL; one thread left a core idle for ~10 s of Beauty's rank stage)."""
    out = np.empty(len(u), dtype=np.float32)
    n_threads = max(1, min(threads or (os.cpu_count() or 1), 4, len(u) // (64 * chunk) or 1))

    def share(lo: int, hi: int) -> None:
        n = min(chunk, hi - lo)
        bu = np.empty((n, users.shape[1]), dtype=users.dtype)
        bi = np.empty((n, items.shape[1]), dtype=items.dtype)
        for s in range(lo, hi, chunk):
            m = min(chunk, hi - s)
            np.take(users, u[s:s + m], axis=0, out=bu[:m])
            np.take(items, i[s:s + m], axis=0, out=bi[:m])
            out[s:s + m] = np.einsum("nd,nd->n", bu[:m], bi[:m])

    if n_threads == 1:
        share(0, len(u))
        return out
    from concurrent.futures import ThreadPoolExecutor

    per = -(-len(u) // n_threads)
    starts = range(0, len(u), per)
    with ThreadPoolExecutor(max_workers=n_threads, thread_name_prefix="pair-scores") as pool:
        list(pool.map(share, starts, [min(len(u), s + per) for s in starts]))
    return out


def union(lists: dict[str, pl.DataFrame], *, sources: list[Source], depth: int) -> pl.DataFrame:
    """(user, item, {name}_score, {name}_rank for every source, n_sources), sorted by user, item.

    Every (user, item) retrieved by at least one source appears once. ``{name}_rank`` is the source's 0-based
    rank, or ``depth`` (a sentinel one past its list) when it did not retrieve the item; ``{name}_score`` is the
    source's exact dot product for every row, whether or not it retrieved the item. ``n_sources`` counts the
    lists that hold the row.
    """
    keys = {name: _keys(lst) for name, lst in lists.items()}
    if any(len(sorted_unique(k)) != len(k) for k in keys.values()):  # a list naming a pair twice: joins keep both
        return _union_joins(lists, sources=sources, depth=depth)
    every = sorted_unique(np.concatenate(list(keys.values()))) if keys else np.zeros(0, np.int64)  # sorted
    cols: dict[str, np.ndarray] = {"user": (every >> 32).astype(np.int32),
                                   "item": (every & 0xFFFFFFFF).astype(np.int32)}
    n_sources = np.zeros(len(every), dtype=np.int8)
    for name, lst in lists.items():
        rank = np.full(len(every), depth, dtype=np.int32)
        pos = np.searchsorted(every, keys[name])
        rank[pos] = lst["rank"].to_numpy()
        n_sources[pos] += 1
        cols[f"{name}_rank"] = rank
    cols["n_sources"] = n_sources
    u, i = cols["user"].astype(np.int64), cols["item"].astype(np.int64)
    for src in sources:
        cols[f"{src.name}_score"] = pair_scores(src.users, src.items, u, i)
    schema = {"user": pl.Int32, "item": pl.Int32, **{f"{n}_rank": pl.Int32 for n in lists}, "n_sources": pl.Int8,
              **{f"{s.name}_score": pl.Float32 for s in sources}}
    return pl.DataFrame({c: cols[c] for c in schema}, schema=schema)


def _keys(lst: pl.DataFrame) -> np.ndarray:
    """(n,) int64 ``user << 32 | item`` of a list's rows: sorting them sorts by user, then item."""
    return (lst["user"].to_numpy().astype(np.int64) << 32) | lst["item"].to_numpy().astype(np.int64)


def _union_joins(lists: dict[str, pl.DataFrame], *, sources: list[Source], depth: int) -> pl.DataFrame:
    """``union`` by polars joins (the reference; also what a list that repeats a pair gets: one row per match)."""
    pairs = pl.concat([lst.select("user", "item") for lst in lists.values()]).unique()
    out = pairs
    for name, lst in lists.items():
        out = out.join(lst.select("user", "item", pl.col("rank").alias(f"{name}_rank")), on=["user", "item"],
                       how="left")
    out = out.with_columns(
        pl.sum_horizontal([pl.col(f"{n}_rank").is_not_null() for n in lists]).cast(pl.Int8).alias("n_sources"),
        *[pl.col(f"{n}_rank").fill_null(depth).cast(pl.Int32) for n in lists])
    u = out["user"].to_numpy().astype(np.int64)
    i = out["item"].to_numpy().astype(np.int64)
    scores = [pl.Series(f"{s.name}_score", pair_scores(s.users, s.items, u, i)) for s in sources]
    return out.with_columns(scores).sort("user", "item")
