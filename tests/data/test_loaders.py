"""Loaders on tiny hand-written files: table (CSV/TSV/JSONL/Parquet), Amazon (2014/2018/2023), RecBole, UCI."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import polars as pl
from polars.testing import assert_frame_equal

from recsys.data.config import Columns, DataConfig
from recsys.data.loaders import load_source
from recsys.data.schema import INTERACTIONS, ITEMS, QUARANTINE, Loaded

T0 = 1_600_000_000  # 2020-09-13T12:26:40Z


def check(loaded: Loaded) -> None:
    """Schemas and the count invariant every loader promises."""
    assert dict(loaded.interactions.schema) == INTERACTIONS
    assert dict(loaded.quarantine.schema) == QUARANTINE
    assert loaded.items is None or dict(loaded.items.schema) == ITEMS
    assert loaded.n_read == loaded.interactions.height + loaded.quarantine.height
    assert loaded.quarantine["reason"].null_count() == 0


def triples(loaded: Loaded) -> list[tuple[str, str, int]]:
    return list(loaded.interactions.select("user_id", "item_id", "timestamp").iter_rows())


def test_table_csv_time_formats(tmp_path: Path) -> None:
    f = tmp_path / "log.csv"
    f.write_text("user_id,item_id,timestamp\n"
                 f"u1,i1,{T0}\n"
                 "u1,i2,2020-09-13T12:26:41Z\n"
                 "u2,i1,2020-09-13 14:26:42+02:00\n"
                 "u2,i3,2020-09-13\n")
    loaded = load_source(DataConfig(source="table", path=str(f)))
    check(loaded)
    assert triples(loaded) == [("u1", "i1", T0), ("u1", "i2", T0 + 1), ("u2", "i1", T0 + 2), ("u2", "i3", 1_599_955_200)]
    assert loaded.interactions["source_row"].to_list() == [1, 2, 3, 4]
    assert loaded.interactions["event"].to_list() == ["purchase"] * 4
    assert loaded.items is None


def test_table_millis_and_strptime_format(tmp_path: Path) -> None:
    ms = tmp_path / "ms.csv"
    ms.write_text(f"u,i,t\na,x,{T0 * 1000}\nb,y,{T0 * 1000 + 999}\n")
    cols = Columns(user="u", item="i", timestamp="t")
    assert triples(load_source(DataConfig(source="table", path=str(ms), columns=cols))) == [("a", "x", T0), ("b", "y", T0)]
    fmt = tmp_path / "fmt.tsv"
    fmt.write_text("u\ti\tt\na\tx\t13/09/2020 12:26\n")
    cols = Columns(user="u", item="i", timestamp="t", timestamp_format="%d/%m/%Y %H:%M")
    assert triples(load_source(DataConfig(source="table", path=str(fmt), columns=cols))) == [("a", "x", T0 - 40)]


def test_table_mapping_event_quantity_price_and_catalogue(tmp_path: Path) -> None:
    log = tmp_path / "events.csv"
    log.write_text("customer,sku,when,kind,qty,unit\n"
                   f"c1,S1,{T0},View,1,$2.50\n"
                   f"c1,S2,{T0 + 5},cart,2,3\n")
    cat = tmp_path / "items.csv"
    cat.write_text("sku,name,maker,cats,price\nS1,Red mug,Acme,Home | Kitchen,$12.99\nS3,Cold item,,,\n")
    cols = Columns(user="customer", item="sku", timestamp="when", event="kind", quantity="qty", price="unit",
                   item_title="name", item_brand="maker", item_categories="cats", item_description=None)
    loaded = load_source(DataConfig(source="table", path=str(log), items_path=str(cat), columns=cols))
    check(loaded)
    assert loaded.interactions.select("event", "quantity", "price").rows() == [("view", 1.0, 2.5), ("cart", 2.0, 3.0)]
    expected = pl.DataFrame({"item_id": ["S1", "S3"], "title": ["Red mug", "Cold item"], "brand": ["Acme", None],
                             "categories": [["Home", "Kitchen"], []], "description": [None, None],
                             "price": [12.99, None]}, schema=ITEMS)
    assert_frame_equal(loaded.items, expected)


def test_table_parquet_jsonl_and_folder(tmp_path: Path) -> None:
    d = tmp_path / "logs"
    d.mkdir()
    pl.DataFrame({"user_id": [1, 2], "item_id": ["a", "b"], "timestamp": [T0, T0 + 1]}).write_parquet(d / "p1.parquet")
    (d / "p2.jsonl").write_text(json.dumps({"user_id": "3", "item_id": "c", "timestamp": T0 + 2}) + "\n")
    (d / "notes.md").write_text("ignored: not a log format")
    loaded = load_source(DataConfig(source="table", path=str(d)))
    check(loaded)
    assert sorted(triples(loaded)) == [("1", "a", T0), ("2", "b", T0 + 1), ("3", "c", T0 + 2)]
    glob = load_source(DataConfig(source="table", path=str(d / "*.parquet")))
    assert glob.n_read == 2


def test_table_parquet_datetime_and_float_ids(tmp_path: Path) -> None:
    import datetime as dt

    f = tmp_path / "log.parquet"
    pl.DataFrame({"user_id": [17850.0, None], "item_id": ["a", "b"],
                  "timestamp": [dt.datetime(2020, 9, 13, 12, 26, 40)] * 2}).write_parquet(f)
    loaded = load_source(DataConfig(source="table", path=str(f)))
    check(loaded)
    assert triples(loaded) == [("17850", "a", T0)]
    assert loaded.quarantine.select("row", "column", "reason").rows() == [(2, "user_id", "missing user id")]


def _gz(path: Path, lines: list[str]) -> Path:
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    return path


def test_amazon_2014_reviews_and_loose_meta(tmp_path: Path) -> None:
    reviews = _gz(tmp_path / "reviews_Beauty_5.json.gz", [
        json.dumps({"reviewerID": "A1", "asin": "B01", "overall": 5.0, "unixReviewTime": T0, "reviewText": "ok"}),
        json.dumps({"reviewerID": "A1", "asin": "B02", "overall": 4.0, "unixReviewTime": T0 + 86400}),
    ])
    meta = _gz(tmp_path / "meta_Beauty.json.gz", [
        "{'asin': 'B01', 'title': 'Rose Lipstick', 'brand': 'Acme', 'price': 12.99, "
        "'categories': [['Beauty', 'Makeup', 'Lips'], ['Beauty', 'Gifts']], 'description': 'Red.'}",
        "{'asin': 'B02', 'categories': [['Beauty']]}",
    ])
    loaded = load_source(DataConfig(source="amazon", path=str(reviews), items_path=str(meta)))
    check(loaded)
    assert triples(loaded) == [("A1", "B01", T0), ("A1", "B02", T0 + 86400)]
    assert set(loaded.interactions["event"]) == {"review"}
    expected = pl.DataFrame({"item_id": ["B01", "B02"], "title": ["Rose Lipstick", None], "brand": ["Acme", None],
                             "categories": [["Beauty", "Makeup", "Lips", "Gifts"], ["Beauty"]],
                             "description": ["Red.", None], "price": [12.99, None]}, schema=ITEMS)
    assert_frame_equal(loaded.items, expected)


def test_amazon_2018_meta_fields(tmp_path: Path) -> None:
    reviews = tmp_path / "All_Beauty.json"
    reviews.write_text(json.dumps({"reviewerID": "A9", "asin": "X1", "overall": 3.0, "unixReviewTime": T0,
                                   "style": {"Size:": " 1"}, "vote": "2"}) + "\n")
    meta = tmp_path / "meta_All_Beauty.json"
    meta.write_text(json.dumps({"asin": "X1", "title": "Soap", "brand": "B", "category": ["Beauty", "Bath"],
                                "description": ["Gentle", "soap."], "price": "$1,299.00"}) + "\n")
    loaded = load_source(DataConfig(source="amazon", path=str(reviews), items_path=str(meta)))
    check(loaded)
    assert loaded.items.row(0) == ("X1", "Soap", "B", ["Beauty", "Bath"], "Gentle soap.", 1299.0)


def test_amazon_2023_names_and_millis(tmp_path: Path) -> None:
    reviews = tmp_path / "Beauty.jsonl"
    reviews.write_text("\n".join(json.dumps(r) for r in [
        {"user_id": "U1", "parent_asin": "P1", "asin": "V1", "timestamp": T0 * 1000 + 500, "rating": 5.0},
        {"user_id": "U1", "asin": "V2", "timestamp": T0 * 1000 + 2000, "rating": 1.0},
    ]) + "\n")
    meta = tmp_path / "meta_Beauty.jsonl"
    meta.write_text(json.dumps({"parent_asin": "P1", "title": "Serum", "store": "Brandy", "main_category": "All Beauty",
                                "categories": [], "description": ["Light", "serum"], "price": None}) + "\n")
    loaded = load_source(DataConfig(source="amazon", path=str(reviews), items_path=str(meta)))
    check(loaded)
    assert triples(loaded) == [("U1", "P1", T0), ("U1", "V2", T0 + 2)]
    assert loaded.items.row(0) == ("P1", "Serum", "Brandy", ["All Beauty"], "Light serum", None)


def test_recbole_inter_and_item(tmp_path: Path) -> None:
    inter = tmp_path / "shop.inter"
    inter.write_text("user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
                     f"1\t10\t5\t{T0}\n2\t11\t3\t{T0 + 1}.0\n")
    (tmp_path / "shop.item").write_text("item_id:token\ttitle:token_seq\tcategories:token_seq\tprice:float\n"
                                        "10\tred mug\tHome Kitchen\t9.5\n11\tblue cup\tHome\t\n")
    loaded = load_source(DataConfig(source="recbole", path=str(inter)))
    check(loaded)
    assert triples(loaded) == [("1", "10", T0), ("2", "11", T0 + 1)]
    assert loaded.items.rows() == [("10", "red mug", None, ["Home", "Kitchen"], None, 9.5),
                                   ("11", "blue cup", None, ["Home"], None, None)]


def test_recbole_without_timestamp_uses_row_order(tmp_path: Path) -> None:
    inter = tmp_path / "x.inter"
    inter.write_text("user_id:token\titem_id:token\na\tp\na\tq\n")
    loaded = load_source(DataConfig(source="recbole", path=str(inter)))
    check(loaded)
    assert triples(loaded) == [("a", "p", 1), ("a", "q", 2)]
    assert loaded.items is None


UCI_HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"


def test_uci_rules_on_a_tiny_sheet(tmp_path: Path) -> None:
    f = tmp_path / "retail.csv"
    f.write_text(UCI_HEADER +
                 "536365,85123a ,WHITE HEART,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom\n"  # 1 kept
                 "536366,85123A,WHITE  HEART.,2,12/1/2010 8:28,2.65,17850.0,United Kingdom\n"  # 2 kept (M/D/Y)
                 "536367,22633,HAND WARMER,6,2010-12-01 08:34:00,1.85,,United Kingdom\n"  # 3 guest
                 "C536379,85123A,WHITE HEART,-1,2010-12-01 09:41:00,2.55,17850.0,United Kingdom\n"  # 4 cancel
                 "536370,POST,POSTAGE,3,2010-12-01 08:45:00,18.0,12583.0,France\n"  # 5 not product
                 "536371,gift_0001_20,Voucher,1,2010-12-01 08:45:00,17.0,12583.0,France\n"  # 6 not product
                 "536372,22633,HAND WARMER,1,2010-12-01 08:50:00,0.0,12583.0,France\n"  # 7 zero price
                 "A563185,22633,Adjust bad debt,1,2011-08-12 14:50:00,5.0,12583.0,United Kingdom\n"  # 8 'A'
                 "536365,85123A,WHITE HEART,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom\n")  # 9 dup of 1
    loaded = load_source(DataConfig(source="uci", path=str(f)))
    check(loaded)
    assert loaded.interactions.select("user_id", "item_id", "timestamp", "event", "quantity", "price").rows() == [
        ("17850", "85123A", 1291191960, "purchase", 6.0, 2.55),
        ("17850", "85123A", 1291192080, "purchase", 2.0, 2.65)]
    assert loaded.quarantine.select("row", "reason").rows() == [
        (3, "guest checkout: no customer id"), (4, "cancellation ('C' invoice)"),
        (5, "not a product (postage, fee, adjustment or voucher)"),
        (6, "not a product (postage, fee, adjustment or voucher)"), (7, "zero or negative unit price"),
        (8, "bad-debt adjustment ('A' invoice)"),
        (9, "duplicate row (same user, item, time, event, quantity, price)")]
    # catalogue: products sold at a positive price (guest sales too); most frequent title, median price
    assert loaded.items.select("item_id", "title", "price").rows() == [
        ("22633", "HAND WARMER", 1.85), ("85123A", "WHITE HEART", 2.55)]


def test_uci_cancellations_kept_as_events_when_asked(tmp_path: Path) -> None:
    f = tmp_path / "retail.csv"
    f.write_text(UCI_HEADER + "C536379,85123A,WHITE HEART,-1,2010-12-01 09:41:00,2.55,17850.0,United Kingdom\n")
    loaded = load_source(DataConfig(source="uci", path=str(f), drop_cancellations=False))
    check(loaded)
    assert loaded.interactions.select("event", "quantity").rows() == [("cancel", -1.0)]
