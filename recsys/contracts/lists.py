"""Ranked lists ``(user i32, item i32, score f32, rank i32)``: index candidates, reranked lists, teacher top-K.

``rank`` is 0-based within a user; ``user`` in [0, U), ``item`` in [0, N); scores finite.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from recsys.contracts import _checks as C
from recsys.contracts.errors import problem, rebuild
from recsys.contracts.layout import Layout
from recsys.contracts.manifests import present, verify

COLUMNS = {"user": "int", "item": "int", "score": "float", "rank": "int"}


def write(*, path: Path, frame: pl.DataFrame) -> Path:
    """Write a ranked list atomically (columns checked first, so a bad list is never written)."""
    from recsys.artifacts import write_parquet

    C.check_columns(frame, path=path, stage="the writing", kinds=COLUMNS)
    C.finite_column(frame, "score", path=path, stage="the writing")
    return write_parquet(path, frame)


def read(*, path: Path, layout: Layout, stage: str, n_users: int, n_items: int) -> pl.DataFrame:
    """A verified ranked list: digest, columns, ids within the id maps, finite scores, ranks >= 0."""
    p = verify(path, layout=layout, stage=stage)
    df = C.load_parquet(p, stage=stage)
    C.check_columns(df, path=p, stage=stage, kinds=COLUMNS)
    C.check_range(df, "user", n_users, path=p, stage=stage, against=f"{n_users} users in the tables")
    C.check_range(df, "item", n_items, path=p, stage=stage, against=f"{n_items} items in the tables")
    C.finite_column(df, "score", path=p, stage=stage)
    if df.height and df["rank"].min() < 0:  # type: ignore[operator]
        raise problem(p, "negative ranks", rebuild(stage))
    return df


def has_candidates(layout: Layout, *, split: str, folder: str = "index") -> bool:
    return present(layout.candidates(split, folder=folder), layout=layout)


def has_reranked(layout: Layout, *, split: str) -> bool:
    return present(layout.reranked(split), layout=layout)


def read_candidates(*, layout: Layout, split: str, n_users: int, n_items: int, folder: str = "index") -> pl.DataFrame:
    """The retriever's candidates at ``split`` (written by the index stage, or another ``folder``)."""
    return read(path=layout.candidates(split, folder=folder), layout=layout, stage=folder, n_users=n_users,
                n_items=n_items)


def read_reranked(*, layout: Layout, split: str, n_users: int, n_items: int) -> pl.DataFrame:
    return read(path=layout.reranked(split), layout=layout, stage="rank", n_users=n_users, n_items=n_items)
