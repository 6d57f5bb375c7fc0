"""``kind = "auto"``: exact up to ``flat_max_items`` items, fast-scan IVF above; the recorded kind is the built one.
IVF kinds built on another's coarse centroids equal the ones that train their own."""

from __future__ import annotations

import numpy as np
import pytest

from recsys.index import IndexConfig
from recsys.index.build import build_index, coarse_centroids, resolve_kind
from recsys.index.io import load_index, save_index
from recsys.index.synthetic import clustered_vectors, queries_like


@pytest.mark.parametrize(("n", "limit", "want"), [(100, 100, "flat"), (101, 100, "ivf_fastscan"), (5, 0, "ivf_fastscan")])
def test_auto_resolves_by_catalogue_size(n: int, limit: int, want: str) -> None:
    assert resolve_kind(IndexConfig(flat_max_items=limit), n_items=n).kind == want
    assert resolve_kind(IndexConfig(kind="hnsw", flat_max_items=limit), n_items=n).kind == "hnsw"  # only auto moves


def test_auto_index_is_exact_and_saved_as_flat(tmp_path) -> None:
    items = clustered_vectors(500, 8, seed=1).astype(np.float32)
    np.save(tmp_path / "v.npy", items)
    ix = build_index(items, cfg=IndexConfig(use_gpu="never"))
    assert ix.cfg.kind == "flat" and ix.exact
    save_index(ix, tmp_path / "ix", vectors_path=tmp_path / "v.npy")
    back = load_index(tmp_path / "ix", vectors_path=tmp_path / "v.npy")
    assert back.cfg.kind == "flat"
    q = queries_like(items, 7).astype(np.float32)
    np.testing.assert_array_equal(back.search(q, k=5)[1], np.argsort(-(q @ items.T), axis=1, kind="stable")[:, :5])


def test_shared_centroids_give_the_index_its_own_kmeans_gives() -> None:
    items = clustered_vectors(2000, 16, seed=2).astype(np.float32)
    cfg = IndexConfig(kind="ivf_flat", nlist=20, use_gpu="never")
    own = build_index(items, cfg=cfg)
    cents = coarse_centroids(own)
    assert cents is not None and cents.shape == (20, 16)
    fs = IndexConfig(kind="ivf_fastscan", nlist=20, use_gpu="never")
    shared, alone = build_index(items, cfg=fs, centroids=cents), build_index(items, cfg=fs)
    np.testing.assert_array_equal(coarse_centroids(shared), coarse_centroids(alone))
    q = queries_like(items, 30).astype(np.float32)
    for a, b in zip(shared.search(q, k=10), alone.search(q, k=10)):
        np.testing.assert_array_equal(a, b)
    assert coarse_centroids(build_index(items, cfg=IndexConfig(kind="hnsw"))) is None
    with pytest.raises(ValueError, match="do not fit"):
        build_index(items, cfg=IndexConfig(kind="ivf_flat", nlist=10), centroids=cents)
