"""Slice figures in a fixed order: item popularity (head, torso, tail, cold) and user history length.

``EvalResult.by_slice`` gives one frame row per (slice) in alphabetical order; the report and metrics.json show
them in reading order, every slice present (an empty slice has ``targets`` 0 and null metrics).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import polars as pl

POPULARITY = ("head", "torso", "tail", "cold")


def history_order(bins: Sequence[int]) -> tuple[str, ...]:
    """Labels of ``metrics.history_length_slices`` in increasing length: "<5", "5-9", "10-19", ">=20"."""
    lo = (0, *bins[:-1])
    return (*(f"<{hi}" if a == 0 else f"{a}-{hi - 1}" for a, hi in zip(lo, bins)), f">={bins[-1]}")


def ordered(frame: pl.DataFrame, order: Sequence[str]) -> pl.DataFrame:
    """``frame`` (slice, ...) sorted by ``order``; labels outside it follow, alphabetically."""
    rank = {s: i for i, s in enumerate(order)}
    return frame.with_columns(pl.col("slice").replace_strict(rank, default=len(order), return_dtype=pl.Int32)
                              .alias("_o")).sort("_o", "slice").drop("_o")


def as_dict(frame: pl.DataFrame, *, order: Sequence[str], metrics: Sequence[str]) -> dict[str, dict[str, Any]]:
    """{slice: {"targets": n, metric: value, ...}} for every slice of ``order`` (then any others), in order."""
    got = {r["slice"]: r for r in frame.to_dicts()} if frame.height else {}
    names = [*order, *sorted(s for s in got if s not in order)]
    out: dict[str, dict[str, Any]] = {}
    for s in names:
        r = got.get(s)
        out[s] = {"targets": int(r["targets"]) if r else 0,
                  **{m: (float(r[m]) if r and r.get(m) is not None else None) for m in metrics}}
    return out
