"""Numpy pieces shared by the numpy towers (``user_tower``, ``seq_user_tower``, ``item_tower``): what TorchRec's MEAN
pooling, the towers' MLP + ``F.normalize`` and the teacher carry compute."""

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


def mlp_normalized(x: np.ndarray, layers: tuple[tuple[np.ndarray, np.ndarray], ...]) -> np.ndarray:
    """``towers.mlp`` (Linear-ReLU-...-Linear, no activation after the last) then ``F.normalize``."""
    for j, (w, b) in enumerate(layers):
        x = x @ w.T + b
        if j < len(layers) - 1:
            x = np.maximum(x, 0.0)
    return normalize(x)


def carry_join(t: np.ndarray, r: np.ndarray, a: float) -> np.ndarray:
    """``[sqrt(a) t, sqrt(1 - a) r]``: the teacher carry's output (``TwoTower._carry``)."""
    return np.concatenate([np.sqrt(a) * t, np.sqrt(1.0 - a) * r], axis=1).astype(np.float32)


def with_carry(x: np.ndarray, histories: list[np.ndarray], *, carry: np.ndarray | None, a: float, last_n: int,
               decay: float) -> np.ndarray:
    """A numpy user tower's output: ``x`` itself without a carry, else ``carry_join`` of each history's normalised
    ``teacher_vector`` and ``x``."""
    if carry is None:
        return x
    t = normalize(np.stack([teacher_vector(carry, h, last_n=last_n, decay=decay) for h in histories]))
    return carry_join(t, x, a)
