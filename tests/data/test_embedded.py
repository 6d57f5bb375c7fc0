"""The embedded datasets, and a tiny table source end to end through the data stage (prepare + split)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from recsys.artifacts import RunDir
from recsys.contracts.tables import read as read_tables
from recsys.data import stage
from recsys.data.config import DataConfig
from recsys.data.loaders import load_source
from recsys.data.schema import INTERACTIONS, ITEMS, QUARANTINE, TABLE_INTERACTIONS, TARGETS

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
DAY = 86_400
T0 = 1_600_000_000


def test_embedded_beauty_counts_through_the_stage(tmp_path: Path) -> None:
    counts = stage.run(DataConfig(), RunDir(tmp_path))
    assert (counts["users"], counts["items"], counts["kept"]) == (22_363, 12_101, 198_502)
    assert counts["read"] == 198_502 and counts["quarantined"] == 0
    assert counts["valid"] == counts["test"] == 22_363
    assert counts["train"] == 198_502 - 2 * 22_363 and counts["outside_splits"] == 0  # no repeats in Beauty


def test_embedded_toys_counts_through_the_stage(tmp_path: Path) -> None:
    counts = stage.run(DataConfig(source="toys"), RunDir(tmp_path))
    assert (counts["users"], counts["items"], counts["kept"]) == (19_412, 11_924, 167_597)
    assert counts["read"] == 167_597 and counts["quarantined"] == 0
    assert counts["valid"] == counts["test"] == 19_412
    assert counts["train"] == 167_597 - 2 * 19_412


def test_embedded_uci_split_targets_are_new_items_and_counts_add_up(tmp_path: Path) -> None:
    counts = stage.run(DataConfig(source="uci"), RunDir(tmp_path))
    assert counts["kept"] == counts["train"] + counts["valid"] + counts["test"] + counts["outside_splits"]
    assert counts["outside_splits"] > 0  # rebuys after a user's valid target: in no split
    t = read_tables(layout=RunDir(tmp_path).layout)
    hist = t.history("test").select("user", "item")
    assert t.test.join(hist, on=["user", "item"], how="semi").height == 0  # a rebuy is never a target
    assert t.valid.join(t.train, on=["user", "item"], how="semi").height == 0


def test_embedded_toys_items_are_clean() -> None:
    items = load_source(DataConfig(source="toys")).items
    assert items.height == 11_924 and items["title"].null_count() == 0
    assert not items["title"].str.contains("&amp;|&quot;|&#39;").any()  # HTML entities unescaped
    assert items["categories"].list.len().gt(0).sum() == 11_924 - 345  # 345 items sit in the root only
    assert not items["categories"].list.contains("Toys & Games").any()  # the shared root is dropped


@pytest.fixture(scope="module")
def uci() -> object:
    return load_source(DataConfig(source="uci"))


def test_embedded_uci_counts_add_up(uci: object) -> None:
    loaded = uci
    assert dict(loaded.interactions.schema) == INTERACTIONS and dict(loaded.quarantine.schema) == QUARANTINE
    assert dict(loaded.items.schema) == ITEMS
    assert loaded.n_read == 541_909 == loaded.interactions.height + loaded.quarantine.height
    assert loaded.quarantine["reason"].null_count() == 0 and loaded.quarantine["column"].null_count() == 0
    by_reason = dict(loaded.quarantine.group_by("reason").len().iter_rows())
    assert by_reason == {
        "guest checkout: no customer id": 135_080,  # the well-known UCI figure
        "cancellation ('C' invoice)": 8_905,  # 9,288 'C' rows, 383 of them guests
        "duplicate row (same user, item, time, event, quantity, price)": 5_228,
        "not a product (postage, fee, adjustment or voucher)": 1_554,
        "zero or negative unit price": 33,
    }
    assert loaded.interactions.height == 391_109
    rows = pl.concat([loaded.interactions["source_row"], loaded.quarantine["row"]])
    assert rows.n_unique() == 541_909 and rows.min() == 1 and rows.max() == 541_909
    inter = loaded.interactions
    assert inter["user_id"].str.contains(r"^\d{5}$").all()
    assert (inter["quantity"] > 0).all() and (inter["price"] > 0).all()
    assert inter["timestamp"].min() == 1291191960 and inter["timestamp"].max() == 1323435000  # 2010-12-01 08:26 .. 2011-12-09 12:50
    assert inter["item_id"].is_in(loaded.items["item_id"].implode()).all()


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data is not present")
def test_embedded_uci_copy_matches_the_shared_original() -> None:
    from recsys.data.loaders.uci import embedded_path

    original = pl.read_parquet(SHARED / "uci_online_retail" / "raw" / "online_retail_2010-12_2011-12.parquet")
    assert_frame_equal(pl.read_parquet(embedded_path()), original)


# --------------------------------------------------------------------------- tiny table, end to end
def _tiny_log(tmp_path: Path) -> Path:
    rows = [("a", "i1", 1), ("a", "i2", 2), ("a", "i3", 3), ("a", "i4", 8),
            ("b", "i2", 1), ("b", "i3", 9), ("b", "i1", 12),
            ("c", "i1", 2), ("c", "i4", 11)]
    lines = [f"{u},{i},{T0 + d * DAY}" for u, i, d in rows]
    lines += [f"c,,{T0}", f"a,i1,{T0 + DAY}"]  # row 10: no item; row 11: duplicate of row 1
    f = tmp_path / "log.csv"
    f.write_text("user_id,item_id,timestamp\n" + "\n".join(lines) + "\n")
    return f


def _read(run: RunDir, name: str, schema: dict) -> pl.DataFrame:
    return pl.read_parquet(run.layout.split(name))


def _frame(rows: list[tuple], schema: dict) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=schema, orient="row")


def test_embedded_tiny_table_leave_one_out(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    counts = stage.run(DataConfig(source="table", path=str(_tiny_log(tmp_path)), kcore=0), run)
    assert (counts["read"], counts["kept"], counts["quarantined"]) == (11, 9, 2)
    assert (counts["users"], counts["items"]) == (3, 4)
    q = pl.read_parquet(run.layout.quarantine)
    assert q.select("row", "reason").sort("row").rows() == [
        (10, "missing item id"), (11, "duplicate row (same user, item, time, event, quantity, price)")]
    d = lambda k: T0 + k * DAY
    # users a=0, b=1, c=2; items i1=0 .. i4=3. c has 2 events: all train, no targets.
    assert_frame_equal(_read(run, "train", TABLE_INTERACTIONS), _frame(
        [(0, 0, d(1), "purchase", 0), (0, 1, d(2), "purchase", 1), (1, 1, d(1), "purchase", 0),
         (2, 0, d(2), "purchase", 0), (2, 3, d(11), "purchase", 1)], TABLE_INTERACTIONS))
    assert_frame_equal(_read(run, "valid", TARGETS), _frame([(0, 2, d(3), 2), (1, 2, d(9), 1)], TARGETS))
    assert_frame_equal(_read(run, "test", TARGETS), _frame([(0, 3, d(8), 3), (1, 0, d(12), 2)], TARGETS))


def test_embedded_tiny_table_temporal(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    cfg = DataConfig(source="table", path=str(_tiny_log(tmp_path)), kcore=0, split="temporal",
                     valid_days=3.0, test_days=3.0)
    stage.run(cfg, run)
    d = lambda k: T0 + k * DAY
    # t_max = day 12 -> test window [day 9, ...), valid window [day 6, day 9), train before day 6
    assert_frame_equal(_read(run, "train", TABLE_INTERACTIONS).sort("user", "pos"), _frame(
        [(0, 0, d(1), "purchase", 0), (0, 1, d(2), "purchase", 1), (0, 2, d(3), "purchase", 2),
         (1, 1, d(1), "purchase", 0), (2, 0, d(2), "purchase", 0)], TABLE_INTERACTIONS))
    assert_frame_equal(_read(run, "valid", TARGETS), _frame([(0, 3, d(8), 3)], TARGETS))
    assert_frame_equal(_read(run, "test", TARGETS),
                       _frame([(1, 2, d(9), 1), (1, 0, d(12), 2), (2, 3, d(11), 1)], TARGETS))
