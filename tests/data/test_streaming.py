"""The streaming (larger-than-memory) data stage writes the same tables as the in-memory one."""

from __future__ import annotations

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from recsys.data.prepare import prepare
from recsys.data.schema import Loaded
from recsys.data.split import leave_one_out
from recsys.data.synthetic import make_shop
from recsys.data.streaming import histories_streaming, prepare_streaming


@pytest.mark.parametrize("rebuys", [False, True])
def test_streaming_prepare_equals_in_memory(tmp_path, rebuys: bool) -> None:
    shop = make_shop(n_users=80, n_items=40, min_len=2, max_len=10, seed=3)
    inter = shop.interactions
    dups = inter.head(7).with_columns(pl.col("source_row") + 10_000)  # exact repeats, later rows
    inter = pl.concat([inter, dups])
    if rebuys:  # the same items bought again later: repeats that leave-one-out never makes targets
        again = inter.head(60).with_columns(pl.col("source_row") + 20_000, pl.col("timestamp") + 10**7)
        inter = pl.concat([inter, again])
    inter.write_parquet(tmp_path / "logs.parquet")
    shop.items.write_parquet(tmp_path / "items.parquet")

    counts = prepare_streaming(
        interactions=tmp_path / "logs.parquet",
        items=tmp_path / "items.parquet",
        out_dir=tmp_path / "tables",
        kcore_k=3,
    )
    prep = prepare(
        Loaded(
            interactions=inter, items=shop.items, quarantine=shop.quarantine, n_read=inter.height, source="t"
        ),
        kcore_k=3,
        require_catalogue=False,
    )
    train, valid, test = leave_one_out(prep.interactions)

    t = tmp_path / "tables"
    assert_frame_equal(pl.read_parquet(t / "interactions.parquet"), prep.interactions)
    assert_frame_equal(pl.read_parquet(t / "users.parquet"), prep.users)
    assert_frame_equal(pl.read_parquet(t / "items.parquet").select(prep.items.columns), prep.items)
    for name, df in [("train", train), ("valid", valid), ("test", test)]:
        assert_frame_equal(pl.read_parquet(t / "split" / f"{name}.parquet"), df)
    q = pl.read_parquet(t / "quarantine.parquet")
    assert sorted(q["row"].to_list()) == sorted(prep.quarantine["row"].to_list())
    assert counts["read"] == counts["kept"] + counts["quarantined"] == inter.height
    assert not (t / "_streaming").exists()

    hist = pl.read_parquet(
        histories_streaming(train=t / "split" / "train.parquet", out=tmp_path / "h.parquet")
    )
    expect = train.group_by("user").agg(pl.col("item").sort_by("pos")).sort("user")
    assert_frame_equal(hist, expect)
