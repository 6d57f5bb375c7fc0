"""De-duplicate, k-core filter and map ids to contiguous ints. Rejected rows go to quarantine."""

from __future__ import annotations

import dataclasses

import polars as pl

from recsys.data.quarantine import Rule, apply_rules, empty_quarantine, to_quarantine
from recsys.data.schema import ITEMS, TABLE_INTERACTIONS, TABLE_ITEMS, TABLE_USERS, Loaded, conform


@dataclasses.dataclass(frozen=True)
class Prepared:
    interactions: pl.DataFrame  # TABLE_INTERACTIONS, sorted by user, pos
    items: pl.DataFrame  # TABLE_ITEMS, item = row index
    users: pl.DataFrame  # TABLE_USERS, user = row index
    quarantine: pl.DataFrame
    counts: dict[str, int]


def dedupe_events(df: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Exact repeats of (user, item, timestamp, event) keep their first row; the rest are quarantined."""
    dup = pl.struct("user_id", "item_id", "timestamp", "event").is_first_distinct().not_()
    return apply_rules(df, [Rule(dup, "user_id,item_id,timestamp", "duplicate event (same user, item, time, event)")])


def kcore(df: pl.DataFrame, *, k: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Iteratively drop users and items with fewer than ``k`` events until stable."""
    if k <= 1:
        return df, empty_quarantine()
    kept = df
    while True:
        ucount = pl.col("user_id").count().over("user_id")
        icount = pl.col("item_id").count().over("item_id")
        nxt = kept.filter((ucount >= k) & (icount >= k))
        if nxt.height == kept.height:
            break
        kept = nxt
    removed = df.join(kept.select("source_file", "source_row"), on=["source_file", "source_row"], how="anti")
    removed = removed.with_columns(pl.lit(f"filtered by {k}-core (user or item has < {k} events)").alias("_r"),
                                   pl.lit("user_id,item_id").alias("_c"))
    return kept, to_quarantine(removed, reason_col="_r", column_col="_c",
                               raw_cols=["user_id", "item_id", "timestamp", "event"])


def build_catalogue(items: pl.DataFrame | None, interactions: pl.DataFrame, *,
                    require_catalogue: bool) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Return (catalogue, kept interactions, quarantine).

    Every catalogue item gets an id, including items nobody interacted with (cold items). Items seen only
    in the log are added with empty text unless ``require_catalogue``, in which case their events are
    quarantined.
    """
    q = empty_quarantine()
    if items is None:
        cat = interactions.select("item_id").unique()
        return conform(cat, ITEMS), interactions, q
    cat = items.unique(subset="item_id", keep="first", maintain_order=True)
    if require_catalogue:
        interactions, q = apply_rules(interactions, [Rule(pl.col("item_id").is_in(cat["item_id"].implode()).not_(),
                                                          "item_id", "item not in catalogue")])
    else:
        extra = interactions.select("item_id").unique().join(cat.select("item_id"), on="item_id", how="anti")
        cat = pl.concat([cat, conform(extra, ITEMS)])
    return conform(cat, ITEMS), interactions, q


def prepare(loaded: Loaded, *, kcore_k: int, require_catalogue: bool) -> Prepared:
    q_parts = [loaded.quarantine]
    inter, q = dedupe_events(loaded.interactions)
    q_parts.append(q)
    catalogue, inter, q = build_catalogue(loaded.items, inter, require_catalogue=require_catalogue)
    q_parts.append(q)
    inter, q = kcore(inter, k=kcore_k)
    q_parts.append(q)

    items = catalogue.sort("item_id").with_row_index("item").with_columns(pl.col("item").cast(pl.Int32))
    users = (inter.select("user_id").unique().sort("user_id").with_row_index("user")
             .with_columns(pl.col("user").cast(pl.Int32)))
    mapped = (
        inter.join(users, on="user_id").join(items.select("item_id", "item"), on="item_id")
        .sort("user", "timestamp", "source_file", "source_row")
        .with_columns(pl.int_range(pl.len()).over("user").cast(pl.Int32).alias("pos"))
    )
    quarantine = pl.concat([p for p in q_parts if p.height], how="vertical") if any(p.height for p in q_parts) \
        else empty_quarantine()
    counts = {
        "read": loaded.n_read,
        "kept": mapped.height,
        "quarantined": quarantine.height,
        "users": users.height,
        "items": items.height,
        "items_without_events": items.height - mapped["item"].n_unique(),
    }
    return Prepared(
        interactions=conform(mapped, TABLE_INTERACTIONS),
        items=conform(items, TABLE_ITEMS),
        users=conform(users, TABLE_USERS),
        quarantine=quarantine,
        counts=counts,
    )
