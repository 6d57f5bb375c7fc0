from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from recsys.artifacts import RunDir
from recsys.data import stage as data_stage
from recsys.data.config import DataConfig
from recsys.data.tables import load_tables
from recsys.index import IndexConfig, MetricMismatchError, load_index
from recsys.index import stage as index_stage
from recsys.contracts import student as S
from stand_ins import record, write_stand_in_run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    rd = RunDir(tmp_path_factory.mktemp("run"))
    data_stage.run(DataConfig(source="synthetic", synthetic_users=150, synthetic_items=80), rd)
    write_stand_in_run(rd.root)
    return rd


def test_stage_writes_candidates_and_skips_when_fresh(run_dir):
    cfg = IndexConfig(kind="hnsw", k=20)
    rep = index_stage.run(cfg, run_dir)
    assert rep["ann_vs_exact_recall@10"] >= 0.95 and rep["tuned_recall_at_k"] >= 0.95
    t = load_tables(run_dir.layout)
    for split in ("valid", "test"):
        c = pl.read_parquet(run_dir.root / "index" / f"candidates_{split}.parquet")
        assert c.columns == ["user", "item", "score", "rank"]
        assert set(c["user"].unique()) == set(t.targets(split)["user"].unique())
        assert c.group_by("user").len()["len"].max() == 20
        leaked = c.join(t.history(split).select("user", "item"), on=["user", "item"])
        assert leaked.height == 0, "history items must be excluded"
        assert c.sort("user", "rank").group_by("user", maintain_order=True).agg(
            pl.col("score").diff().max())["score"].max() <= 1e-6  # scores descend with rank
    rec = run_dir.stage_record("index")
    assert rec["report"]["test_ann"]["recall@20"] > 0
    index_stage.run(cfg, run_dir)  # fresh: skipped (no error, same record)
    assert run_dir.stage_record("index")["finished_at"] == rec["finished_at"]
    ix = load_index(run_dir.root / "index", vectors_path=run_dir.root / "student/student_kd/item_vectors.npy")
    assert ix.count == t.n_items


def _rewrite_meta(run_dir, meta):
    """A student export whose meta says another metric, recorded as the student stage would (not tampering)."""
    lay = run_dir.layout
    outs = [*S.paths(lay, variant="student_kd")[:3], S.write_meta(layout=lay, variant="student_kd", meta=meta)]
    record(run_dir, S.stage_of("student_kd"), outs)


def test_stage_refuses_metric_mismatch(run_dir):
    meta = run_dir.root / "student/student_kd/meta.json"
    m = json.loads(meta.read_text())
    try:
        _rewrite_meta(run_dir, {**m, "metric": "cosine"})
        with pytest.raises(MetricMismatchError, match="cosine"):
            index_stage.run(IndexConfig(kind="flat", k=10), run_dir)
    finally:
        _rewrite_meta(run_dir, m)
    assert np.load(run_dir.root / "student/student_kd/item_vectors.npy").shape[1] == m["dim"]
