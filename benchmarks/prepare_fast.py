"""A faster ``recsys.data.prepare.prepare`` — a proposal, measured by bench_data.py (side ``polars_fast``).

Same inputs, same outputs (bench_data.py --check asserts equality with ``prepare``), different plan:

1. string ids -> int codes once, through two small sorted maps (items: catalogue ∪ log items, which is
   already the final item id; users: all log users, renumbered after the k-core by a cumulative sum);
2. exact duplicates found on the int columns (hashing four ints, not two strings);
3. the k-core loop as ``np.bincount`` over int codes with a boolean mask: each round is a few vectorised
   passes instead of two windowed string group-bys and a filter that copies the frame;
4. quarantine rows by boolean mask (no anti-join on (source_file, source_row)); the ``raw`` rendering
   is built for the rejected rows only, exactly as before;
5. the final sort on ints (source_file as a small rank code).

Not wired into the pipeline: the data engineer owns ``recsys/data/prepare.py``.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from recsys.data.prepare import Prepared
from recsys.data.quarantine import to_quarantine
from recsys.data.schema import ITEMS, TABLE_INTERACTIONS, TABLE_ITEMS, TABLE_USERS, Loaded, conform

DUP = "duplicate event (same user, item, time, event)"


def prepare_fast(loaded: Loaded, *, kcore_k: int) -> Prepared:
    df = loaded.interactions
    log_items = df.select("item_id").unique()
    if loaded.items is not None:
        cat = loaded.items.unique(subset="item_id", keep="first", maintain_order=True)
        extra = log_items.join(cat.select("item_id"), on="item_id", how="anti")
        catalogue = conform(pl.concat([cat, conform(extra, ITEMS)]), ITEMS)
    else:
        catalogue = conform(log_items, ITEMS)
    items = catalogue.sort("item_id").with_row_index("item").with_columns(pl.col("item").cast(pl.Int32))
    users0 = (
        df.select("user_id")
        .unique()
        .sort("user_id")
        .with_row_index("u0")
        .with_columns(pl.col("u0").cast(pl.Int32))
    )
    files = df.select("source_file").unique().sort("source_file").with_row_index("f")

    coded = (
        df.select("user_id", "item_id", "source_file", "timestamp", "event", "source_row")
        .join(users0, on="user_id", how="left", maintain_order="left")
        .join(items.select("item_id", "item"), on="item_id", how="left", maintain_order="left")
        .join(
            files.with_columns(pl.col("f").cast(pl.Int32)),
            on="source_file",
            how="left",
            maintain_order="left",
        )
        .select("u0", "item", "f", "timestamp", "event", "source_row")
    )
    first = (
        coded.select(pl.struct("u0", "item", "timestamp", "event").is_first_distinct()).to_series().to_numpy()
    )

    u = coded["u0"].to_numpy()
    it = coded["item"].to_numpy()
    keep = first.copy()
    while kcore_k > 1:
        uc = np.bincount(u[keep], minlength=users0.height)
        ic = np.bincount(it[keep], minlength=items.height)
        nxt = keep & (uc[u] >= kcore_k) & (ic[it] >= kcore_k)
        if nxt.sum() == keep.sum():
            break
        keep = nxt

    q_dup = df.filter(pl.Series(~first)).with_columns(
        pl.lit(DUP).alias("_r"), pl.lit("user_id,item_id,timestamp").alias("_c")
    )
    q_core = df.filter(pl.Series(first & ~keep)).with_columns(
        pl.lit(f"filtered by {kcore_k}-core (user or item has < {kcore_k} events)").alias("_r"),
        pl.lit("user_id,item_id").alias("_c"),
    )
    raw_all = [c for c in df.columns if c not in ("source_file", "source_row")]
    parts = [
        loaded.quarantine,
        to_quarantine(q_dup, reason_col="_r", column_col="_c", raw_cols=raw_all),
        to_quarantine(
            q_core, reason_col="_r", column_col="_c", raw_cols=["user_id", "item_id", "timestamp", "event"]
        ),
    ]
    quarantine = pl.concat([p for p in parts if p.height]) if any(p.height for p in parts) else parts[0]

    present = np.zeros(users0.height, dtype=bool)
    present[u[keep]] = True
    new_id = (np.cumsum(present) - 1).astype(np.int32)
    users = users0.filter(pl.Series(present)).select(pl.Series("user", new_id[present]), "user_id")
    mapped = (
        coded.filter(pl.Series(keep))
        .with_columns(pl.Series("user", new_id[u[keep]]))
        .sort("user", "timestamp", "f", "source_row")
        .with_columns(pl.int_range(pl.len()).over("user").cast(pl.Int32).alias("pos"))
    )
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
