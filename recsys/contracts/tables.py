"""tables/: the data stage's items, users, interactions, quarantine and splits -> ``Tables``.

``items.parquet``  item i32 (a permutation of 0..N-1), item_id str (unique), title, brand, categories, ...
``users.parquet``  user i32 (a permutation of 0..U-1), user_id str (unique)
``split/{train,valid,test}.parquet``  user in [0, U), item in [0, N), timestamp, pos (train also event)
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal

import polars as pl

from recsys.contracts import _checks as C
from recsys.contracts.layout import Layout
from recsys.contracts.manifests import verify

STAGE = "data"
Split = Literal["valid", "test"]
SPLITS = ("train", "valid", "test")
_EVENTS = {"user": "int", "item": "int", "timestamp": "int", "pos": "int"}


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


def write(*, layout: Layout, items: pl.DataFrame, users: pl.DataFrame, interactions: pl.DataFrame,
          quarantine: pl.DataFrame, train: pl.DataFrame, valid: pl.DataFrame, test: pl.DataFrame) -> list[Path]:
    """Write every table atomically; returns the paths for the stage's record (which stores their sha256)."""
    from recsys.artifacts import write_parquet

    return [write_parquet(layout.items, items), write_parquet(layout.users, users),
            write_parquet(layout.interactions, interactions), write_parquet(layout.quarantine, quarantine),
            write_parquet(layout.split("train"), train), write_parquet(layout.split("valid"), valid),
            write_parquet(layout.split("test"), test)]


def paths(layout: Layout) -> list[Path]:
    """The files ``read`` loads (what later stages hash into their keys)."""
    return [layout.items, layout.users, *(layout.split(s) for s in SPLITS)]


def read_items(*, layout: Layout) -> pl.DataFrame:
    p = verify(layout.items, layout=layout, stage=STAGE)
    df = C.load_parquet(p, stage=STAGE)
    C.check_columns(df, path=p, stage=STAGE, kinds={"item": "int", "item_id": "str"})
    C.check_permutation(df, "item", path=p, stage=STAGE)
    C.check_unique(df, "item_id", path=p, stage=STAGE)
    return df


def read_users(*, layout: Layout) -> pl.DataFrame:
    p = verify(layout.users, layout=layout, stage=STAGE)
    df = C.load_parquet(p, stage=STAGE)
    C.check_columns(df, path=p, stage=STAGE, kinds={"user": "int", "user_id": "str"})
    C.check_permutation(df, "user", path=p, stage=STAGE)
    C.check_unique(df, "user_id", path=p, stage=STAGE)
    return df


def read_events(*, layout: Layout, split: str, n_users: int, n_items: int) -> pl.DataFrame:
    """One split's events, ids checked against the id maps' sizes."""
    p = verify(layout.split(split), layout=layout, stage=STAGE)
    df = C.load_parquet(p, stage=STAGE)
    C.check_columns(df, path=p, stage=STAGE, kinds=_EVENTS)
    C.check_range(df, "user", n_users, path=p, stage=STAGE, against=f"{n_users} users in {layout.users.name}")
    C.check_range(df, "item", n_items, path=p, stage=STAGE, against=f"{n_items} items in {layout.items.name}")
    return df


def read_interactions(*, layout: Layout, n_users: int, n_items: int) -> pl.DataFrame:
    """All kept events (user, item, timestamp, event, pos), ids checked (the append step reads these)."""
    p = verify(layout.interactions, layout=layout, stage=STAGE)
    df = C.load_parquet(p, stage=STAGE)
    C.check_columns(df, path=p, stage=STAGE, kinds=_EVENTS)
    C.check_range(df, "user", n_users, path=p, stage=STAGE, against=f"{n_users} users in {layout.users.name}")
    C.check_range(df, "item", n_items, path=p, stage=STAGE, against=f"{n_items} items in {layout.items.name}")
    return df


def read(*, layout: Layout) -> Tables:
    """Items, users and the three splits, each verified (digest, columns, ids) before use."""
    items, users = read_items(layout=layout), read_users(layout=layout)
    ev = {s: read_events(layout=layout, split=s, n_users=users.height, n_items=items.height) for s in SPLITS}
    return Tables(items=items, users=users, train=ev["train"], valid=ev["valid"], test=ev["test"])


def read_id_column(*, layout: Layout, which: Literal["users", "items"]) -> pl.Series:
    """Raw ids in row order of the id map (``user_id`` / ``item_id`` sorted by the int id)."""
    if which == "users":
        return read_users(layout=layout).sort("user")["user_id"]
    return read_items(layout=layout).sort("item")["item_id"]


def read_quarantine(*, layout: Layout) -> pl.DataFrame | None:
    """Rows the data stage rejected (source_file, row, column, reason, raw), verified; None when absent."""
    if not layout.quarantine.exists():
        return None
    p = verify(layout.quarantine, layout=layout, stage=STAGE)
    df = C.load_parquet(p, stage=STAGE)
    C.check_columns(df, path=p, stage=STAGE, kinds={"reason": "any"})
    return df
