"""A fast, vectorised synthetic interaction log for benchmarks (millions of rows in seconds).

``recsys.data.synthetic.make_shop`` walks users one by one in Python: fine for tests, far too slow for
10M rows. This generator draws everything with numpy at once, with realistic skew:

* item popularity ~ Zipf(``zipf``) over a shuffled catalogue (a few items take most events);
* user activity ~ lognormal(sigma=``activity_sigma``): most users have a handful of events, a few have
  hundreds, so the 5-core filter removes a realistic share;
* ~``dup_rate`` of rows are exact repeats (same user, item, time, event) that dedupe must catch;
* a catalogue with 10% more items than were ever sold (cold items).

Output schema = ``recsys.data.schema.INTERACTIONS`` (string ids, provenance columns) and ``ITEMS``, so
the frames go straight into ``recsys.data.prepare.prepare``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

if TYPE_CHECKING:
    from recsys.data.schema import Loaded

T0 = 1_600_000_000  # 2020-09-13
YEAR = 365 * 86400


def make_logs(
    *,
    n_rows: int,
    users_per_row: float = 0.1,
    items_per_row: float = 0.05,
    zipf: float = 0.95,
    activity_sigma: float = 1.2,
    dup_rate: float = 0.01,
    seed: int = 0,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Return (interactions, items) raw frames with ``n_rows`` interaction rows.

    Args:
        users_per_row / items_per_row: population sizes relative to ``n_rows`` (Amazon-like: ~10 events
            per user, ~20 per item before filtering).
    """
    rng = np.random.default_rng(seed)
    n_users = max(10, int(n_rows * users_per_row))
    n_items = max(10, int(n_rows * items_per_row))
    n_dup = int(n_rows * dup_rate)
    n_base = n_rows - n_dup

    w_user = rng.lognormal(0.0, activity_sigma, n_users)
    user = _sample(rng, w_user, n_base)
    w_item = 1.0 / np.arange(1, n_items + 1, dtype=np.float64) ** zipf
    item = rng.permutation(n_items)[_sample(rng, w_item, n_base)]
    ts = T0 + rng.integers(0, YEAR, n_base, dtype=np.int64)

    dup = rng.integers(0, n_base, n_dup)
    user = np.concatenate([user, user[dup]])
    item = np.concatenate([item, item[dup]])
    ts = np.concatenate([ts, ts[dup]])
    order = rng.permutation(n_rows)  # duplicates scattered through the file, as in real exports

    inter = pl.DataFrame(
        {"u": user[order].astype(np.int64), "i": item[order].astype(np.int64), "timestamp": ts[order]}
    )
    inter = inter.select(
        (pl.lit("u") + pl.col("u").cast(pl.String)).alias("user_id"),
        (pl.lit("i") + pl.col("i").cast(pl.String)).alias("item_id"),
        pl.col("timestamp"),
        pl.lit("purchase").alias("event"),
        pl.lit(None, dtype=pl.Float64).alias("quantity"),
        pl.lit(None, dtype=pl.Float64).alias("price"),
        pl.lit("synthetic.parquet").alias("source_file"),
        pl.int_range(1, n_rows + 1, dtype=pl.Int64).alias("source_row"),
    )
    n_cat = int(n_items * 1.1)
    items = pl.DataFrame({"i": np.arange(n_cat)}).select(
        (pl.lit("i") + pl.col("i").cast(pl.String)).alias("item_id"),
        (pl.lit("product ") + pl.col("i").cast(pl.String)).alias("title"),
        (pl.lit("brand") + (pl.col("i") % 997).cast(pl.String)).alias("brand"),
        pl.lit(None, dtype=pl.List(pl.String)).alias("categories"),
        pl.lit(None, dtype=pl.String).alias("description"),
        ((pl.col("i") % 50) + 0.99).cast(pl.Float64).alias("price"),
    )
    return inter, items


def _sample(rng: np.random.Generator, weights: np.ndarray, n: int) -> np.ndarray:
    """``n`` indices drawn with probability ∝ ``weights`` (inverse CDF: much faster than rng.choice(p=))."""
    cdf = np.cumsum(weights)
    cdf /= cdf[-1]
    return np.minimum(np.searchsorted(cdf, rng.random(n)), len(weights) - 1)


def write_logs(*, n_rows: int, out_dir: Path, seed: int = 0) -> tuple[Path, Path]:
    """Write (or reuse) ``logs_<n>.parquet`` + ``items_<n>.parquet`` under ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    inter_p, items_p = out_dir / f"logs_{n_rows}_s{seed}.parquet", out_dir / f"items_{n_rows}_s{seed}.parquet"
    if not (inter_p.exists() and items_p.exists()):
        inter, items = make_logs(n_rows=n_rows, seed=seed)
        inter.write_parquet(inter_p)
        items.write_parquet(items_p)
    return inter_p, items_p


def as_loaded(interactions: pl.DataFrame, items: pl.DataFrame, *, source: str = "synthetic") -> Loaded:
    """The frames as ``recsys.data.schema.Loaded`` (what a loader returns), ready for ``prepare``."""
    from recsys.data.schema import ITEMS, QUARANTINE, Loaded, conform, empty

    return Loaded(interactions=interactions, items=conform(items, ITEMS), quarantine=empty(QUARANTINE),
                  n_read=interactions.height, source=source)
