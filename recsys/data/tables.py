"""Read the prepared tables of a run directory (the data stage's output) for later stages."""

from __future__ import annotations

import dataclasses
from typing import Literal

import polars as pl

from recsys.artifacts import ArtifactError, Layout

Split = Literal["valid", "test"]


@dataclasses.dataclass(frozen=True)
class Tables:
    """Prepared, id-mapped tables. ``user`` in [0, n_users), ``item`` in [0, n_items)."""

    items: pl.DataFrame  # item, item_id, title, brand, categories, description, price
    users: pl.DataFrame  # user, user_id
    train: pl.DataFrame  # user, item, timestamp, pos — events the models fit on
    valid: pl.DataFrame  # user, item, timestamp, pos — validation targets (history = train)
    test: pl.DataFrame  # user, item, timestamp, pos — test targets (history = train + valid)

    @property
    def n_users(self) -> int:
        return self.users.height

    @property
    def n_items(self) -> int:
        return self.items.height

    def targets(self, split: Split) -> pl.DataFrame:
        return self.valid if split == "valid" else self.test

    def history(self, split: Split) -> pl.DataFrame:
        """Events visible before the prediction point of ``split``: (user, item, timestamp, pos),
        sorted by user then pos. Nothing of ``split``'s own targets is included."""
        if split == "valid":
            h = self.train
        else:
            h = pl.concat([self.train.select("user", "item", "timestamp", "pos"),
                           self.valid.select("user", "item", "timestamp", "pos")])
        return h.select("user", "item", "timestamp", "pos").sort("user", "pos")


def load_tables(layout: Layout) -> Tables:
    paths = {
        "items": layout.items,
        "users": layout.users,
        "train": layout.split("train"),
        "valid": layout.split("valid"),
        "test": layout.split("test"),
    }
    missing = [str(p) for p in paths.values() if not p.exists()]
    if missing:
        raise ArtifactError(f"missing tables {missing}; run the data stage first (`recsys prepare`).")
    return Tables(**{k: pl.read_parquet(p) for k, p in paths.items()})
