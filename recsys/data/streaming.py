"""The data stage for logs larger than memory: polars lazy scans, the streaming engine, parquet sinks.

Same outputs as ``recsys.data.prepare.prepare`` + ``recsys.data.split.leave_one_out`` (tables/ layout,
contiguous int32 ids sorted by raw id, per-user ``pos``), computed so that no step holds the full log
with its string ids in memory:

1. string ids -> int ids first (two small sorted maps; every later pass moves ints, not strings);
2. exact duplicates and the iterative k-core are computed on the int log; each k-core round is one
   streaming pass that produces only the per-user / per-item counts (small tables);
3. the kept, re-numbered log is sorted and sunk to parquet; ``pos`` comes from per-user start offsets
   (a small table) rather than a window over the whole log;
4. the leave-one-out split and the histories are streamed from that file.

Quarantine rows carry (source_file, row, column, reason); the ``raw`` rendering is left empty to keep
the passes cheap. Which copy of an exact duplicate is kept is the one with the smallest source row, as
in the in-memory path.
"""

from __future__ import annotations

import logging
from pathlib import Path

import polars as pl

from recsys.contracts.layout import table_paths
from recsys.data.split import loo_role

log = logging.getLogger(__name__)
KEY = ["user", "item", "timestamp", "event"]
ENGINE = "streaming"


