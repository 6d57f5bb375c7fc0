"""The split feature path (``feature_context`` once + ``candidate_features`` per request) gives exactly the frame
of the one-shot implementation it replaced (kept below, verbatim, as the reference), on a tiny literal case and
on a synthetic run for a subset of users (tests/test_api.py checks the service's ranked answers against the
stage's re-ranked lists)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from stand_ins import write_rank_run

from recsys.data.tables import Split, Tables, load_tables
from recsys.rank import features as F
from recsys.rank.features import candidate_features, feature_context
from recsys.rank.teacher import load_teacher


def reference_features(cands: pl.DataFrame, *, tables: Tables, split: Split, teacher: F.Teacher | None = None,
                       recent_days: float = 30.0) -> pl.DataFrame:
    """``build_features`` before the split (commit a4f16ad): the whole history re-aggregated on every call."""
    hist = tables.history(split).select(pl.col("user").cast(pl.Int32), pl.col("item").cast(pl.Int32), "timestamp")
    t_point = int(hist["timestamp"].max()) if hist.height else 0
    n_events = max(1, hist.height)
    items = F.item_frame(tables)
    pop = hist.group_by("item").agg(
        (pl.len() / n_events).alias("pop_all"),
        ((pl.col("timestamp") >= t_point - recent_days * F.DAY).sum() / n_events).alias("pop_recent"),
        ((t_point - pl.col("timestamp").max()) / F.DAY).alias("item_days_since_last"),
    )
    hi = hist.join(items, on="item", how="left")
    user = hi.group_by("user").agg(
        pl.len().alias("hist_len"),
        ((t_point - pl.col("timestamp").max()) / F.DAY).alias("days_since_last"),
        pl.col("price").mean().alias("user_mean_price"),
    )
    brand = hi.group_by("user", "brand").agg(pl.len().alias("n_brand"))
    leaf = hi.group_by("user", "cat_leaf").agg(pl.len().alias("n_leaf"))
    cat2 = hi.group_by("user", "cat2").agg(pl.len().alias("n_cat2"))
    last_item = hi.sort("timestamp").group_by("user").agg(pl.col("cat_leaf").last().alias("last_leaf"),
                                                          pl.col("brand").last().alias("last_brand"))
    f = F._retrieval_columns(cands)
    f = (f.join(items, on="item", how="left")
         .join(pop, on="item", how="left")
         .join(user, on="user", how="left")
         .join(brand, on=["user", "brand"], how="left")
         .join(leaf, on=["user", "cat_leaf"], how="left")
         .join(cat2, on=["user", "cat2"], how="left")
         .join(last_item, on="user", how="left"))
    f = f.with_columns(
        pl.col("pop_all").fill_null(0.0), pl.col("pop_recent").fill_null(0.0),
        pl.col("hist_len").fill_null(0).cast(pl.Int32),
        (pl.col("n_brand").fill_null(0) / pl.col("hist_len").clip(1, None)).alias("brand_share"),
        (pl.col("n_leaf").fill_null(0) / pl.col("hist_len").clip(1, None)).alias("cat_leaf_share"),
        (pl.col("n_cat2").fill_null(0) / pl.col("hist_len").clip(1, None)).alias("cat2_share"),
        (pl.col("cat_leaf") == pl.col("last_leaf")).cast(pl.Int8).fill_null(0).alias("same_leaf_as_last"),
        ((pl.col("brand") == pl.col("last_brand")) & (pl.col("brand") != "")).cast(pl.Int8).fill_null(0)
        .alias("same_brand_as_last"),
        (pl.col("price") / pl.col("user_mean_price")).alias("price_ratio"),
    ).drop("brand", "cat_leaf", "cat2", "n_brand", "n_leaf", "n_cat2", "last_leaf", "last_brand")
    if teacher is not None and "t_score" not in f.columns:
        f = F._teacher_features(f, teacher, split)
    return f.sort("user", "s_rank", "item")


DAY = 86400
ITEMS = pl.DataFrame({"item": [0, 1, 2, 3], "item_id": ["a", "b", "c", "d"],
                      "brand": ["x", "x", None, "y"],
                      "categories": [["B", "Face", "Cream"], ["B", "Face"], ["B"], []],
                      "price": [10.0, 20.0, None, 5.0]})
USERS = pl.DataFrame({"user": [0, 1, 2], "user_id": ["u0", "u1", "u2"]})
EV = {"user": pl.Int32, "item": pl.Int32, "timestamp": pl.Int64, "pos": pl.Int32}
TRAIN = pl.DataFrame({"user": [0, 0, 0, 1], "item": [0, 1, 3, 3], "timestamp": [0, 40 * DAY, 50 * DAY, 45 * DAY],
                      "pos": [0, 1, 2, 0]}, schema=EV)
VALID = pl.DataFrame({"user": [0, 1], "item": [2, 0], "timestamp": [60 * DAY, 61 * DAY], "pos": [3, 1]}, schema=EV)
TEST = pl.DataFrame({"user": [0], "item": [3], "timestamp": [70 * DAY], "pos": [4]}, schema=EV)
TABLES = Tables(items=ITEMS, users=USERS, train=TRAIN, valid=VALID, test=TEST)
# user 2 has no history at all; item 2 has no brand and a one-level path; item 3 no categories
CANDS = pl.DataFrame({"user": [0, 0, 1, 1, 2], "item": [2, 3, 1, 2, 0], "score": [0.9, 0.5, 0.7, 0.2, 0.1],
                      "rank": [0, 1, 0, 1, 0]})


@pytest.mark.parametrize("split", ["valid", "test"])
def test_literal_case_equals_the_one_shot_frame(split) -> None:
    ctx = feature_context(tables=TABLES, split=split, recent_days=15.0)
    new = candidate_features(CANDS, ctx=ctx)
    assert_frame_equal(new, reference_features(CANDS, tables=TABLES, split=split, recent_days=15.0))
    # and per request: one user at a time against the same context gives that user's rows
    for u in range(3):
        one = candidate_features(CANDS.filter(pl.col("user") == u), ctx=ctx)
        assert_frame_equal(one, new.filter(pl.col("user") == u))


def test_literal_case_by_hand() -> None:
    """valid point: history = train (4 events, t_point = day 50); user 0 saw a(x, Cream) b(x, Face) d(y, ''))."""
    f = candidate_features(CANDS, ctx=feature_context(tables=TABLES, split="valid", recent_days=15.0))
    r = {(row["user"], row["item"]): row for row in f.iter_rows(named=True)}
    u0d = r[(0, 3)]  # user 0, item d: seen once by 0 and once by 1 (day 45 and 50: both recent)
    assert u0d["hist_len"] == 3 and u0d["pop_all"] == 0.5 and u0d["pop_recent"] == 0.5
    assert u0d["brand_share"] == pytest.approx(1 / 3) and u0d["same_brand_as_last"] == 1
    assert u0d["price_ratio"] == pytest.approx(5.0 / (35.0 / 3))
    u0c = r[(0, 2)]  # item c: never seen, no brand (so never "same brand"), leaf "B", cat2 falls back to the leaf
    assert u0c["pop_all"] == 0.0 and u0c["same_brand_as_last"] == 0 and u0c["cat2_share"] == 0.0
    u2 = r[(2, 0)]  # no history: the shares read hist_len before its fill, so they stay missing for LightGBM
    assert u2["hist_len"] == 0 and u2["brand_share"] is None and u2["days_since_last"] is None
    assert f.columns[:4] == ["user", "item", "s_score", "s_rank"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return write_rank_run(tmp_path_factory.mktemp("run"), users=300, items=80, k=30)


@pytest.mark.parametrize("split", ["valid", "test"])
def test_synthetic_run_subset_equals_the_one_shot_frame(run_dir, split) -> None:
    t = load_tables(run_dir.layout)
    teacher = load_teacher(run_dir.root, space="auto")
    cands = pl.read_parquet(run_dir.root / "index" / f"candidates_{split}.parquet")
    ctx = feature_context(tables=t, split=split)
    whole = reference_features(cands, tables=t, split=split, teacher=teacher)
    assert_frame_equal(candidate_features(cands, ctx=ctx, teacher=teacher), whole)
    users = np.random.default_rng(0).choice(cands["user"].unique().to_numpy(), size=7, replace=False)
    sub = cands.filter(pl.col("user").is_in(users.tolist()))
    assert_frame_equal(candidate_features(sub, ctx=ctx, teacher=teacher),
                       reference_features(sub, tables=t, split=split, teacher=teacher))
    assert_frame_equal(candidate_features(sub, ctx=ctx, teacher=teacher),
                       whole.filter(pl.col("user").is_in(users.tolist())))
    assert ctx.nbytes() > 0


def test_of_users_slices_sorted_frames() -> None:
    frame = pl.DataFrame({"user": [0, 0, 2, 3, 3, 3], "v": [1, 2, 3, 4, 5, 6]},
                         schema={"user": pl.Int32, "v": pl.Int64})
    assert F._of_users(frame, np.array([0, 3], np.int32))["v"].to_list() == [1, 2, 4, 5, 6]
    assert F._of_users(frame, np.array([1, 2, 9], np.int32))["v"].to_list() == [3]
    assert F._of_users(frame, np.array([], np.int32)).height == 0
