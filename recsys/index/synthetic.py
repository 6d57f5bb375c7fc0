"""Seeded synthetic vectors with cluster structure, for tests and benchmarks of the index.

Real two-tower item vectors are far from isotropic Gaussian: items cluster by category/brand, cluster
sizes are skewed, and norms vary with popularity (inner-product models put popular items at larger
norm). The generator mimics that, so IVF/HNSW behave as they do on real exports. (Stand-in run directories for
tests are written by ``tests/stand_ins.py``, through ``recsys.contracts``.)
"""

from __future__ import annotations

import numpy as np


def clustered_vectors(
    n: int, d: int, *, n_clusters: int = 256, spread: float = 0.35, zipf: float = 0.8, seed: int = 0
) -> np.ndarray:
    """(n, d) float32: Zipf-sized clusters around random unit centres, Gaussian noise of ``spread`` per unit
    norm, and log-normal norms. Generated in chunks (1M x 64 takes ~1 s)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_clusters, d)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    p = 1.0 / np.arange(1, n_clusters + 1) ** zipf
    assign = rng.choice(n_clusters, size=n, p=p / p.sum())
    out = np.empty((n, d), np.float32)
    for s in range(0, n, 1 << 18):
        e = min(n, s + (1 << 18))
        x = centres[assign[s:e]] + rng.standard_normal((e - s, d), dtype=np.float32) * (spread / np.sqrt(d))
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        x *= rng.lognormal(0.0, 0.25, size=(e - s, 1)).astype(np.float32)
        out[s:e] = x
    return out


def queries_like(items: np.ndarray, n: int, *, seed: int = 1, noise: float = 0.5) -> np.ndarray:
    """(n, d) query vectors near the items' distribution: the mean of a few random items plus noise
    (a user vector is roughly the pooled vectors of their history)."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(items), size=(n, 3))
    q = items[picks].mean(1)
    q += rng.standard_normal(q.shape).astype(np.float32) * (noise / np.sqrt(items.shape[1]))
    return np.ascontiguousarray(q, dtype=np.float32)


def resample_like(items: np.ndarray, n: int, *, noise: float = 0.5, rank: int = 64, seed: int = 0) -> np.ndarray:
    """(n, d) float32: ``n`` vectors resampled from real item vectors, keeping their cluster structure.

    Each new vector is a random real row plus Gaussian noise drawn from the rows' own covariance (top
    ``rank`` principal directions, each with its own spread, scaled by ``noise``), then rescaled to the
    source row's norm. The noise lies in the subspace the real vectors span, so a 448-d export that is a
    384-d teacher part and a 64-d student part stays low-rank like the original; ``noise`` = 0.5 puts a
    copy at cosine ~0.9 of its source, so the copies of one item are near, not duplicates.

    Args:
        items: (N0, d) real item vectors (e.g. a student export's ``item_vectors``).
        n: rows wanted (e.g. 1,000,000).
    """
    x = np.ascontiguousarray(items, dtype=np.float32)
    rng = np.random.default_rng(seed)
    mu = x.mean(0)
    _, sv, vt = np.linalg.svd(x - mu, full_matrices=False)
    r = min(rank, len(sv))
    basis = (vt[:r] * (sv[:r, None] / np.sqrt(max(1, len(x) - 1)))).astype(np.float32)  # (r, d): std along each
    src = rng.integers(0, len(x), size=n)
    norms = np.linalg.norm(x, axis=1)
    out = np.empty((n, x.shape[1]), np.float32)
    for s in range(0, n, 1 << 16):
        e = min(n, s + (1 << 16))
        v = x[src[s:e]] + (rng.standard_normal((e - s, r), dtype=np.float32) * np.float32(noise)) @ basis
        nv = np.linalg.norm(v, axis=1, keepdims=True)
        v *= (norms[src[s:e], None] / np.maximum(nv, 1e-12)).astype(np.float32)
        out[s:e] = v
    return out
