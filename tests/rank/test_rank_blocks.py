"""Ranking at scale: test-list features and re-ranking in user blocks give exactly the one-frame result;
training on a seeded sample of users uses only their lists."""

from __future__ import annotations

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from stand_ins import write_rank_run

from recsys.data.tables import load_tables
from recsys.rank import RankConfig, build_features
from recsys.rank import stage as rank_stage
from recsys.rank.teacher import load_teacher


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return write_rank_run(tmp_path_factory.mktemp("run"), users=300, items=80, k=30)


def test_features_in_user_blocks_equal_one_frame(run_dir) -> None:
    t = load_tables(run_dir.layout)
    teacher = load_teacher(run_dir.root, space="auto")
    cands = pl.read_parquet(run_dir.root / "index" / "candidates_test.parquet")
    whole = build_features(cands, tables=t, split="test", teacher=teacher).sort("user", "item")
    blocks = rank_stage.user_blocks(cands, block_users=37)
    assert len(blocks) == -(-cands["user"].n_unique() // 37)
    assert sum(b.height for b in blocks) == cands.height
    parts = pl.concat([build_features(b, tables=t, split="test", teacher=teacher) for b in blocks])
    assert_frame_equal(parts.sort("user", "item"), whole)


def test_stage_reranks_in_blocks_as_in_one(run_dir, tmp_path) -> None:
    one = rank_stage.run(RankConfig(n_estimators=30), run_dir)
    rr_one = pl.read_parquet(run_dir.root / "rank" / "reranked_test.parquet")
    blocked = rank_stage.run(RankConfig(n_estimators=30, block_users=37), run_dir)
    rr_blocked = pl.read_parquet(run_dir.root / "rank" / "reranked_test.parquet")
    # same scores and ranks (equal scores keep the candidates' order, in a block as in the whole frame)
    assert_frame_equal(rr_blocked.sort("user", "rank"), rr_one.sort("user", "rank"))
    assert blocked["test_reranked"] == pytest.approx(one["test_reranked"], rel=1e-12)  # ties broken alike
    sampled = rank_stage.run(RankConfig(n_estimators=30, train_users=60), run_dir)
    assert sampled["valid_gate_users"] < one["valid_gate_users"]  # gate users are drawn from the 60
