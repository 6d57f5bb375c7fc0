"""Split a frame into kept rows and quarantined rows, each rejected row with a reason."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import polars as pl

from recsys.data.schema import QUARANTINE

Frame = TypeVar("Frame", pl.DataFrame, pl.LazyFrame)


@dataclass(frozen=True)
class Rule:
    """Rows where ``bad`` is true are rejected with ``reason``; ``column`` names the culprit."""

    bad: pl.Expr
    column: str
    reason: str


def apply_rules(df: pl.DataFrame, rules: list[Rule], *, raw_cols: list[str] | None = None,
                raw: pl.Expr | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Apply ``rules`` in order (first matching rule gives the reason).

    ``df`` must carry ``source_file`` and ``source_row``. Returns (kept, quarantine) where
    quarantine follows ``schema.QUARANTINE`` and ``kept.height + quarantine.height == df.height``.
    ``raw`` (a string expression over ``df``), when given, replaces the ``raw_cols`` rendering of the row.
    """
    raw_cols = raw_cols or [c for c in df.columns if c not in ("source_file", "source_row")]
    reason = pl.lit(None, dtype=pl.String)
    column = pl.lit(None, dtype=pl.String)
    for rule in reversed(rules):
        cond = rule.bad.fill_null(False)
        reason = pl.when(cond).then(pl.lit(rule.reason)).otherwise(reason)
        column = pl.when(cond).then(pl.lit(rule.column)).otherwise(column)
    tagged = df.with_columns(reason.alias("__reason"), column.alias("__column"))
    kept = tagged.filter(pl.col("__reason").is_null()).drop("__reason", "__column")
    bad = tagged.filter(pl.col("__reason").is_not_null())
    quarantine = to_quarantine(bad, reason_col="__reason", column_col="__column", raw_cols=raw_cols, raw=raw)
    return kept, quarantine


def to_quarantine(bad: Frame, *, reason_col: str, column_col: str, raw_cols: list[str],
                  raw: pl.Expr | None = None) -> Frame:
    """``bad``'s rows as ``schema.QUARANTINE`` rows (a lazy frame in, a lazy frame out)."""
    raw = raw if raw is not None else render_raw(bad.collect_schema(), cols=raw_cols)
    return bad.select(
        pl.col("source_file").cast(pl.String),
        pl.col("source_row").cast(pl.Int64).alias("row"),
        pl.col(column_col).cast(pl.String).alias("column"),
        pl.col(reason_col).cast(pl.String).alias("reason"),
        raw.alias("raw"),
    )


def render_raw(schema: pl.Schema, *, cols: list[str]) -> pl.Expr:
    """``"c1=v1; c2=v2"`` over ``cols`` (nulls as ``null``; list columns left out).

    One ``concat_str`` of labels and values: each row's text is written once, where a ``"c=v"`` string
    per column joined afterwards would hold every column's strings as well (hundreds of MiB at 10M rows).
    """
    parts: list[pl.Expr] = []
    for c in (c for c in cols if c in schema and schema[c] != pl.List(pl.String)):
        parts += [pl.lit(f"; {c}=" if parts else f"{c}="), pl.col(c).cast(pl.String).fill_null("null")]
    return pl.concat_str(parts) if parts else pl.lit("")


def empty_quarantine() -> pl.DataFrame:
    return pl.DataFrame(schema=QUARANTINE)
