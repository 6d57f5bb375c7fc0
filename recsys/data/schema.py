"""Canonical table schemas shared by every loader.

Loaders turn any source into these *raw* frames (string ids, provenance columns); ``prepare``
then de-duplicates, filters, maps ids to contiguous ints and splits.
"""

from __future__ import annotations

import dataclasses

import polars as pl

# Raw interactions as loaded: one row per event, with where it came from.
INTERACTIONS = {
    "user_id": pl.String,
    "item_id": pl.String,
    "timestamp": pl.Int64,  # unix seconds (UTC); sequence position when the source has no time
    "event": pl.String,  # "purchase", "review", "view", "cart", ...
    "quantity": pl.Float64,  # optional (null when absent)
    "price": pl.Float64,  # optional unit price
    "source_file": pl.String,
    "source_row": pl.Int64,  # 1-based data row in the source file (header not counted)
}

# Raw item catalogue: every text field optional.
ITEMS = {
    "item_id": pl.String,
    "title": pl.String,
    "brand": pl.String,
    "categories": pl.List(pl.String),
    "description": pl.String,
    "price": pl.Float64,
}

# Rejected rows: nothing is lost.
QUARANTINE = {
    "source_file": pl.String,
    "row": pl.Int64,
    "column": pl.String,
    "reason": pl.String,
    "raw": pl.String,
}

# Prepared (id-mapped) tables written by the data stage.
TABLE_INTERACTIONS = {
    "user": pl.Int32,
    "item": pl.Int32,
    "timestamp": pl.Int64,
    "event": pl.String,
    "pos": pl.Int32,  # 0-based position in the user's time-ordered history
}
TABLE_ITEMS = {"item": pl.Int32, **{k: v for k, v in ITEMS.items()}}
TABLE_USERS = {"user": pl.Int32, "user_id": pl.String}
TARGETS = {"user": pl.Int32, "item": pl.Int32, "timestamp": pl.Int64, "pos": pl.Int32}


def empty(schema: dict[str, pl.DataType]) -> pl.DataFrame:
    return pl.DataFrame(schema=schema)


def conform(df: pl.DataFrame, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """Select ``schema``'s columns in order, adding missing optional ones as nulls and casting."""
    cols = []
    for name, dtype in schema.items():
        if name in df.columns:
            cols.append(pl.col(name).cast(dtype))
        else:
            cols.append(pl.lit(None, dtype=dtype).alias(name))
    return df.select(cols)


@dataclasses.dataclass(frozen=True)
class Loaded:
    """What every loader returns.

    ``n_read`` counts source data rows; ``n_read == interactions.height + quarantine rows that came
    from interaction files`` always holds (tests check it).
    """

    interactions: pl.DataFrame  # schema INTERACTIONS
    items: pl.DataFrame | None  # schema ITEMS, or None when the source has no catalogue
    quarantine: pl.DataFrame  # schema QUARANTINE
    n_read: int
    source: str  # human-readable description, e.g. "amazon_beauty_2014_5core (embedded)"
    # rejected catalogue rows (QUARANTINE; not part of n_read: catalogue rows are not interactions)
    items_quarantine: pl.DataFrame | None = None
    # what the loader converted or noticed (e.g. timestamps_from_ms, catalogue_read): manifest + summary
    counters: dict[str, int] = dataclasses.field(default_factory=dict)
    notes: tuple[str, ...] = ()  # one-line findings about the input (e.g. unmapped catalogue text columns)
