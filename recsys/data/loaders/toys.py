"""The embedded Amazon Toys 2014 5-core sample (see recsys/data/embedded/README.md)."""

from __future__ import annotations

import polars as pl

from recsys.data.loaders.beauty import embedded_path
from recsys.data.quarantine import empty_quarantine
from recsys.data.schema import INTERACTIONS, ITEMS, Loaded, conform

SOURCE = "amazon_toys_2014_5core (embedded)"


def load_toys() -> Loaded:
    """167,597 reviews of 19,412 users on 11,924 items, in each user's published (S3-Rec) order.

    The source has no time: ``timestamp`` is the 1-based position in the user's sequence.
    """
    inter = pl.read_parquet(embedded_path("toys_interactions.parquet")).with_columns(
        pl.lit("review").alias("event"),
        pl.lit("toys_interactions.parquet").alias("source_file"),
        pl.int_range(1, pl.len() + 1).alias("source_row"),
    )
    items = pl.read_parquet(embedded_path("toys_items.parquet"))
    return Loaded(interactions=conform(inter, INTERACTIONS), items=conform(items, ITEMS),
                  quarantine=empty_quarantine(), n_read=inter.height, source=SOURCE)
