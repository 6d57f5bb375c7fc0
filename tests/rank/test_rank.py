from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from stand_ins import write_rank_run

from recsys.artifacts import RunDir
from recsys.data.tables import load_tables
from recsys.metrics import evaluate_lists
from recsys.rank import RankConfig, build_features, feature_columns, label, load_model, rerank, train_ranker
from recsys.rank import stage as rank_stage
from recsys.rank.teacher import load_teacher
from recsys.rank.train import groups, with_positives


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return write_rank_run(tmp_path_factory.mktemp("run"), users=500, items=100, k=40)


def _frames(rd: RunDir):
    t = load_tables(rd.layout)
    teacher = load_teacher(rd.root, space="auto")
    c = {s: pl.read_parquet(rd.root / "index" / f"candidates_{s}.parquet") for s in ("valid", "test")}
    fv = label(build_features(c["valid"], tables=t, split="valid", teacher=teacher), t.valid)
    ft = build_features(c["test"], tables=t, split="test", teacher=teacher)
    return t, fv, ft


def test_features_are_point_in_time(run_dir):
    t, fv, ft = _frames(run_dir)
    n_train = t.train.group_by("user").len().rename({"len": "n"})
    n_test = t.history("test").group_by("user").len().rename({"len": "n"})
    for f, n in ((fv, n_train), (ft, n_test)):
        j = f.select("user", "hist_len").unique().join(n, on="user")
        assert (j["hist_len"] == j["n"]).all()
    # popularity at the valid point counts train events only
    pop = t.train.group_by("item").len().with_columns((pl.col("len") / t.train.height).alias("p"))
    j = fv.select("item", "pop_all").unique().join(pop, on="item")
    np.testing.assert_allclose(j["pop_all"].to_numpy(), j["p"].to_numpy())
    assert {"t_score", "t_rank", "brand_share", "cat_leaf_share", "days_since_last"} <= set(feature_columns(fv))


def test_query_groups_are_contiguous(run_dir):
    _, fv, _ = _frames(run_dir)
    f = with_positives(fv).sort("user", "s_rank")
    g = groups(f)
    assert g.sum() == f.height and len(g) == f["user"].n_unique()
    assert (f.group_by("user").agg(pl.col("label").max())["label"] == 1).all()


def test_ranker_beats_shuffled_baseline(run_dir):
    t, fv, ft = _frames(run_dir)
    cfg = RankConfig(n_estimators=100, holdout_fraction=0.0, min_data_in_leaf=10)
    feats = feature_columns(fv)
    real, _ = train_ranker(fv, cfg=cfg, features=feats)
    rng = np.random.default_rng(0)
    shuffled = fv.with_columns(*(pl.Series(c, fv[c].to_numpy()[rng.permutation(fv.height)]) for c in feats))
    base, _ = train_ranker(shuffled, cfg=cfg, features=feats)

    def ndcg(b) -> float:
        return evaluate_lists(lists=rerank(b, ft), targets=t.test, n_items=t.n_items).summary(ks=(10,))["ndcg@10"]

    assert ndcg(real) > ndcg(base) + 0.01, (ndcg(real), ndcg(base))


def test_stage_writes_text_model_and_reranked(run_dir):
    rep = rank_stage.run(RankConfig(n_estimators=50), run_dir)
    out = run_dir.root / "rank"
    text = (out / "model.txt").read_text()
    assert text.startswith("tree") and "objective=lambdarank" in text
    rr = pl.read_parquet(out / "reranked_test.parquet")
    assert rr.columns == ["user", "item", "score", "rank"]
    t = load_tables(run_dir.layout)
    assert set(rr["user"].unique()) == set(t.test["user"].unique())  # every test user kept
    imp = json.loads((out / "feature_importance.json").read_text())
    assert imp["importance_type"] == "gain" and set(imp["features"]) == set(rep["features"])
    t = load_tables(run_dir.layout)
    ct, _ = rank_stage.candidates(run_dir.root, RankConfig(n_estimators=50), tables=t, split="test")
    assert {"s_rank", "t_rank", "s_score", "t_score", "n_sources"} <= set(rep["features"])  # student + teacher
    assert ct["s_rank"].max() == ct["t_rank"].max() == 50  # absent from a list = the sentinel depth, not 0
    gate = rep["gate"]
    assert gate["served"] in {"union_rerank", "student_kd_ann", "teacher_adapted"}
    assert set(gate["valid"]) == {"union_rerank", "student_kd_ann", "teacher_adapted"}  # no ALS in this run
    assert run_dir.manifest()["served"]["row"] == gate["served"]
    again = rerank(load_model(layout=run_dir.layout), build_features(ct, tables=t, split="test"))
    np.testing.assert_allclose(again.sort("user", "item")["score"].to_numpy(),
                               rr.sort("user", "item")["score"].to_numpy(), rtol=1e-6)
    rec = run_dir.stage_record("rank")
    rank_stage.run(RankConfig(n_estimators=50), run_dir)
    assert run_dir.stage_record("rank")["finished_at"] == rec["finished_at"]
