"""The recall/QPS sweep reuses the stage's own index for its kind and leaves the other kinds as before."""

from __future__ import annotations

import numpy as np
import pytest

from recsys.index import IndexConfig, tradeoff
from recsys.index.build import build_index
from recsys.index.synthetic import clustered_vectors, queries_like
from recsys.index.tradeoff import sweep


def test_sweep_reuses_the_built_index_of_the_configured_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    # flat and hnsw only: training IVF-PQ codebooks takes minutes on 2 busy cores, and adds nothing here
    monkeypatch.setattr(tradeoff, "SWEEPS", {k: tradeoff.SWEEPS[k] for k in ("flat", "hnsw")})
    SWEEPS = tradeoff.SWEEPS
    items = clustered_vectors(300, 16, seed=0).astype(np.float32)
    queries = queries_like(items, 40).astype(np.float32)
    cfg = IndexConfig(kind="hnsw", use_gpu="never")
    own = build_index(items, cfg=cfg)
    points = sweep(items, queries=queries, cfg=cfg, model_metric="ip", built=(own, 123.0))
    by_kind = {p["kind"] for p in points}
    assert by_kind == set(SWEEPS)
    hnsw = [p for p in points if p["kind"] == "hnsw"]
    assert [p["value"] for p in hnsw] == list(SWEEPS["hnsw"][1]) and {p["build_seconds"] for p in hnsw} == {123.0}
    assert own.params["ef_search"] == SWEEPS["hnsw"][1][-1]  # swept on the very index it was given
    assert all(p["build_seconds"] != 123.0 for p in points if p["kind"] != "hnsw")  # the others were built
    flat = next(p for p in points if p["kind"] == "flat")
    assert flat["recall"] == 1.0


def test_recall_vs_exact_equals_the_per_row_set_intersection() -> None:
    from recsys.index.tune import recall_vs_exact

    rng = np.random.default_rng(0)
    ann, exact = rng.integers(-1, 30, size=(200, 8)), rng.integers(-1, 30, size=(200, 8))  # repeats, padding
    want = np.mean([len(np.intersect1d(a[a >= 0], e[e >= 0])) / max(1, int((e >= 0).sum()))
                    for a, e in zip(ann, exact)])
    assert recall_vs_exact(ann, exact) == pytest.approx(want, abs=1e-12)
    assert recall_vs_exact(np.array([[3, 1, -1]]), np.array([[1, 2, 3]])) == pytest.approx(2 / 3)
    assert recall_vs_exact(np.zeros((0, 5), np.int64), np.zeros((0, 5), np.int64)) == 1.0


def test_prebuilt_kinds_give_the_same_points_as_building_in_the_sweep(monkeypatch: pytest.MonkeyPatch) -> None:
    """``build_kinds`` (what the stage runs in a background thread) skips the stage's own kind; sweeping its
    indexes gives the same recalls as the sweep building them itself, and their build seconds."""
    monkeypatch.setattr(tradeoff, "SWEEPS", {k: tradeoff.SWEEPS[k] for k in ("flat", "ivf_flat", "hnsw")})
    items = clustered_vectors(400, 16, seed=1).astype(np.float32)
    queries = queries_like(items, 30).astype(np.float32)
    cfg = IndexConfig(kind="hnsw", use_gpu="never")
    pre = tradeoff.build_kinds(items, cfg=cfg, model_metric="ip")
    assert set(pre) == {"flat", "ivf_flat"}
    seconds = {kind: s for kind, (_, s) in pre.items()}
    a = sweep(items, queries=queries, cfg=cfg, model_metric="ip", built=(build_index(items, cfg=cfg), 1.0),
              prebuilt=pre)
    b = sweep(items, queries=queries, cfg=cfg, model_metric="ip", built=(build_index(items, cfg=cfg), 1.0))
    assert [(p["kind"], p["value"], p["recall"]) for p in a] == [(p["kind"], p["value"], p["recall"]) for p in b]
    assert {p["kind"]: p["build_seconds"] for p in a if p["kind"] != "hnsw"} == \
        {k: round(s, 3) for k, s in seconds.items()}
