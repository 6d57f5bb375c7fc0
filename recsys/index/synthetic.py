"""Seeded synthetic vectors with cluster structure, for tests and benchmarks of the index.

Real two-tower item vectors are far from isotropic Gaussian: items cluster by category/brand, cluster
sizes are skewed, and norms vary with popularity (inner-product models put popular items at larger
norm). The generator mimics that, so IVF/HNSW behave as they do on real exports.
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


def write_stand_in_run(root: object, *, variant: str = "student_kd", dim: int = 16, teacher_dim: int = 24,
                       teacher_k: int = 50, seed: int = 0) -> None:
    """Write student and teacher artifacts that follow docs/CONTRACTS.md over the tables already in ``root``
    (run the data stage first). Item vectors cluster by leaf category; a user vector is the mean of the
    user's history item vectors at that point, so retrieval is meaningful but imperfect. Tests only."""
    import json
    from pathlib import Path

    import polars as pl

    from recsys.artifacts import Layout, write_npy, write_parquet, write_safetensors, write_text
    from recsys.data.tables import load_tables

    lay = Layout(Path(str(root)))
    t = load_tables(lay)
    rng = np.random.default_rng(seed)
    leaf = t.items["categories"].list.last().fill_null("").to_numpy()
    _, cat = np.unique(leaf, return_inverse=True)

    def item_space(d: int) -> np.ndarray:
        centres = rng.standard_normal((cat.max() + 1, d)).astype(np.float32)
        return (centres[cat] + 0.7 * rng.standard_normal((t.n_items, d))).astype(np.float32)

    def user_space(items: np.ndarray, split: str) -> np.ndarray:
        h = t.history(split)  # type: ignore[arg-type]
        out = np.zeros((t.n_users, items.shape[1]), np.float32)
        np.add.at(out, h["user"].to_numpy(), items[h["item"].to_numpy()])
        n = np.bincount(h["user"].to_numpy(), minlength=t.n_users)[:, None]
        return out / np.maximum(n, 1)

    sdir = lay.stage_dir("student") / variant
    iv = item_space(dim)
    write_npy(sdir / "item_vectors.npy", iv)
    for split in ("valid", "test"):
        write_npy(sdir / f"user_vectors_{split}.npy", user_space(iv, split))
    write_text(sdir / "meta.json", json.dumps({"metric": "ip", "dim": dim, "variant": variant, "stand_in": True}))
    tdir = lay.stage_dir("teacher")
    items = {"raw": item_space(teacher_dim), "adapted": item_space(teacher_dim)}
    items = {k: v / np.linalg.norm(v, axis=1, keepdims=True) for k, v in items.items()}
    write_safetensors(tdir / "item_emb.safetensors", items)
    users = {f"{sp}_{split}": user_space(items[sp], split) for sp in items for split in ("valid", "test")}
    write_safetensors(tdir / "user_emb.safetensors", users)
    for split in ("valid", "test"):
        sc = users[f"adapted_{split}"] @ items["adapted"].T
        h = t.history(split)  # type: ignore[arg-type]
        sc[h["user"].to_numpy(), h["item"].to_numpy()] = -np.inf
        kk = min(teacher_k, t.n_items)
        top = np.argsort(-sc, axis=1, kind="stable")[:, :kk]
        write_parquet(tdir / f"topk_{split}.parquet", pl.DataFrame({
            "user": np.repeat(np.arange(t.n_users, dtype=np.int32), kk),
            "item": top.ravel().astype(np.int32),
            "score": np.take_along_axis(sc, top, 1).ravel().astype(np.float32),
            "rank": np.tile(np.arange(kk, dtype=np.int32), t.n_users),
        }).filter(pl.col("score").is_finite()))
