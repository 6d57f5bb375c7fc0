"""Numpy pieces shared by the two numpy user towers (``user_tower``, ``seq_user_tower``): what TorchRec's MEAN
pooling, ``F.normalize`` and the teacher carry's recency pooling compute."""

from __future__ import annotations

import numpy as np


def teacher_vector(carry: np.ndarray, hist: np.ndarray, *, last_n: int, decay: float) -> np.ndarray:
    """sum of decay**age * carry[item] over the last ``last_n`` items (age 0 = most recent); zeros if empty."""
    h = hist[max(0, len(hist) - last_n):]
    if not len(h):
        return np.zeros(carry.shape[1], np.float32)
    w = (decay ** np.arange(len(h) - 1, -1, -1)).astype(np.float32)
    return (w[:, None] * carry[h]).sum(axis=0)


def normalize(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)  # F.normalize


def bag_mean(table: np.ndarray, rows: np.ndarray) -> np.ndarray:
    return table[rows].mean(axis=0) if len(rows) else np.zeros(table.shape[1], np.float32)
