"""The baseline for bench_data.py: the data stage written the straightforward pandas way.

Same steps and same outputs as ``recsys.data.prepare.prepare`` + ``recsys.data.split.leave_one_out`` +
per-user history lists: exact-duplicate removal (quarantined with a readable ``raw`` rendering),
catalogue + log-only items, iterative k-core (quarantined too), sorted id maps, per-user positions,
leave-one-out split, ``groupby(...).agg(list)`` histories. ``check`` in bench_data.py asserts the two
agree on small data, so the comparison is like for like.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

RAW_COLS = ["user_id", "item_id", "timestamp", "event", "quantity", "price"]


def _raw(df: pd.DataFrame, cols: list[str]) -> pd.Series:
    out = None
    for c in cols:
        part = c + "=" + df[c].astype("str").fillna("null").replace({"nan": "null", "None": "null"})
        out = part if out is None else out + "; " + part
    return out if out is not None else pd.Series("", index=df.index)


def _quarantine(bad: pd.DataFrame, *, reason: str, column: str, cols: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "source_file": bad["source_file"],
            "row": bad["source_row"],
            "column": column,
            "reason": reason,
            "raw": _raw(bad, cols),
        }
    )


def prepare(inter: pd.DataFrame, items: pd.DataFrame, *, k: int) -> dict[str, pd.DataFrame]:
    """-> {"interactions", "items", "users", "quarantine"} like ``recsys.data.prepare.Prepared``."""
    q = []
    dup = inter.duplicated(subset=["user_id", "item_id", "timestamp", "event"], keep="first")
    q.append(
        _quarantine(
            inter[dup],
            reason="duplicate event (same user, item, time, event)",
            column="user_id,item_id,timestamp",
            cols=RAW_COLS,
        )
    )
    inter = inter[~dup]

    cat = items.drop_duplicates(subset="item_id", keep="first")
    extra = pd.Index(inter["item_id"].unique()).difference(pd.Index(cat["item_id"]))
    cat = pd.concat([cat, pd.DataFrame({"item_id": extra})], ignore_index=True)

    kept = inter
    while k > 1:
        ucount = kept.groupby("user_id")["user_id"].transform("size")
        icount = kept.groupby("item_id")["item_id"].transform("size")
        nxt = kept[(ucount >= k) & (icount >= k)]
        if len(nxt) == len(kept):
            break
        kept = nxt
    removed = inter[~inter.index.isin(kept.index)]
    q.append(
        _quarantine(
            removed,
            reason=f"filtered by {k}-core (user or item has < {k} events)",
            column="user_id,item_id",
            cols=RAW_COLS[:4],
        )
    )

    items_t = cat.sort_values("item_id", kind="stable").reset_index(drop=True)
    items_t.insert(0, "item", np.arange(len(items_t), dtype=np.int32))
    users = pd.DataFrame({"user_id": np.sort(kept["user_id"].unique())})
    users.insert(0, "user", np.arange(len(users), dtype=np.int32))
    mapped = (
        kept.merge(users, on="user_id")
        .merge(items_t[["item_id", "item"]], on="item_id")
        .sort_values(["user", "timestamp", "source_file", "source_row"])
    )
    mapped["pos"] = mapped.groupby("user").cumcount().astype(np.int32)
    mapped = mapped[["user", "item", "timestamp", "event", "pos"]].reset_index(drop=True)
    return {
        "interactions": mapped,
        "items": items_t,
        "users": users,
        "quarantine": pd.concat(q, ignore_index=True),
    }


def leave_one_out(inter: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Targets are the user's last two new items (a repeat is never one); repeats after the valid target
    are in no split (``recsys.data.split.leave_one_out``)."""
    new = inter["pos"] == inter.groupby(["user", "item"])["pos"].transform("min")
    rank = inter["pos"].where(new, -1).groupby(inter["user"]).rank(method="first", ascending=False)
    eligible = new.groupby(inter["user"]).transform("sum") >= 3
    valid_pos = inter["pos"].where(new & (rank == 2)).groupby(inter["user"]).transform("max")
    test = inter[eligible & new & (rank == 1)]
    valid = inter[eligible & new & (rank == 2)]
    train = inter[~eligible | (inter["pos"] < valid_pos)]
    cols = ["user", "item", "timestamp", "pos"]
    return train, valid[cols], test[cols]


def histories(train: pd.DataFrame) -> pd.Series:
    """user -> list of items in time order."""
    return train.sort_values(["user", "pos"]).groupby("user")["item"].agg(list)
