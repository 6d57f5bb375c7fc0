"""User embeddings at a prediction point, from history strictly before it (no leakage by construction).

``pooled``: recency-weighted mean of the history's item embeddings, weight of the k-th most recent item
= decay**k over the last ``last_n`` items, then L2-normalised. Users without history get zeros.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import torch


def history_weights(
    history: pl.DataFrame, *, last_n: int, decay: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(user, item, pos) events -> (rows, cols, weights) of a sparse (n_users, n_items) pooling matrix.

    Only the last ``last_n`` events by ``pos`` of each user count; weight decay**k for the k-th most recent.
    A repeated item accumulates its weights.
    """
    h = (history.select("user", "item", "pos")
         .with_columns(pl.col("pos").rank("ordinal", descending=True).over("user").alias("k") - 1)
         .filter(pl.col("k") < last_n))
    k = h["k"].to_numpy().astype(np.float64)
    w = np.power(float(decay), k).astype(np.float32)
    return h["user"].to_numpy().astype(np.int64), h["item"].to_numpy().astype(np.int64), w


def weighted_mean(rows: np.ndarray, cols: np.ndarray, w: np.ndarray, *, emb: np.ndarray, n_rows: int) -> np.ndarray:
    """Triplets (row, col, weight) over (N, D) ``emb`` -> (n_rows, D) float32 weighted means (zero if empty).

    A weighted *mean* (not sum) so that an affine adapter A commutes with it: A(mean e) = mean A(e).
    """
    idx = torch.from_numpy(np.stack([rows, cols]).astype(np.int64))
    s = torch.sparse_coo_tensor(idx, torch.from_numpy(w.astype(np.float32)), size=(n_rows, emb.shape[0]),
                                check_invariants=False).coalesce()
    total = torch.sparse.mm(s, torch.from_numpy(np.ascontiguousarray(emb, dtype=np.float32))).numpy()
    norm = np.bincount(rows, weights=w, minlength=n_rows).astype(np.float32)[:, None]
    return total / np.where(norm > 0, norm, 1.0)


def pooled_mean(*, item_emb: np.ndarray, history: pl.DataFrame, n_users: int, last_n: int, decay: float) -> np.ndarray:
    """(N, D) item embeddings + history -> (n_users, D) recency-weighted means (not normalised)."""
    rows, cols, w = history_weights(history, last_n=last_n, decay=decay)
    return weighted_mean(rows, cols, w, emb=item_emb, n_rows=n_users)


def pooled_users(
    *, item_emb: np.ndarray, history: pl.DataFrame, n_users: int, last_n: int, decay: float
) -> np.ndarray:
    """(N, D) item embeddings + history -> (n_users, D) float32, L2-normalised; zero rows = no history.

    ``history`` must be ``Tables.history(split)``: events strictly before the split's prediction point.
    """
    return normalize_rows(pooled_mean(item_emb=item_emb, history=history, n_users=n_users, last_n=last_n,
                                      decay=decay))


def normalize_rows(x: np.ndarray) -> np.ndarray:
    """(n, D) -> (n, D) float32 with unit rows; zero rows stay zero."""
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.where(n > 0, n, 1.0)).astype(np.float32)