def _sink(lf: pl.LazyFrame, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lf.sink_parquet(path, engine=ENGINE)
    return path


def _collect(lf: pl.LazyFrame) -> pl.DataFrame:
    return lf.collect(engine=ENGINE)


def _id_map(lf: pl.LazyFrame, col: str, new: str) -> pl.DataFrame:
    return (
        _collect(lf.select(col).unique())
        .sort(col)
        .with_row_index(new)
        .with_columns(pl.col(new).cast(pl.Int32))
    )


def prepare_streaming(
    *, interactions: str | Path, items: str | Path | None, out_dir: str | Path, kcore_k: int = 5
) -> dict[str, int]:
    """Prepare and split a parquet log (glob allowed) into ``out_dir`` (a run's ``tables/`` folder).

    Args:
        interactions: parquet file(s) with the raw ``recsys.data.schema.INTERACTIONS`` columns.
        items: optional parquet catalogue with ``item_id`` (+ text columns); log-only items are added.
    Returns:
        counts: read, kept, quarantined, users, items, train, valid, test.
    """
    out = Path(out_dir)
    tp = table_paths(out)  # the data stage's file names (recsys.contracts.layout)
    tmp = out / "_streaming"
    raw = pl.scan_parquet(interactions)
    n_read = int(_collect(raw.select(pl.len())).item())

    # 1. id maps: items = catalogue + log-only items, users = all log users (renumbered after the k-core)
    log_items = raw.select("item_id").unique()
    if items is not None:
        cat = pl.scan_parquet(items).unique(subset="item_id", keep="first", maintain_order=True)
        all_items = pl.concat([cat.select("item_id"), log_items], how="vertical").unique()
    else:
        cat, all_items = None, log_items
    item_map = _id_map(all_items, "item_id", "item")
    user_map0 = _id_map(raw, "user_id", "user")
    ints_p = _sink(
        raw.join(user_map0.lazy(), on="user_id")
        .join(item_map.lazy(), on="item_id")
        .select(
            "user", "item", "timestamp", pl.col("event").cast(pl.Categorical), "source_file", "source_row"
        ),
        tmp / "ints.parquet",
    )
    ints = pl.scan_parquet(ints_p)

    # 2. exact duplicates: keep the smallest source row of each (user, item, timestamp, event)
    firsts = ints.group_by(KEY).agg(pl.col("source_row").min())
    dedup_p = _sink(ints.join(firsts, on=[*KEY, "source_row"], how="semi"), tmp / "dedup.parquet")
    dedup = pl.scan_parquet(dedup_p)

    # 3. iterative k-core on small count tables
    users = _collect(dedup.select("user").unique())
    items_ok = _collect(dedup.select("item").unique())
    n_rows = None
    while kcore_k > 1:
        cur = dedup.join(users.lazy(), on="user", how="semi").join(items_ok.lazy(), on="item", how="semi")
        uc = _collect(cur.group_by("user").len())
        ic = _collect(cur.group_by("item").len())
        height = int(uc["len"].sum())
        if height == n_rows:
            break
        n_rows = height
        users = uc.filter(pl.col("len") >= kcore_k).select("user")
        items_ok = ic.filter(pl.col("len") >= kcore_k).select("item")
    kept = dedup.join(users.lazy(), on="user", how="semi").join(items_ok.lazy(), on="item", how="semi")

    # 4. renumber kept users (still in raw-id order), sort, positions from per-user offsets
    counts_u = _collect(kept.group_by("user").len()).sort("user")
    user_new = counts_u.with_row_index("user_new").with_columns(
        pl.col("user_new").cast(pl.Int32),
        (pl.col("len").cum_sum() - pl.col("len")).cast(pl.Int64).alias("start"),
    )
    sorted_p = _sink(
        kept.join(user_new.lazy().select("user", "user_new", "start", "len"), on="user")
        .sort("user_new", "timestamp", "source_file", "source_row")
        .with_row_index("_r"),
        tmp / "sorted.parquet",
    )
    srt = pl.scan_parquet(sorted_p)
    inter = srt.select(
        pl.col("user_new").alias("user"),
        "item",
        "timestamp",
        pl.col("event").cast(pl.String),
        (pl.col("_r").cast(pl.Int64) - pl.col("start")).cast(pl.Int32).alias("pos"),
        pl.col("len").alias("_n"),
    )
    _sink(inter.drop("_n"), tp["interactions"])

    # 5. tables: users, items, leave-one-out split
    _sink(
        user_new.lazy()
        .join(user_map0.lazy(), on="user")
        .sort("user_new")
        .select(pl.col("user_new").alias("user"), "user_id"),
        tp["users"],
    )
    items_tbl = item_map.lazy()
    if cat is not None:
        items_tbl = items_tbl.join(cat, on="item_id", how="left")
    _sink(items_tbl.sort("item"), tp["items"])
    n, pos = pl.col("_n"), pl.col("pos")
    cols = ["user", "item", "timestamp", "pos"]
    pairs = _collect(inter.select(pl.struct("user", "item").n_unique())).item()
    if pairs < _collect(inter.select(pl.len())).item():  # repeat purchases: targets are new items only
        role = loo_role()
        train_f, valid_f, test_f = role == 0, role == 1, role == 2
    else:  # the plain last / second-to-last split, without window expressions
        train_f, valid_f, test_f = (n < 3) | (pos < n - 2), (n >= 3) & (pos == n - 2), (n >= 3) & (pos == n - 1)
    _sink(inter.filter(train_f).drop("_n"), tp["train"])
    _sink(inter.filter(valid_f).select(cols), tp["valid"])
    _sink(inter.filter(test_f).select(cols), tp["test"])

    # 6. quarantine: every read row that is not kept (duplicate first, else k-core)
    kept_rows = pl.scan_parquet(sorted_p).select("source_file", "source_row")
    dups = ints.join(
        pl.scan_parquet(dedup_p).select("source_file", "source_row"),
        on=["source_file", "source_row"],
        how="anti",
    ).select(
        "source_file",
        pl.col("source_row").alias("row"),
        pl.lit("user_id,item_id,timestamp").alias("column"),
        pl.lit("duplicate event (same user, item, time, event)").alias("reason"),
        pl.lit("").alias("raw"),
    )
    core = dedup.join(kept_rows, on=["source_file", "source_row"], how="anti").select(
        "source_file",
        pl.col("source_row").alias("row"),
        pl.lit("user_id,item_id").alias("column"),
        pl.lit(f"filtered by {kcore_k}-core (user or item has < {kcore_k} events)").alias("reason"),
        pl.lit("").alias("raw"),
    )
    _sink(pl.concat([dups, core]), tp["quarantine"])

    def count(name: str) -> int:
        return int(_collect(pl.scan_parquet(tp[name]).select(pl.len())).item())

    counts = {
        "read": n_read,
        "kept": count("interactions"),
        "quarantined": count("quarantine"),
        "users": user_new.height,
        "items": item_map.height,
        "train": count("train"),
        "valid": count("valid"),
        "test": count("test"),
    }
    for p in tmp.glob("*.parquet"):
        p.unlink()
    tmp.rmdir()
    log.info("streaming prepare: %s", counts)
    return counts


def histories_streaming(*, train: str | Path, out: str | Path) -> Path:
    """user -> list of items in time order, from a train split parquet, sunk to ``out``."""
    lf = pl.scan_parquet(train).group_by("user").agg(pl.col("item").sort_by("pos")).sort("user")
    return _sink(lf, Path(out))
