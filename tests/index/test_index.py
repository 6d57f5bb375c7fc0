from __future__ import annotations

import json

import numpy as np
import pytest

from recsys.index import (IndexConfig, IndexMismatchError, MetricMismatchError, Seen, build_index, exact_topk,
                          load_index, save_index, tune)
from recsys.index.exact import _numpy_topk
from recsys.index.seen import drop_seen
from recsys.index.synthetic import clustered_vectors, queries_like


def assert_same_topk(items, q, ids, ref_s, ref_i):
    """Same as brute force up to float32 rounding: ids equal except for swaps of near-tied scores."""
    true = np.einsum("bkd,bd->bk", items[ids].astype(np.float64), q.astype(np.float64))
    np.testing.assert_allclose(true, ref_s, rtol=0, atol=2e-5)
    assert (ids == ref_i).mean() > 0.999


def brute(items: np.ndarray, q: np.ndarray, k: int, seen: list[list[int]] | None = None):
    sc = q.astype(np.float64) @ items.T.astype(np.float64)
    if seen is not None:
        for r, s in enumerate(seen):
            sc[r, s] = -np.inf
    ids = np.argsort(-sc, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(sc, ids, 1), ids


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    items = rng.standard_normal((10_003, 24)).astype(np.float32)  # 2 full item blocks of 4096 + a ragged one
    q = rng.standard_normal((300, 24)).astype(np.float32)  # > one query block
    seen = [rng.choice(len(items), rng.integers(0, 30), replace=False).tolist() for _ in range(len(q))]
    return items, q, seen


@pytest.mark.parametrize("engine", ["torch", "numpy"])
def test_exact_equals_brute_force_with_exclusion(data, engine):
    items, q, seen = data
    ref_s, ref_i = brute(items, q, 25, seen)
    # make the excluded items the best ones, so exclusion really matters
    for r, s in enumerate(seen):
        if s:
            assert ref_i[r, 0] not in s
    if engine == "torch":
        s, i = exact_topk(items, q, k=25, exclude=Seen.from_lists(seen), item_block=4096)
    else:
        s, i = _numpy_topk(items, q, k=25, exclude=Seen.from_lists(seen), item_block=4096)
    assert_same_topk(items, q, i, ref_s, ref_i)
    np.testing.assert_allclose(s, ref_s, rtol=0, atol=2e-5)


def test_exact_pads_when_catalogue_is_small():
    items = np.eye(4, dtype=np.float32)
    s, i = exact_topk(items, items[:2], k=6, exclude=Seen.from_lists([[0, 1], []]))
    assert i[0].tolist()[:2] == [2, 3] or set(i[0, :2]) == {2, 3}
    assert (i[0, 2:] == -1).all() and np.isneginf(s[0, 2:]).all()
    assert (i[1, :4] >= 0).all() and (i[1, 4:] == -1).all()


def test_flat_index_search_equals_brute_force_with_ids(data):
    items, q, seen = data
    items = items[:5000]
    ids = np.arange(5000, dtype=np.int64) * 3 + 7  # catalogue ids need not be row numbers
    seen_ids = [[int(ids[j]) for j in s if j < 5000] for s in seen]
    ix = build_index(items, cfg=IndexConfig(kind="flat"), ids=ids)
    s, i = ix.search(q, k=10, exclude=Seen.from_lists(seen_ids))
    ref_s, ref = brute(items, q, 10, [[j for j in s_ if j < 5000] for s_ in seen])
    assert_same_topk(items, q, (i - 7) // 3, ref_s, ref)


def test_drop_seen_keeps_order_and_pads():
    sc = np.array([[5, 4, 3, 2], [9, 8, 7, 6]], np.float32)
    ids = np.array([[10, 11, 12, -1], [1, 2, 3, 4]])
    s, i = drop_seen(sc, ids, Seen.from_lists([[11], [1, 3]]), k=3)
    assert i.tolist() == [[10, 12, -1], [2, 4, -1]]
    assert s[0, :2].tolist() == [5, 3] and np.isneginf(s[:, 2]).all()


def test_ann_search_excludes_seen(data):
    items, q, seen = data
    ix = build_index(items[:5000], cfg=IndexConfig(kind="hnsw", hnsw_m=8, ef_construction=40, k=10))
    seen = [[j for j in s if j < 5000] for s in seen]
    _, i = ix.search(q, k=10, exclude=Seen.from_lists(seen))
    assert not any(set(row) & set(s) for row, s in zip(i.tolist(), seen))


@pytest.fixture(scope="module")
def clustered():
    items = clustered_vectors(8000, 16, n_clusters=32, seed=1)
    return items, queries_like(items, 200, seed=2)


@pytest.mark.parametrize("kind", ["ivf_flat", "ivf_pq", "ivf_fastscan", "hnsw"])
def test_tuning_reaches_target_recall(clustered, kind):
    items, q = clustered
    ix = build_index(items, cfg=IndexConfig(kind=kind, k=10, pq_nbits=6, hnsw_m=16, ef_construction=80, refine_max=16))
    res = tune(ix, queries=q, k=10, target_recall=0.95)
    assert res.reached and res.recall >= 0.95, res
    assert res.value is not None and ix.params[res.param] == res.value


@pytest.mark.parametrize("kind", ["flat", "ivf_flat", "ivf_pq", "ivf_fastscan", "hnsw"])
def test_save_load_identical(tmp_path, clustered, kind):
    items, q = clustered
    items = items[:4000]
    vp = tmp_path / "item_vectors.npy"
    np.save(vp, items)
    ix = build_index(items, cfg=IndexConfig(kind=kind, metric="cosine", k=10, pq_nbits=5, hnsw_m=8))
    tune(ix, queries=q, k=10, target_recall=0.9)
    save_index(ix, tmp_path / "index", vectors_path=vp)
    ix2 = load_index(tmp_path / "index", vectors_path=vp, metric="cosine")
    ex = Seen.from_lists([[int(j)] for j in range(len(q))])
    a, b = ix.search(q, k=10, exclude=ex), ix2.search(q, k=10, exclude=ex)
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_array_equal(a[0], b[0])
    assert ix2.params == ix.params


@pytest.fixture()
def saved(tmp_path):
    items = clustered_vectors(1000, 16, n_clusters=8)
    vp = tmp_path / "item_vectors.npy"
    np.save(vp, items)
    save_index(build_index(items, cfg=IndexConfig(kind="flat")), tmp_path / "index", vectors_path=vp)
    return tmp_path, vp, items


def test_refuses_wrong_checksum(saved):
    root, vp, items = saved
    np.save(vp, items * 1.01)
    with pytest.raises(IndexMismatchError, match="different student export"):
        load_index(root / "index", vectors_path=vp)


def test_refuses_wrong_dim(saved):
    root, vp, _ = saved
    m = json.loads((root / "index" / "manifest.json").read_text())
    m["dim"] = 32
    (root / "index" / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(IndexMismatchError, match="32"):
        load_index(root / "index", vectors_path=vp)


def test_refuses_wrong_metric(saved):
    root, vp, _ = saved
    with pytest.raises(MetricMismatchError, match="index metric 'ip'.*'cosine'"):
        load_index(root / "index", vectors_path=vp, metric="cosine")
    with pytest.raises(MetricMismatchError):
        build_index(np.ones((10, 4), np.float32), cfg=IndexConfig(kind="flat", metric="ip"), model_metric="cosine")


def test_refuses_l2_index_over_ip_model(saved):
    import faiss

    from recsys.artifacts import file_sha256

    root, vp, items = saved
    l2 = faiss.IndexIDMap2(faiss.IndexFlatL2(items.shape[1]))
    l2.add_with_ids(items, np.arange(len(items), dtype=np.int64))
    faiss.write_index(l2, str(root / "index" / "index.faiss"))
    m = json.loads((root / "index" / "manifest.json").read_text())
    m["index_sha256"] = file_sha256(root / "index" / "index.faiss")
    (root / "index" / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(MetricMismatchError, match="'l2'"):
        load_index(root / "index", vectors_path=vp)


def test_refuses_altered_index_file(saved):
    root, vp, _ = saved
    with open(root / "index" / "index.faiss", "ab") as f:
        f.write(b"x")
    with pytest.raises(IndexMismatchError, match="checksum"):
        load_index(root / "index", vectors_path=vp)


@pytest.mark.gpu
def test_gpu_search_matches_cpu(clustered):
    from recsys.index._faiss import gpu_available

    if not gpu_available():
        pytest.skip("no CUDA / faiss GPU build")
    items, q = clustered
    for kind in ("flat", "ivf_flat"):
        cpu = build_index(items, cfg=IndexConfig(kind=kind, use_gpu="never", nprobe=64))
        gpu = build_index(items, cfg=IndexConfig(kind=kind, use_gpu="always", nprobe=64))
        ex = Seen.from_lists([[0, 1]] * len(q))
        for k in (10, 2100):  # 2100: over the GPU top-k limit -> CPU fallback
            a, b = cpu.search(q, k=k, exclude=ex), gpu.search(q, k=k, exclude=ex)
            assert np.mean(a[1][:, :10] == b[1][:, :10]) > 0.99


def test_train_threads_give_the_same_index_and_restore_faiss_threads(clustered):
    """IVF-PQ trained with one faiss thread (index.train_threads) answers as with faiss's default threads."""
    import dataclasses

    from recsys.index._faiss import import_faiss

    faiss = import_faiss()
    items, queries = clustered[0], clustered[1]
    before = faiss.omp_get_max_threads()
    cfg = IndexConfig(kind="ivf_pq", nlist=8, nprobe=4, pq_m=4, pq_nbits=4, use_gpu="never")
    one = build_index(items, cfg=cfg).search(queries, k=5)[1]
    assert faiss.omp_get_max_threads() == before
    every = build_index(items, cfg=dataclasses.replace(cfg, train_threads=0)).search(queries, k=5)[1]
    np.testing.assert_array_equal(one, every)
