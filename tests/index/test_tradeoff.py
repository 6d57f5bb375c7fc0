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
