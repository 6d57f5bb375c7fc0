"""IVF fast-scan PQ + exact refinement, the HNSW coarse quantizer, shortlist-factor tuning, the small-batch
exact engine and the resampler, on tiny data with hand-checkable expectations."""

from __future__ import annotations

import numpy as np
import pytest

from recsys.config import ConfigError, build
from recsys.index import IndexConfig, Seen, build_index, exact_topk, tune
from recsys.index.exact import SMALL_BATCH
from recsys.index.synthetic import clustered_vectors, queries_like, resample_like
from recsys.index.tune import recall_vs_exact, refine_ladder


@pytest.fixture(scope="module")
def tiny():
    items = clustered_vectors(600, 16, n_clusters=8, seed=3)
    return items, queries_like(items, 40, seed=4)


def brute(items: np.ndarray, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    sc = q.astype(np.float64) @ items.T.astype(np.float64)
    ids = np.argsort(-sc, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(sc, ids, 1), ids


@pytest.mark.parametrize("quantizer", ["flat", "hnsw"])
def test_fastscan_all_lists_and_full_shortlist_is_exact(tiny, quantizer):
    """Every list probed and a shortlist holding every item: the exact re-score must give exact top-10."""
    items, q = tiny
    ix = build_index(items, cfg=IndexConfig(kind="ivf_fastscan", quantizer=quantizer, nlist=4, k=10,
                                            refine_factor=60, use_gpu="never"))
    ix.set_params(nprobe=4)
    s, i = ix.search(q, k=10)
    ref_s, ref_i = brute(items, q, 10)
    assert recall_vs_exact(i, ref_i) == 1.0
    np.testing.assert_allclose(s, ref_s, atol=2e-5)


def test_fastscan_refined_scores_are_exact_and_ordered(tiny):
    """A short shortlist may miss items, but what it returns is re-scored exactly and sorted best first."""
    items, q = tiny
    ix = build_index(items, cfg=IndexConfig(kind="ivf_fastscan", nlist=8, k=10, refine_factor=2, use_gpu="never"))
    ix.set_params(nprobe=2)
    s, i = ix.search(q, k=10)
    assert (i >= 0).all()
    np.testing.assert_allclose(s, np.einsum("bkd,bd->bk", items[i], q), atol=2e-5)
    assert (np.diff(s, axis=1) <= 1e-6).all()


def test_unrefined_fastscan_scores_are_approximate(tiny):
    items, q = tiny
    ix = build_index(items, cfg=IndexConfig(kind="ivf_fastscan", nlist=4, k=10, refine_factor=0, use_gpu="never"))
    ix.set_params(nprobe=4)
    s, i = ix.search(q, k=10)
    assert "k_factor" not in ix.params
    assert not np.allclose(s, np.einsum("bkd,bd->bk", items[i], q), atol=1e-4)  # 4-bit codes, no re-score


def test_hnsw_quantizer_beam_follows_nprobe(tiny):
    import faiss

    ix = build_index(tiny[0], cfg=IndexConfig(kind="ivf_flat", quantizer="hnsw", nlist=8, use_gpu="never"))
    quant = faiss.downcast_index(faiss.extract_index_ivf(ix.index).quantizer)
    assert isinstance(quant, faiss.IndexHNSWFlat) and quant.ntotal == 8
    ix.set_params(nprobe=5)
    assert quant.hnsw.efSearch == 64
    ix.set_params(nprobe=40)
    assert quant.hnsw.efSearch == 80


def test_refine_ladder():
    assert refine_ladder(refine_factor=4, refine_max=0) == [4]
    assert refine_ladder(refine_factor=0, refine_max=32) == []
    assert refine_ladder(refine_factor=16, refine_max=32) == [1, 2, 4, 8, 16, 32]
    assert refine_ladder(refine_factor=3, refine_max=12) == [1, 2, 4, 8, 12]


def test_tune_picks_a_shortlist_factor_reaching_the_target():
    items = clustered_vectors(3000, 16, n_clusters=32, seed=1)
    q = queries_like(items, 100, seed=2)
    ix = build_index(items, cfg=IndexConfig(kind="ivf_fastscan", k=10, refine_max=8, use_gpu="never"))
    res = tune(ix, queries=q, k=10, target_recall=0.95)
    assert res.reached and res.k_factor in res.by_k_factor and res.by_k_factor[res.k_factor]["recall"] >= 0.95
    assert ix.params["k_factor"] == res.k_factor and ix.params["nprobe"] == res.value
    assert max(res.by_k_factor) == 8  # the largest shortlist is always tried first
    assert recall_vs_exact(ix.search(q, k=10)[1], ix.search(q, k=10, exact=True)[1]) == pytest.approx(res.recall)


@pytest.mark.parametrize("bad", [{"refine_max": -1}, {"quantizer": "ivf"}, {"train_per_list": 10},
                                 {"kmeans_iters": 0}, {"kind": "scann"}])
def test_config_refuses_out_of_range(bad):
    with pytest.raises(ConfigError):
        build(IndexConfig, bad)


def test_nlist_above_item_count_is_refused(tiny):
    with pytest.raises(ValueError, match="nlist"):
        build_index(tiny[0][:50], cfg=IndexConfig(kind="ivf_fastscan", nlist=64, use_gpu="never"))


@pytest.mark.parametrize("b", [1, SMALL_BATCH, SMALL_BATCH + 1])
def test_small_batch_exact_equals_brute_force_with_exclusion(tiny, b):
    items, q = tiny
    seen = [[int(j) for j in brute(items, q[r:r + 1], 3)[1][0]] for r in range(b)]  # exclude each one's top 3
    s, i = exact_topk(items, q[:b], k=5, exclude=Seen.from_lists(seen))
    sc = q[:b].astype(np.float64) @ items.T.astype(np.float64)
    for r in range(b):
        sc[r, seen[r]] = -np.inf
    ref = np.argsort(-sc, axis=1, kind="stable")[:, :5]
    np.testing.assert_array_equal(i, ref)
    np.testing.assert_allclose(s, np.take_along_axis(sc, ref, 1), atol=2e-5)


def test_resample_like_keeps_norms_and_subspace():
    rng = np.random.default_rng(0)
    basis = rng.standard_normal((3, 12))  # real vectors of rank 3 in 12 dims
    real = (rng.standard_normal((50, 3)) @ basis).astype(np.float32)
    out = resample_like(real, 400, noise=0.5, seed=1)
    assert out.shape == (400, 12) and out.dtype == np.float32
    norms = np.linalg.norm(real, axis=1)
    got = np.linalg.norm(out, axis=1)
    assert np.abs(got[:, None] - norms[None, :]).min(1).max() < 1e-4  # each row has a real row's norm
    q, _ = np.linalg.qr(real.T.astype(np.float64))  # orthonormal basis of the real rows' span
    resid = out - (out @ q) @ q.T
    assert np.abs(resid).max() < 1e-4  # the noise stays in the real vectors' subspace
    assert len(np.unique(out.round(4), axis=0)) == 400  # copies are near, never duplicates
