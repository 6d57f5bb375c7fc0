"""Candidates from every retriever: each source's top-K per user, their union, and each source's score and rank.

A *source* is a dot-product retriever known by its vectors at the prediction point: ``users`` (U, D) and
``items`` (N, D). Its list is its exact top-K with the user's history excluded, unless a ready-made list is
given (the student's ANN candidates from the index stage, which is what serving retrieves). Every candidate of
the union gets every source's *exact* score (a dot product, so never missing when the vectors are there) and
its rank in that source's list, or the sentinel ``depth`` when the source did not retrieve it.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import polars as pl

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
        rows = np.repeat(np.arange(len(ub)), hi_ - lo)
        cols = hi[np.concatenate([np.arange(a, b) for a, b in zip(lo, hi_)])] if len(rows) else rows
        sc[rows, cols] = -np.inf
        # the k largest per row without negating the (B, N) block first (a copy as large as the scores)
        top = np.argpartition(sc, n - k, axis=1)[:, n - k:] if k < n else np.tile(np.arange(n), (len(ub), 1))
        ts = np.take_along_axis(sc, top, 1)
        order = np.lexsort((top, -ts), axis=1)
        top, ts = np.take_along_axis(top, order, 1), np.take_along_axis(ts, order, 1)
        keep = np.isfinite(ts).ravel()
        parts.append(pl.DataFrame({"user": np.repeat(ub, k).astype(np.int32)[keep],
                                   "item": top.ravel().astype(np.int32)[keep],
                                   "score": ts.ravel().astype(np.float32)[keep],
                                   "rank": np.tile(np.arange(k, dtype=np.int32), len(ub))[keep]}))
    return pl.concat(parts) if parts else pl.DataFrame(schema=LIST_SCHEMA)


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
                chunk: int = 1 << 17) -> np.ndarray:
    """(n,) float32 ``users[u] . items[i]``, in chunks (the gathered rows of millions of pairs would not fit)."""
    out = np.empty(len(u), dtype=np.float32)
    for s in range(0, len(u), chunk):
        out[s:s + chunk] = np.einsum("nd,nd->n", users[u[s:s + chunk]], items[i[s:s + chunk]])
    return out


def union(lists: dict[str, pl.DataFrame], *, sources: list[Source], depth: int) -> pl.DataFrame:
    """(user, item, {name}_score, {name}_rank for every source, n_sources), sorted by user, item.

    Every (user, item) retrieved by at least one source appears once. ``{name}_rank`` is the source's 0-based
    rank, or ``depth`` (a sentinel one past its list) when it did not retrieve the item; ``{name}_score`` is the
    source's exact dot product for every row, whether or not it retrieved the item. ``n_sources`` counts the
    lists that hold the row.
    """
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
