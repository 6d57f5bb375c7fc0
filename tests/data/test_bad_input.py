"""Malformed input: every case ends in a clear DataError (file + column named) or in quarantined rows with
``read = kept + quarantined``. Select with ``pytest -k bad_input``."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recsys.data.config import Columns, DataConfig
from recsys.data.errors import DataError
from recsys.data.loaders import load_source
from recsys.data.prepare import prepare
from recsys.data.schema import Loaded

T0 = 1_600_000_000
HEADER = "user_id,item_id,timestamp\n"


def table(path: Path, **kw: object) -> Loaded:
    loaded = load_source(DataConfig(source="table", path=str(path), **kw))  # type: ignore[arg-type]
    assert loaded.n_read == loaded.interactions.height + loaded.quarantine.height
    rows = sorted([*loaded.interactions["source_row"], *loaded.quarantine["row"]])
    assert rows == sorted(set(rows)), "a row is both kept and quarantined, or twice in quarantine"
    return loaded


def reasons(loaded: Loaded) -> list[tuple[int, str]]:
    return sorted(loaded.quarantine.select("row", "reason").iter_rows())


def raises(path: Path, column: str | None, **kw: object) -> str:
    with pytest.raises(DataError) as e:
        load_source(DataConfig(path=str(path), **{"source": "table", **kw}))  # type: ignore[arg-type]
    msg = str(e.value)
    assert path.name in msg, msg
    if column:
        assert f"'{column}'" in msg, msg
    assert "Traceback" not in msg and len(msg) < 600
    return msg


def write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


# --------------------------------------------------------------------------- whole-file errors
def test_bad_input_csv_missing_column(tmp_path: Path) -> None:
    msg = raises(write(tmp_path / "a.csv", f"user_id,timestamp\nu,{T0}\n"), "item_id")
    assert "data.columns.item" in msg


def test_bad_input_csv_renamed_column_suggests_the_near_name(tmp_path: Path) -> None:
    msg = raises(write(tmp_path / "a.csv", f"userid,item_id,timestamp\nu,i,{T0}\n"), "user_id")
    assert "Did you mean 'userid'" in msg and "data.columns.user='userid'" in msg


def test_bad_input_csv_empty_file(tmp_path: Path) -> None:
    assert "empty" in raises(write(tmp_path / "a.csv", b""), None)


def test_bad_input_csv_header_only(tmp_path: Path) -> None:
    assert "no data rows" in raises(write(tmp_path / "a.csv", HEADER), None)


def test_bad_input_csv_ragged_row_is_quarantined_with_its_row(tmp_path: Path) -> None:
    loaded = table(write(tmp_path / "a.csv", HEADER + f"u,i,{T0}\nu,i,{T0},extra\nu,j,{T0}\n"))
    assert loaded.interactions["source_row"].to_list() == [1, 3]
    assert loaded.quarantine.select("row", "column", "reason").rows() == [
        (2, "(row)", "more fields than the header (an unquoted separator inside a field?)")]


def test_bad_input_missing_file_and_unsupported_extension(tmp_path: Path) -> None:
    assert "does not exist" in raises(tmp_path / "nope.csv", None)
    assert "unsupported file type" in raises(write(tmp_path / "log.xlsx", b"PK\x03\x04"), None)


def test_bad_input_parquet_that_is_really_csv(tmp_path: Path) -> None:
    assert "cannot be read as PARQUET" in raises(write(tmp_path / "a.parquet", HEADER + f"u,i,{T0}\n"), None)


def test_bad_input_parquet_garbage_bytes(tmp_path: Path) -> None:
    raises(write(tmp_path / "a.parquet", bytes(range(256)) * 10), None)


def test_bad_input_parquet_missing_column(tmp_path: Path) -> None:
    f = tmp_path / "a.parquet"
    pl.DataFrame({"user_id": ["u"], "item": ["i"], "timestamp": [T0]}).write_parquet(f)
    assert "Did you mean 'item'" in raises(f, "item_id")


def test_bad_input_parquet_nested_type_in_id_column(tmp_path: Path) -> None:
    f = tmp_path / "a.parquet"
    pl.DataFrame({"user_id": [["u", "v"]], "item_id": ["i"], "timestamp": [T0]}).write_parquet(f)
    assert "expected text or numbers" in raises(f, "user_id")


def test_bad_input_jsonl_empty_and_missing_field(tmp_path: Path) -> None:
    assert "empty" in raises(write(tmp_path / "a.jsonl", b"\n\n"), None)
    raises(write(tmp_path / "b.jsonl", json.dumps({"user_id": "u", "ts": T0, "item_id": "i"}) + "\n"), "timestamp")


def test_bad_input_amazon_file_that_is_not_amazon(tmp_path: Path) -> None:
    f = write(tmp_path / "reviews.json", json.dumps({"customer": "u", "product": "p"}) + "\n")
    msg = raises(f, "reviewerID", source="amazon")
    assert "data.source=table" in msg


def test_bad_input_recbole_header_without_types(tmp_path: Path) -> None:
    f = write(tmp_path / "x.inter", "user_id\titem_id:token\nu\ti\n")
    raises(f, "user_id", source="recbole")


def test_bad_input_uci_missing_customer_column(tmp_path: Path) -> None:
    f = write(tmp_path / "retail.csv", "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerId\n"
              "1,A,x,1,2011-01-01 10:00:00,1.0,5\n")
    msg = raises(f, "CustomerID", source="uci")
    assert "rename it to 'CustomerID'" in msg


# --------------------------------------------------------------------------- quarantined rows
def test_bad_input_csv_wrong_types_and_nulls(tmp_path: Path) -> None:
    f = write(tmp_path / "a.csv", "user_id,item_id,timestamp,qty\n"
              f"u1,i1,{T0},1\n"  # 1 ok
              "u1,i2,yesterday,1\n"  # 2 unparseable time
              f"u1,i3,{T0},two\n"  # 3 bad quantity
              f",i4,{T0},1\n"  # 4 missing user
              f"u1,   ,{T0},1\n"  # 5 blank item
              "u1,i6,,1\n")  # 6 missing time
    loaded = table(f, columns=Columns(quantity="qty"))
    assert loaded.interactions["source_row"].to_list() == [1]
    assert reasons(loaded) == [(2, "unparseable timestamp"), (3, "quantity is not a number"), (4, "missing user id"),
                               (5, "missing item id"), (6, "missing timestamp")]
    assert loaded.quarantine.filter(pl.col("row") == 3)["column"].item() == "qty"


def test_bad_input_csv_duplicates(tmp_path: Path) -> None:
    f = write(tmp_path / "a.csv", HEADER + f"u,i,{T0}\nu,i,{T0}\nu,i,{T0 + 1}\nu,i,{T0}\n")
    loaded = table(f)
    assert loaded.interactions["source_row"].to_list() == [1, 3]
    assert [r for r, _ in reasons(loaded)] == [2, 4]


def test_bad_input_timestamps_in_future_and_before_1970(tmp_path: Path) -> None:
    f = write(tmp_path / "a.csv", HEADER + f"u,i,{T0}\nu,j,4102444800\nu,k,-86400\nu,l,1969-12-31T00:00:00\n")
    loaded = table(f)
    assert reasons(loaded) == [(2, "timestamp in the future"), (3, "timestamp before 1970"),
                               (4, "timestamp before 1970")]


def test_bad_input_negative_quantity_is_a_cancellation(tmp_path: Path) -> None:
    f = write(tmp_path / "a.csv", "user_id,item_id,timestamp,q\n" + f"u,i,{T0},2\nu,i,{T0 + 9},-2\n")
    cols = Columns(quantity="q")
    assert reasons(table(f, columns=cols)) == [(2, "negative quantity (cancellation)")]
    assert table(f, columns=cols, drop_cancellations=False).interactions.height == 2


def test_bad_input_unknown_items_with_require_catalogue(tmp_path: Path) -> None:
    log = write(tmp_path / "a.csv", HEADER + f"u,i1,{T0}\nu,i2,{T0 + 1}\nu,ghost,{T0 + 2}\n")
    cat = write(tmp_path / "items.csv", "item_id,title\ni1,One\ni2,Two\n")
    loaded = table(log, items_path=str(cat), require_catalogue=True)
    prep = prepare(loaded, kcore_k=0, require_catalogue=True)
    assert prep.counts["read"] == 3 == prep.counts["kept"] + prep.counts["quarantined"]
    assert prep.quarantine.select("row", "reason").rows() == [(3, "item not in catalogue")]


def test_bad_input_bom_header_is_accepted(tmp_path: Path) -> None:
    loaded = table(write(tmp_path / "a.csv", b"\xef\xbb\xbf" + (HEADER + f"u,i,{T0}\n").encode()))
    assert loaded.interactions.height == 1


def test_bad_input_non_utf8_bytes(tmp_path: Path) -> None:
    f = write(tmp_path / "a.csv", b"user_id,item_id,timestamp,note\n"
              + f"u,i\xe9,{T0},x\n".encode("latin-1") + f"u,j,{T0},caf\xe9\n".encode("latin-1"))
    loaded = table(f)
    assert reasons(loaded) == [(1, "invalid UTF-8 bytes in item id")]  # the unmapped column does not matter
    j = write(tmp_path / "b.jsonl", b'{"user_id": "u", "item_id": "\xff", "timestamp": 1600000000}\n'
              + json.dumps({"user_id": "u", "item_id": "ok", "timestamp": T0}).encode() + b"\n")
    assert reasons(table(j)) == [(1, "invalid UTF-8 bytes in item id")]


def test_bad_input_enormous_fields(tmp_path: Path) -> None:
    big = "x" * 1_000_000
    f = write(tmp_path / "a.csv", f"user_id,item_id,timestamp,note\nu,i,{T0},{big}\nu,{big},{T0},\n")
    loaded = table(f)
    assert loaded.interactions["source_row"].to_list() == [1]
    assert reasons(loaded) == [(2, "item id longer than 512 characters")]
    assert len(loaded.quarantine["raw"].item()) <= 2000


def test_bad_input_unicode_and_control_characters(tmp_path: Path) -> None:
    f = tmp_path / "a.parquet"
    pl.DataFrame({"user_id": ["ユーザー", "u\x00", "u\tv", "😀"], "item_id": ["é", "i", "i", "i\x7f"],
                  "timestamp": [T0] * 4}).write_parquet(f)
    loaded = table(f)
    assert loaded.interactions.select("user_id", "item_id").rows() == [("ユーザー", "é")]
    assert reasons(loaded) == [(2, "control character in user id"), (3, "control character in user id"),
                               (4, "control character in item id")]


def test_bad_input_ids_that_collide_after_normalisation(tmp_path: Path) -> None:
    nfd = unicodedata.normalize("NFD", "café")
    f = tmp_path / "a.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in [
        {"user_id": "u1", "item_id": "café", "timestamp": T0},
        {"user_id": " u1 ", "item_id": nfd, "timestamp": T0},  # same row after strip + NFC -> duplicate
        {"user_id": "u1\u00a0", "item_id": nfd, "timestamp": T0 + 1},  # NBSP stripped too -> same user
    ]) + "\n")
    loaded = table(f)
    assert loaded.interactions.select("user_id", "item_id", "source_row").rows() == [("u1", "café", 1), ("u1", "café", 3)]
    assert [r for r, _ in reasons(loaded)] == [2]


def test_bad_input_jsonl_garbage_and_blank_lines(tmp_path: Path) -> None:
    good = json.dumps({"user_id": "u", "item_id": "i", "timestamp": T0})
    f = write(tmp_path / "a.jsonl", f"{good}\n\nnot json at all\n[1, 2]\n{{\"user_id\": \"u\", \"item_id\n"
              + json.dumps({"user_id": "u", "item_id": "j", "timestamp": T0}) + "\n")
    loaded = table(f)
    assert loaded.n_read == 5  # the blank line is not a row; rows are numbered by line
    assert loaded.interactions["source_row"].to_list() == [1, 6]
    assert reasons(loaded) == [(r, "not a JSON object (garbage line)") for r in (3, 4, 5)]


def test_bad_input_parquet_nulls_and_string_times(tmp_path: Path) -> None:
    f = tmp_path / "a.parquet"
    pl.DataFrame({"user_id": ["u", None, "u"], "item_id": ["i", "j", "k"],
                  "timestamp": ["2020-09-13T12:26:40", "2020-09-13T12:26:40", "13 Sept"]}).write_parquet(f)
    loaded = table(f)
    assert loaded.interactions["timestamp"].to_list() == [T0]
    assert reasons(loaded) == [(2, "missing user id"), (3, "unparseable timestamp")]


# --------------------------------------------------------------------------- properties
_ids = st.one_of(st.none(), st.sampled_from(["", " ", "u1", " u1", "u\x01", "ü", "u\u0308", "x" * 600]),
                 st.text(max_size=6))
_times = st.one_of(st.none(), st.integers(-10**10, 10**13), st.sampled_from(["2020-01-01", "garbage", "", "1e9"]))
_rows = st.lists(st.tuples(_ids, _ids, _times, st.one_of(st.none(), st.floats(-5, 5), st.just(float("nan")))),
                 min_size=1, max_size=25)


def _frame(rows: list[tuple]) -> pl.DataFrame:
    return pl.DataFrame({"user_id": [r[0] for r in rows], "item_id": [r[1] for r in rows],
                         "timestamp": [None if r[2] is None else str(r[2]) for r in rows],
                         "qty": [r[3] for r in rows]}, schema={"user_id": pl.String, "item_id": pl.String,
                                                                "timestamp": pl.String, "qty": pl.Float64})


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=_rows)
def test_bad_input_property_parquet_counts_add_up(tmp_path: Path, rows: list[tuple]) -> None:
    f = tmp_path / "p.parquet"
    _frame(rows).write_parquet(f)
    loaded = table(f, columns=Columns(quantity="qty"))
    assert loaded.n_read == len(rows)
    assert loaded.quarantine["reason"].null_count() == 0
    assert loaded.interactions["user_id"].null_count() == 0 and loaded.interactions["timestamp"].null_count() == 0


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=_rows, garbage=st.lists(st.sampled_from(["{", "x", "[]", "{\"a\": 1}", "null"]), max_size=3))
def test_bad_input_property_jsonl_counts_add_up(tmp_path: Path, rows: list[tuple], garbage: list[str]) -> None:
    lines = [json.dumps(r) for r in _frame(rows).to_dicts()] + garbage
    f = tmp_path / "p.jsonl"
    f.write_text("\n".join(lines) + "\n")
    loaded = table(f)
    assert loaded.n_read == len(lines)
    assert loaded.quarantine["reason"].null_count() == 0
