"""Implicit-feedback ALS (Hu, Koren & Volinsky, ICDM 2008) through the `implicit` library."""

from __future__ import annotations

import numpy as np
import polars as pl


def fit_als(events: pl.DataFrame, *, n_users: int, n_items: int, factors: int, regularization: float,
            alpha: float, iterations: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Fit on (user, item) events -> (user_factors (U, f), item_factors (N, f)) float32, numpy."""
    try:
        import implicit
        import scipy.sparse as sp
    except ImportError as e:  # pragma: no cover
        raise ImportError("the ALS baseline needs `implicit` and `scipy`: pip install 'recsys[baselines]'") from e
    from threadpoolctl import threadpool_limits

    pairs = events.group_by("user", "item").len()
    mat = sp.csr_matrix(
        (alpha * pairs["len"].to_numpy().astype(np.float32),
         (pairs["user"].to_numpy(), pairs["item"].to_numpy())),
        shape=(n_users, n_items),
    )
    with threadpool_limits(1, "blas"):  # implicit's own advice: BLAS threads fight its OpenMP threads
        model = implicit.cpu.als.AlternatingLeastSquares(
            factors=factors, regularization=regularization, iterations=iterations, random_state=seed,
            calculate_training_loss=False,
        )
        model.fit(mat, show_progress=False)
    return np.asarray(model.user_factors, dtype=np.float32), np.asarray(model.item_factors, dtype=np.float32)
