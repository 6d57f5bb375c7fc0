"""Leave-one-out and temporal splits over prepared interactions.

Both return (train, valid, test). ``valid``/``test`` hold targets; the history used to predict valid
is ``train`` and the history for test is ``train + valid`` (see ``Tables.history``).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from recsys.data.schema import TABLE_INTERACTIONS, TARGETS, conform


def leave_one_out(inter: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """The user's last new item = test, the new item before it = valid, the events before that = train.

    "New" = the first event of that (user, item): full ranking excludes the user's history, so a repeat
    purchase can never be a target (the temporal split's rule too). Users with >= 3 distinct items get
    targets; shorter histories stay entirely in train. A log without repeats (Beauty, Toys) is the plain
    last / second-to-last split. Repeats after the valid target are in no split (they would tell the
    models about the future of both targets); they stay in ``interactions.parquet`` and are counted as
    ``outside_splits`` by the data stage.
    """
    if inter.height and inter.select(pl.struct("user", "item").n_unique()).item() < inter.height:
        role = inter.select(loo_role().alias("r")).to_series().to_numpy()
        train, valid, test = (inter.filter(pl.Series(role == r)) for r in (0, 1, 2))
        return conform(train, TABLE_INTERACTIONS), conform(valid, TARGETS), conform(test, TARGETS)
    after = _events_per_user(inter)
    short = after < 3  # no targets: the whole history is train
    # -> events of the user after this one (0 for the last); in place, as the split runs next to the whole
    # prepared table
    after -= inter["pos"].to_numpy()
    after -= 1
    train = inter.filter(pl.Series(short | (after > 1)))
    valid = inter.filter(pl.Series(~short & (after == 1)))
    test = inter.filter(pl.Series(~short & (after == 0)))
    return conform(train, TABLE_INTERACTIONS), conform(valid, TARGETS), conform(test, TARGETS)


def loo_role() -> pl.Expr:
    """Leave-one-out role of each event (0 train, 1 valid, 2 test, 3 in no split) as one polars expression
    over ``user``, ``item``, ``pos`` (eager and lazy/streaming frames alike); see ``leave_one_out``."""
    pos = pl.col("pos")
    new = pos == pos.min().over("user", "item")
    # 1 = the user's last new item, 2 = the one before, ...; repeats rank after every new item
    rank = pl.when(new).then(pos).otherwise(-1).rank("ordinal", descending=True).over("user")
    has = new.sum().over("user") >= 3
    valid_pos = pl.when(new & (rank == 2)).then(pos).max().over("user")
    return (pl.when(~has | (pos < valid_pos)).then(0).when(new & (rank == 2)).then(1)
            .when(new & (rank == 1)).then(2).otherwise(3)).cast(pl.Int8)


def _events_per_user(inter: pl.DataFrame) -> np.ndarray:
    """(N,) int32: how many events the row's user has (``np.bincount`` when ids are the usual 0..U-1)."""
    user = inter["user"]
    if inter.height and user.null_count() == 0 and user.min() >= 0:  # type: ignore[operator]
        u = user.to_numpy()
        return np.bincount(u).astype(np.int32)[u]
    return inter.select(pl.len().over("user")).to_series().to_numpy().astype(np.int32)


def temporal(inter: pl.DataFrame, *, valid_days: float, test_days: float) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """A global time cut: the last ``test_days`` are test, the ``valid_days`` before that are valid.

    Targets are kept only for users with at least one earlier event (something to predict from); a
    repeat of an item already in the user's earlier history is not a target (full ranking excludes
    seen items) but stays in the history.
    """
    t_max = inter["timestamp"].max()
    t_test = int(t_max - test_days * 86400)
    t_valid = int(t_test - valid_days * 86400)
    train = inter.filter(pl.col("timestamp") < t_valid)
    valid_all = inter.filter((pl.col("timestamp") >= t_valid) & (pl.col("timestamp") < t_test))
    test_all = inter.filter(pl.col("timestamp") >= t_test)

    def targets(window: pl.DataFrame, before: pl.DataFrame) -> pl.DataFrame:
        seen = before.select("user", "item").unique()
        users = before.select("user").unique()
        first = window.sort("pos").unique(subset=["user", "item"], keep="first")
        return first.join(users, on="user", how="semi").join(seen, on=["user", "item"], how="anti").sort("user", "pos")

    valid = targets(valid_all, train)
    test = targets(test_all, pl.concat([train, valid_all]))
    # Note: valid-window repeats and events of users new in that window are not targets, so they are not
    # part of the test history either (history(test) = train + valid targets); they are few and it keeps
    # one rule for both protocols.
    return conform(train, TABLE_INTERACTIONS), conform(valid, TARGETS), conform(test, TARGETS)


def hold_out_items(train: pl.DataFrame, *, share: float, seed: int) -> tuple[pl.DataFrame, list[int]]:
    """Remove every training event of a random ``share`` of the items that have training events.

    The events stay in ``interactions.parquet`` (nothing is lost); they are only absent from ``train``, so
    those items are cold for every model while their valid/test targets remain to be found.
    """
    warm = np.sort(train["item"].unique().to_numpy())
    n = int(round(share * len(warm)))
    cold = np.sort(np.random.default_rng(seed).choice(warm, size=n, replace=False)).tolist() if n else []
    return train.filter(~pl.col("item").is_in(cold)), cold


def check_split(inter: pl.DataFrame, *, train: pl.DataFrame, valid: pl.DataFrame, test: pl.DataFrame, split: str,
                valid_days: float, test_days: float, source: object) -> None:
    """Raise ``DataError`` naming why when a split is empty (nothing could be trained or measured)."""
    from recsys.data.errors import DataError

    empty = [name for name, f in (("train", train), ("valid", valid), ("test", test)) if f.height == 0]
    if not empty:
        return
    n_users = inter["user"].n_unique()
    if split == "leave_one_out":
        longest = int(inter.group_by("user").len()["len"].max() or 0)  # type: ignore[arg-type]
        why = (f"no user has the 3 events leave-one-out needs (one each for train, valid and test): "
               f"{n_users:,} users, the longest history has {longest}")
        hint = "Add more logs per user, or use data.split=temporal."
    else:
        t_min, t_max = inter["timestamp"].min(), inter["timestamp"].max()
        span = (t_max - t_min) / 86400 if t_min is not None else 0.0  # type: ignore[operator]
        why = (f"the log spans {span:.1f} days and the temporal split puts the last {test_days:g} days in test "
               f"and the {valid_days:g} before them in valid; a valid/test target needs a user with an earlier "
               f"event and an item new to that user")
        hint = "Change data.valid_days / data.test_days to fit the log's span, or use data.split=leave_one_out."
    which = " and ".join([", ".join(empty[:-1]), empty[-1]] if len(empty) > 1 else empty)
    raise DataError(source, f"the {which} split{'s are' if len(empty) > 1 else ' is'} empty: {why}.",
                    hint=hint)
