"""The embedded Amazon Beauty 2014 5-core sample (see recsys/data/embedded/README.md)."""

from __future__ import annotations

from importlib import resources

import polars as pl

from recsys.data.quarantine import empty_quarantine
from recsys.data.schema import INTERACTIONS, ITEMS, Loaded, conform

SOURCE = "amazon_beauty_2014_5core (embedded)"


def embedded_path(name: str) -> str:
    return str(resources.files("recsys.data.embedded") / name)


def load_embedded_reviews(*, name: str, source: str) -> Loaded:
    """``{name}_interactions.parquet`` + ``{name}_items.parquet`` of the embedded package data as one review log
    (rows in each user's published order; ``source_row`` = 1-based row of the file)."""
    inter_file = f"{name}_interactions.parquet"
    inter = pl.read_parquet(embedded_path(inter_file)).with_columns(
        pl.lit("review").alias("event"),
        pl.lit(inter_file).alias("source_file"),
        pl.int_range(1, pl.len() + 1).alias("source_row"),
    )
    items = pl.read_parquet(embedded_path(f"{name}_items.parquet"))
    return Loaded(interactions=conform(inter, INTERACTIONS), items=conform(items, ITEMS),
                  quarantine=empty_quarantine(), n_read=inter.height, source=source)


def load_beauty() -> Loaded:
    """198,502 reviews of 22,363 users on 12,101 items; rows are in each user's published (S3-Rec) order."""
    return load_embedded_reviews(name="beauty", source=SOURCE)
