"""The teacher's files as ranker features: embeddings in one space and top-K lists (``Teacher``).

Used by the rank stage and by ``recsys.api.Recommender`` (which needs the same features at serving time
without importing the stage). Every file is read through ``recsys.contracts.teacher`` (verified).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from recsys.contracts import problem
from recsys.contracts import tables as T
from recsys.contracts import teacher as TC
from recsys.contracts.layout import Layout
from recsys.rank.features import Teacher


def load_teacher(root: Path, *, space: str, n_users: int | None = None, n_items: int | None = None) -> Teacher | None:
    """Teacher embeddings in ``space`` ("auto" = adapted if present else raw); None if absent or "none".

    Every file is verified (``recsys.contracts.teacher``); ``n_users`` / ``n_items`` default to the run's id maps."""
    lay = Layout(Path(root))
    if space == "none" or not TC.present(lay):
        return None
    if n_users is None or n_items is None:
        n_users, n_items = T.read_users(layout=lay).height, T.read_items(layout=lay).height
    items = TC.read_items(layout=lay, n_items=n_items)
    if space == "auto":
        space = "adapted" if "adapted" in items else "raw"
    users = TC.read_users(layout=lay, n_users=n_users)
    keys = [space, f"{space}_valid", f"{space}_test"]
    if space not in items or any(k not in users for k in keys[1:]):
        raise problem(lay.teacher, f"teacher space '{space}' not found (items: {sorted(items)}, users: {sorted(users)})",
                      "set rank.teacher_space to one the teacher wrote, or re-run the teacher stage")
    empty = pl.DataFrame(schema={"user": pl.Int32, "item": pl.Int32, "rank": pl.Int32})
    topk = {s: TC.read_topk(layout=lay, split=s, n_users=n_users, n_items=n_items)
            if TC.has_topk(lay, split=s) else empty for s in ("valid", "test")}
    return Teacher(items=items[space], users={s: users[f"{space}_{s}"] for s in ("valid", "test")}, topk=topk)


def teacher_files(root: Path) -> list[Path]:
    return [p for p in TC.paths(Layout(Path(root))) if p.exists()]
