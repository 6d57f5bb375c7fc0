from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from recsys.api import Recommender
from recsys.artifacts import RunDir
from recsys.data import stage as data_stage
from recsys.data.config import DataConfig
from recsys.data.tables import load_tables
from recsys.index import IndexConfig, IndexMismatchError
from recsys.index import stage as index_stage
from recsys.contracts import ArtifactError
from recsys.contracts import student as S
from recsys.rank import RankConfig
from recsys.rank import stage as rank_stage
from stand_ins import record, write_stand_in_run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    rd = RunDir(tmp_path_factory.mktemp("run"))
    data_stage.run(DataConfig(source="synthetic", synthetic_users=120, synthetic_items=60), rd)
    write_stand_in_run(rd.root)
    index_stage.run(IndexConfig(kind="hnsw", k=30), rd)
    return rd


def test_recommend_retrieval_only(run_dir):
    rec = Recommender.load(run_dir.root, use_ranker=False)
    t = load_tables(run_dir.layout)
    users = t.users["user_id"].to_list()[:3][::-1]
    out = rec.recommend(users, k=5)
    assert out.columns == ["user_id", "item_id", "score", "rank"]
    assert out["user_id"].unique(maintain_order=True).to_list() == users
    assert out.group_by("user_id").len()["len"].to_list() == [5, 5, 5]
    hist = t.history("test").join(t.users, on="user").join(t.items.select("item", "item_id"), on="item")
    assert out.join(hist.select("user_id", "item_id"), on=["user_id", "item_id"]).height == 0
    # same as the index stage's candidates at the test point, for users with a test target
    u = t.test["user"][0]
    uid = t.users.filter(pl.col("user") == u)["user_id"][0]
    cands = pl.read_parquet(run_dir.root / "index/candidates_test.parquet").filter(pl.col("user") == u, pl.col("rank") < 5)
    ids = t.items.join(cands, on="item").sort("rank")["item_id"].to_list()
    assert rec.recommend([uid], k=5)["item_id"].to_list() == ids
    assert rec.recommend(users[:1], k=5, exclude_seen=False).height == 5


def test_unknown_users(run_dir):
    rec = Recommender.load(run_dir.root, use_ranker=False)
    known = load_tables(run_dir.layout).users["user_id"][0]
    with pytest.raises(KeyError, match="nobody"):
        rec.recommend([known, "nobody"], k=3)
    out = rec.recommend([known, "nobody"], k=3, on_unknown="popular")
    assert out.filter(pl.col("fallback"))["user_id"].unique().to_list() == ["nobody"]
    assert out.filter(~pl.col("fallback")).height == 3


def test_similar_items(run_dir):
    rec = Recommender.load(run_dir.root, use_ranker=False)
    items = load_tables(run_dir.layout).items["item_id"].to_list()[:2]
    out = rec.similar_items(items, k=4)
    assert out.columns == ["item_id", "similar_item_id", "score", "rank"] and out.height == 8
    assert not (out["item_id"] == out["similar_item_id"]).any()
    assert (out.group_by("item_id").agg(pl.col("score").diff().max())["score"] <= 1e-6).all()
    with pytest.raises(KeyError, match="nope"):
        rec.similar_items(["nope"])


def test_recommend_with_ranker_matches_reranked_test(run_dir):
    rank_stage.run(RankConfig(n_estimators=30), run_dir)
    rec = Recommender.load(run_dir.root)
    assert rec.ranker is not None
    t = load_tables(run_dir.layout)
    rr = pl.read_parquet(run_dir.root / "rank/reranked_test.parquet")
    u = rr["user"][0]
    uid = t.users.filter(pl.col("user") == u)["user_id"][0]
    want = t.items.join(rr.filter(pl.col("user") == u, pl.col("rank") < 5), on="item").sort("rank")["item_id"]
    assert rec.recommend([uid], k=5)["item_id"].to_list() == want.to_list()


def test_load_refuses_index_of_other_vectors(run_dir, tmp_path):
    import shutil

    other = tmp_path / "run"
    shutil.copytree(run_dir.root, other)
    p = other / "student/student_kd/item_vectors.npy"
    np.save(p, np.load(p) + 1.0)  # by hand: refused by its digest before the index is even looked at
    with pytest.raises(ArtifactError, match="item_vectors.npy: sha256 differs"):
        Recommender.load(other)
    # a properly recorded re-export that the index was not built from: refused by the index manifest
    rd, lay = RunDir(other), RunDir(other).layout
    outs = S.write_vectors(layout=lay, variant="student_kd", items=np.load(p),
                           users_valid=np.load(lay.user_vectors("student_kd", "valid")),
                           users_test=np.load(lay.user_vectors("student_kd", "test")))
    record(rd, S.stage_of("student_kd"), [*outs, lay.student_meta("student_kd")])
    with pytest.raises(IndexMismatchError, match="different student export"):
        Recommender.load(other)
