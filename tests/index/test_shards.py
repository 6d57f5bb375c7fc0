"""Sharded FAISS search returns exactly what one flat index over the whole catalogue returns."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from recsys.index.shards import (
    build_ivf_ondisk,
    build_shards,
    load_ondisk,
    merge_topk,
    search,
    shard_bounds,
    shard_group,
)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    items = rng.standard_normal((2003, 16)).astype(np.float32)  # odd size: the last shard is short
    queries = rng.standard_normal((37, 16)).astype(np.float32)
    return items, queries


def _flat(items: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    idx = faiss.IndexFlatIP(items.shape[1])
    idx.add(items)
    return idx.search(queries, k)


def test_shard_bounds_cover_every_row() -> None:
    b = shard_bounds(10, 3)
    assert b == [(0, 4), (4, 8), (8, 10)]
    assert shard_bounds(0, 4) == [(0, 0)]


@pytest.mark.parametrize(("n_shards", "ngpu"), [(1, 0), (3, 0), (8, 0), (3, -1)])
def test_index_shards_equal_single_flat(data: tuple[np.ndarray, np.ndarray], n_shards: int,
                                        ngpu: int) -> None:
    items, queries = data  # ngpu=-1: every GPU when faiss has them, the same CPU shards otherwise
    group = shard_group(build_shards(items, n_shards=n_shards), threaded=True, ngpu=ngpu)
    assert group.ntotal == len(items)
    s, i = search(group, queries, k=10)
    s0, i0 = _flat(items, queries, 10)
    np.testing.assert_array_equal(i, i0)
    np.testing.assert_allclose(s, s0, rtol=1e-5, atol=1e-5)


def test_scatter_gather_merge_equals_single_flat(data: tuple[np.ndarray, np.ndarray]) -> None:
    items, queries = data
    parts = [search(sh, queries, k=10) for sh in build_shards(items, n_shards=4)]  # one "host" per shard
    s, i = merge_topk(parts, k=10)
    s0, i0 = _flat(items, queries, 10)
    np.testing.assert_array_equal(i, i0)
    np.testing.assert_allclose(s, s0, rtol=1e-5, atol=1e-5)


def test_merge_topk_pads_when_shards_hold_fewer_than_k() -> None:
    parts = [
        (np.array([[0.9, -np.inf]], np.float32), np.array([[7, -1]])),
        (np.array([[0.5]], np.float32), np.array([[3]])),
    ]
    s, i = merge_topk(parts, k=4)
    assert i.tolist() == [[7, 3, -1, -1]]
    assert s[0, 0] == pytest.approx(0.9) and not np.isfinite(s[0, 2:]).any()


def test_ivf_ondisk_merge_with_full_probe_equals_flat(tmp_path, data: tuple[np.ndarray, np.ndarray]) -> None:
    items, queries = data
    path = build_ivf_ondisk(items, out_dir=tmp_path, nlist=8, n_shards=3)
    assert (tmp_path / "merged.ivfdata").exists()
    idx = load_ondisk(path, nprobe=8)  # probing every list makes IVF-Flat exact
    assert idx.ntotal == len(items)
    s, i = search(idx, queries, k=10)
    s0, i0 = _flat(items, queries, 10)
    np.testing.assert_array_equal(i, i0)
    np.testing.assert_allclose(s, s0, rtol=1e-4, atol=1e-4)
