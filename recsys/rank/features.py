"""Candidate features, built with polars joins from the tables and the earlier stages' files.

Point-in-time rule: features for the ``valid`` point see only ``Tables.history("valid")`` (train); for
``test`` they see train + valid. Popularity is a *share* of the events visible at that point, so the
two points (different history sizes) are on the same scale.

Two halves: ``feature_context`` (everything that depends only on the history: item popularity, per-user
aggregates, user x brand / leaf / cat2 counts, the last item) is computed once per prediction point;
``candidate_features`` joins a candidate frame against it. The rank stage and the service share both.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import polars as pl

from recsys.data.tables import Split, Tables

DAY = 86400


@dataclasses.dataclass(frozen=True)
class Teacher:
    """Teacher embeddings in one space: items (N, D) and users at each point (U, D); top-K lists per point."""

    items: np.ndarray
    users: dict[str, np.ndarray]  # "valid" / "test" -> (U, D)
    topk: dict[str, pl.DataFrame]  # "valid" / "test" -> user, item, rank


def _leaf(col: str = "categories") -> pl.Expr:
    return pl.col(col).list.last().fill_null("")


def item_frame(tables: Tables) -> pl.DataFrame:
    return tables.items.select(
        pl.col("item").cast(pl.Int32), pl.col("brand").fill_null("").alias("brand"), _leaf().alias("cat_leaf"),
        pl.col("categories").list.get(1, null_on_oob=True).fill_null(_leaf()).alias("cat2"),
        pl.col("price").cast(pl.Float64).alias("price"),
    )


@dataclasses.dataclass(frozen=True)
class FeatureContext:
    """Everything the candidate features read that depends only on the history at one prediction point.

    Built once per (tables, split) by ``feature_context``: once per split by the rank stage, once per loaded
    version by ``recsys.api.Recommender`` (so the service's features are the stage's, row for row). The
    user-keyed frames are sorted by user, so a request for a few users slices them instead of scanning.
    """

    split: Split
    recent_days: float
    items: pl.DataFrame  # item, brand, cat_leaf, cat2, price (the catalogue)
    pop: pl.DataFrame  # item, pop_all, pop_recent, item_days_since_last (items seen at this point)
    user: pl.DataFrame  # user, hist_len, days_since_last, user_mean_price
    brand: pl.DataFrame  # user, brand, n_brand
    leaf: pl.DataFrame  # user, cat_leaf, n_leaf
    cat2: pl.DataFrame  # user, cat2, n_cat2
    last_item: pl.DataFrame  # user, last_leaf, last_brand

    def nbytes(self) -> int:
        """Estimated memory of the frames (polars ``estimated_size``)."""
        return sum(f.estimated_size() for f in (self.items, self.pop, self.user, self.brand, self.leaf,
                                                self.cat2, self.last_item))


def feature_context(*, tables: Tables, split: Split, recent_days: float = 30.0) -> FeatureContext:
    """The history side of the features at ``split`` (history = ``tables.history(split)``), computed once."""
    hist = tables.history(split).select(pl.col("user").cast(pl.Int32), pl.col("item").cast(pl.Int32), "timestamp")
    t_point = int(hist["timestamp"].max()) if hist.height else 0
    n_events = max(1, hist.height)
    items = item_frame(tables)
    pop = hist.group_by("item").agg(
        (pl.len() / n_events).alias("pop_all"),
        ((pl.col("timestamp") >= t_point - recent_days * DAY).sum() / n_events).alias("pop_recent"),
        ((t_point - pl.col("timestamp").max()) / DAY).alias("item_days_since_last"),
    )
    hi = hist.join(items, on="item", how="left")
    user = hi.group_by("user").agg(
        pl.len().alias("hist_len"),
        ((t_point - pl.col("timestamp").max()) / DAY).alias("days_since_last"),
        pl.col("price").mean().alias("user_mean_price"),
    )
    brand = hi.group_by("user", "brand").agg(pl.len().alias("n_brand"))
    leaf = hi.group_by("user", "cat_leaf").agg(pl.len().alias("n_leaf"))
    cat2 = hi.group_by("user", "cat2").agg(pl.len().alias("n_cat2"))
    last_item = hi.sort("timestamp").group_by("user").agg(pl.col("cat_leaf").last().alias("last_leaf"),
                                                          pl.col("brand").last().alias("last_brand"))
    return FeatureContext(split=split, recent_days=recent_days, items=items, pop=pop,
                          user=user.sort("user"), brand=brand.sort("user"), leaf=leaf.sort("user"),
                          cat2=cat2.sort("user"), last_item=last_item.sort("user"))


def _of_users(frame: pl.DataFrame, users: np.ndarray) -> pl.DataFrame:
    """The rows of ``frame`` (sorted by user) whose user is in ``users`` (sorted, unique): slices, no scan."""
    col = frame["user"].to_numpy()
    lo, hi = np.searchsorted(col, users, "left"), np.searchsorted(col, users, "right")
    keep = lo < hi
    if not keep.any():
        return frame.clear()
    lo, hi = lo[keep], hi[keep]
    rows = np.repeat(hi - np.cumsum(hi - lo), hi - lo) + np.arange(int((hi - lo).sum()))
    return frame[rows]


def candidate_features(cands: pl.DataFrame, *, ctx: FeatureContext,
                       teacher: Teacher | None = None) -> pl.DataFrame:
    """One row per candidate: (user, item, <features>), sorted by user then student rank.

    The one feature path: the rank stage (training, gate, test re-ranking) and the service both call it, with a
    ``FeatureContext`` built once; only the candidates' users' rows of the user-keyed frames are joined.

    Args:
        cands: user, item, score, rank (the student's top-K at ``ctx.split``, history excluded), or the union of
            every retriever's top-K from ``candidates.union``.
        ctx: ``feature_context`` at the prediction point of ``cands``.
    """
    f = _retrieval_columns(cands)
    users = np.unique(f["user"].to_numpy())
    f = (f.join(ctx.items, on="item", how="left")
         .join(ctx.pop, on="item", how="left")
         .join(_of_users(ctx.user, users), on="user", how="left")
         .join(_of_users(ctx.brand, users), on=["user", "brand"], how="left")
         .join(_of_users(ctx.leaf, users), on=["user", "cat_leaf"], how="left")
         .join(_of_users(ctx.cat2, users), on=["user", "cat2"], how="left")
         .join(_of_users(ctx.last_item, users), on="user", how="left"))
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
        f = _teacher_features(f, teacher, ctx.split)
    return f.sort("user", "s_rank", "item")


def build_features(
    cands: pl.DataFrame, *, tables: Tables, split: Split, teacher: Teacher | None = None, recent_days: float = 30.0
) -> pl.DataFrame:
    """``candidate_features`` with a context built for this call (one-off use; reuse a ``FeatureContext``
    when features are built more than once at the same point)."""
    return candidate_features(cands, ctx=feature_context(tables=tables, split=split, recent_days=recent_days),
                              teacher=teacher)


def _retrieval_columns(cands: pl.DataFrame) -> pl.DataFrame:
    """Each source's score, rank and gap to the user's best candidate by that source.

    ``cands`` is either one retriever's list (user, item, score, rank: the student's, named ``s_*``) or a union
    from ``candidates.union`` ({src}_score, {src}_rank, n_sources), passed through as it is.
    """
    if "score" in cands.columns:
        cands = cands.select("user", "item", pl.col("score").alias("s_score"), pl.col("rank").alias("s_rank"))
    f = cands.with_columns(pl.col("user").cast(pl.Int32), pl.col("item").cast(pl.Int32))
    scores = [c for c in f.columns if c.endswith("_score")]
    return f.with_columns(pl.col(c).cast(pl.Float32) for c in scores).with_columns(
        (pl.col(c) - pl.col(c).max().over("user")).alias(c.removesuffix("_score") + "_gap") for c in scores)


def _teacher_features(f: pl.DataFrame, teacher: Teacher, split: Split) -> pl.DataFrame:
    u = f["user"].to_numpy().astype(np.int64)
    i = f["item"].to_numpy().astype(np.int64)
    uv = teacher.users[split]
    score = np.einsum("nd,nd->n", uv[u], teacher.items[i]).astype(np.float32)
    has = np.abs(uv).sum(1) > 0  # zeros = user without history at this point
    score[~has[u]] = np.nan
    top = teacher.topk[split]
    k_t = int(top["rank"].max()) + 1 if top.height else 0
    f = f.with_columns(pl.Series("t_score", score)).join(
        top.select(pl.col("user").cast(pl.Int32), pl.col("item").cast(pl.Int32), pl.col("rank").cast(pl.Int32)
                   .alias("t_rank")), on=["user", "item"], how="left")
    return f.with_columns(pl.col("t_rank").is_not_null().cast(pl.Int8).alias("t_in_topk"),
                          pl.col("t_rank").fill_null(k_t),
                          (pl.col("t_score") - pl.col("t_score").max().over("user")).alias("t_gap"))


def feature_columns(f: pl.DataFrame) -> list[str]:
    return [c for c in f.columns if c not in ("user", "item", "label")]


def label(f: pl.DataFrame, targets: pl.DataFrame) -> pl.DataFrame:
    """Add ``label`` = 1 where (user, item) is a target at this point, else 0."""
    t = targets.select(pl.col("user").cast(pl.Int32), pl.col("item").cast(pl.Int32)).unique() \
        .with_columns(pl.lit(1, pl.Int8).alias("label"))
    return f.join(t, on=["user", "item"], how="left").with_columns(pl.col("label").fill_null(0))
