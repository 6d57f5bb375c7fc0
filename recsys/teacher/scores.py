"""Exact teacher top-K (history excluded) and scores of arbitrary (user, item) pairs."""

from __future__ import annotations

import numpy as np
import polars as pl
import torch


def pair_scores(*, user_emb: np.ndarray, item_emb: np.ndarray, users: np.ndarray, items: np.ndarray) -> np.ndarray:
    """(U, D), (N, D), (P,), (P,) -> (P,) float32 inner products of the given pairs."""
    u = np.asarray(user_emb, dtype=np.float32)[np.asarray(users)]
    v = np.asarray(item_emb, dtype=np.float32)[np.asarray(items)]
    return np.einsum("pd,pd->p", u, v).astype(np.float32)


def topk(
    *, user_emb: np.ndarray, item_emb: np.ndarray, history: pl.DataFrame, k: int, users: np.ndarray | None = None,
    batch: int = 2048,
) -> pl.DataFrame:
    """Exact top-``k`` items per user by inner product, items in the user's ``history`` excluded.

    Args:
        user_emb: (U, D) float32. item_emb: (N, D) float32.
        history: (user, item) events to exclude (``Tables.history(split)``).
        users: which users (default all U).
    Returns:
        (user i32, item i32, score f32, rank i32) sorted by user then rank; rank 0 = best. A user with
        fewer than ``k`` unseen items gets fewer rows.
    """
    n_items = item_emb.shape[0]
    users = np.arange(user_emb.shape[0]) if users is None else np.asarray(users)
    k = min(k, n_items)
    h = history.select("user", "item").unique()
    hu, hi = h["user"].to_numpy().astype(np.int64), h["item"].to_numpy().astype(np.int64)
    order = np.argsort(hu, kind="stable")
    hu, hi = hu[order], hi[order]
    items_t = torch.from_numpy(np.ascontiguousarray(item_emb, dtype=np.float32))
    out_u, out_i, out_s, out_r = [], [], [], []
    for s in range(0, len(users), batch):
        ub = users[s:s + batch]
        scores = torch.from_numpy(np.ascontiguousarray(user_emb[ub], dtype=np.float32)) @ items_t.T
        lo, hi_ = np.searchsorted(hu, ub, "left"), np.searchsorted(hu, ub, "right")
        rows = np.repeat(np.arange(len(ub)), hi_ - lo)
        cols = hi[np.concatenate([np.arange(a, b) for a, b in zip(lo, hi_)])] if len(rows) else rows
        scores[torch.from_numpy(rows), torch.from_numpy(cols)] = float("-inf")
        val, idx = torch.topk(scores, k, dim=1)  # sorted, descending
        val, idx = val.numpy(), idx.numpy()
        keep = np.isfinite(val)
        out_u.append(np.repeat(ub, k).reshape(len(ub), k)[keep])
        out_i.append(idx[keep])
        out_s.append(val[keep])
        out_r.append(np.tile(np.arange(k), len(ub)).reshape(len(ub), k)[keep])
    return pl.DataFrame({
        "user": np.concatenate(out_u).astype(np.int32), "item": np.concatenate(out_i).astype(np.int32),
        "score": np.concatenate(out_s).astype(np.float32), "rank": np.concatenate(out_r).astype(np.int32),
    })
