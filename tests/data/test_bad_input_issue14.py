"""Bad input, second round: mixed time units, JSON arrays, empty results, stale inputs, catalogue text,
encodings, delimiters, hostile ids, catalogue quarantine, UCI Online Retail II. One test per case; each
asserts the exact outcome (rows and reasons, counts that add up, the message naming file/row/column/option).
Select with ``pytest -k bad_input``."""

from __future__ import annotations

import json
import os
from pathlib import Path

import polars as pl
import pytest

from pipelines.prepare import main as prepare_main
from recsys.artifacts import RunDir
from recsys.data import stage
from recsys.data.config import Columns, DataConfig
from recsys.data.errors import DataError
from recsys.data.loaders import load_source
from recsys.data.prepare import prepare
from recsys.data.schema import Loaded

T0 = 1_600_000_000
DAY = 86_400
HEADER = "user_id,item_id,timestamp\n"
DUP = "duplicate catalogue row (the item id's first row is kept)"


def write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def load(path: Path, **kw: object) -> Loaded:
    """Load with source=table and check read = kept + quarantined with every row accounted for once."""
    loaded = load_source(DataConfig(**{"source": "table", "path": str(path), **kw}))  # type: ignore[arg-type]
    assert loaded.n_read == loaded.interactions.height + loaded.quarantine.height
    rows = sorted([*loaded.interactions["source_row"], *loaded.quarantine["row"]])
    assert rows == list(range(1, loaded.n_read + 1)), rows
    if loaded.items_quarantine is not None:
        c = loaded.counters
        assert c["catalogue_read"] == c["catalogue_kept"] + c["catalogue_quarantined"]
        assert c["catalogue_quarantined"] == loaded.items_quarantine.height
        assert c["catalogue_kept"] == loaded.items.height  # type: ignore[union-attr]
    return loaded


def reasons(q: pl.DataFrame) -> list[tuple[int, str]]:
    return sorted(q.select("row", "reason").iter_rows())


def error(**kw: object) -> str:
    with pytest.raises(DataError) as e:
        load_source(DataConfig(**{"source": "table", **kw}))  # type: ignore[arg-type]
    msg = str(e.value)
    assert "Traceback" not in msg and len(msg) < 900, msg
    return msg


def log_of(tmp_path: Path, rows: list[tuple[str, str, int]], name: str = "log.csv") -> Path:
    return write(tmp_path / name, HEADER + "".join(f"{u},{i},{t}\n" for u, i, t in rows))


# --------------------------------------------------------------------------- 4. time units
def test_bad_input_seconds_and_millis_mixed_in_one_column(tmp_path: Path) -> None:
    f = write(tmp_path / "a.csv", HEADER + f"u,a,{T0}\nu,b,{(T0 + 60) * 1000}\nu,c,{T0 + 120}\n"
              f"u,d,{(T0 + 180) * 1000 + 999}\n")
    loaded = load(f)
    assert loaded.interactions["timestamp"].to_list() == [T0, T0 + 60, T0 + 120, T0 + 180]
    assert loaded.quarantine.height == 0
    assert loaded.counters == {"timestamps_from_ms": 2}


def test_bad_input_seconds_micros_and_nanos_mixed_in_a_parquet_int_column(tmp_path: Path) -> None:
    f = tmp_path / "a.parquet"
    pl.DataFrame({"user_id": ["u"] * 3, "item_id": ["a", "b", "c"],
                  "timestamp": [T0, (T0 + 1) * 10**6, (T0 + 2) * 10**9]}).write_parquet(f)
    loaded = load(f)
    assert loaded.interactions["timestamp"].to_list() == [T0, T0 + 1, T0 + 2]
    assert loaded.counters == {"timestamps_from_us": 1, "timestamps_from_ns": 1}


def test_bad_input_millis_only_column_is_counted_as_converted(tmp_path: Path) -> None:
    loaded = load(write(tmp_path / "a.csv", HEADER + f"u,a,{T0 * 1000}\nv,b,{T0 * 1000 + 5000}\n"))
    assert loaded.interactions["timestamp"].to_list() == [T0, T0 + 5]
    assert loaded.counters == {"timestamps_from_ms": 2}


def test_bad_input_converted_timestamps_reach_manifest_and_summary(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    rows = [(u, i, (T0 + k * DAY) * (1000 if k % 2 else 1)) for u in "abc" for k, i in enumerate("wxyz")]
    f = log_of(tmp_path, rows)
    assert prepare_main(["-q", "-o", str(tmp_path / "run"), "source=table", f"path={f}", "kcore=0"]) == 0
    rec = RunDir(tmp_path / "run").stage_record("data")
    assert rec["counts"]["timestamps_from_ms"] == 6 and rec["counts"]["read"] == 12
    assert "  timestamps from ms: 6" in capsys.readouterr().out.splitlines()


# --------------------------------------------------------------------------- 5. JSON arrays, empty results
def _records(n: int) -> list[dict[str, object]]:
    return [{"user_id": f"u{k % 3}", "item_id": f"i{k}", "timestamp": T0 + k} for k in range(n)]


def test_bad_input_json_array_is_read_as_records(tmp_path: Path) -> None:
    loaded = load(write(tmp_path / "a.json", json.dumps(_records(5))))
    assert loaded.n_read == 5 and loaded.quarantine.height == 0
    assert loaded.interactions["item_id"].to_list() == [f"i{k}" for k in range(5)]


def test_bad_input_pretty_printed_json_array_is_not_one_row_per_line(tmp_path: Path) -> None:
    f = write(tmp_path / "a.json", json.dumps(_records(7), indent=2))
    assert f.read_text().count("\n") > 30
    loaded = load(f)
    assert loaded.n_read == 7 and loaded.interactions.height == 7


def test_bad_input_json_array_element_that_is_not_an_object_is_quarantined(tmp_path: Path) -> None:
    recs: list[object] = [*_records(2), [1, 2], "x", {"user_id": "v", "item_id": "z", "timestamp": T0}]
    loaded = load(write(tmp_path / "a.json", json.dumps(recs)))
    assert loaded.interactions["source_row"].to_list() == [1, 2, 5]
    assert reasons(loaded.quarantine) == [(3, "not a JSON object (garbage line)"), (4, "not a JSON object (garbage line)")]


def test_bad_input_truncated_json_array_names_the_position(tmp_path: Path) -> None:
    f = write(tmp_path / "a.json", json.dumps(_records(3), indent=1)[:-20])
    msg = error(path=str(f))
    assert "a.json" in msg and "not a complete JSON array" in msg and "at line" in msg and "column" in msg


def test_bad_input_empty_json_array_has_no_data_rows(tmp_path: Path) -> None:
    msg = error(path=str(write(tmp_path / "a.json", "[]\n")))
    assert "a.json" in msg and "no data rows" in msg


def test_bad_input_json_array_catalogue_is_read_as_records(tmp_path: Path) -> None:
    cat = write(tmp_path / "items.json", json.dumps([{"item_id": "i0", "title": "Zero"},
                                                     {"item_id": "i1", "title": "One"}], indent=2))
    loaded = load(write(tmp_path / "a.json", json.dumps(_records(2))), items_path=str(cat))
    assert loaded.items.select("item_id", "title").rows() == [("i0", "Zero"), ("i1", "One")]  # type: ignore[union-attr]


def test_bad_input_every_row_quarantined_is_an_error_naming_why(tmp_path: Path) -> None:
    f = write(tmp_path / "a.csv", HEADER + f",i,{T0}\nu,,{T0}\nu,i,yesterday\n")
    run = RunDir(tmp_path / "run")
    with pytest.raises(DataError) as e:
        stage.run(DataConfig(source="table", path=str(f), kcore=0), run)
    msg = str(e.value)
    assert "a.csv" in msg and "all 3 rows read were quarantined" in msg and "1 missing user id" in msg
    assert str(run.layout.quarantine) in msg
    assert reasons(pl.read_parquet(run.layout.quarantine)) == [(1, "missing user id"), (2, "missing item id"),
                                                                (3, "unparseable timestamp")]
    assert run.stage_record("data") is None  # nothing recorded: a re-run does the work again


def test_bad_input_prepare_exits_nonzero_when_every_row_is_quarantined(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    f = write(tmp_path / "a.csv", HEADER + f",i,{T0}\n")
    assert prepare_main(["-q", "-o", str(tmp_path / "run"), "source=table", f"path={f}", "kcore=0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("recsys prepare: error: ") and "all 1 rows read were quarantined" in err, err


def test_bad_input_temporal_split_with_empty_train_names_the_windows(tmp_path: Path) -> None:
    f = log_of(tmp_path, [(u, i, T0 + k * 3600) for u in "ab" for k, i in enumerate("xyz")])  # 2 hours
    with pytest.raises(DataError) as e:
        stage.run(DataConfig(source="table", path=str(f), kcore=0, split="temporal"), RunDir(tmp_path / "run"))
    msg = str(e.value)
    assert "the train, valid and test splits are empty" in msg and "spans 0.1 days" in msg and "data.valid_days" in msg


def test_bad_input_leave_one_out_without_3_events_per_user_is_an_error(tmp_path: Path) -> None:
    f = log_of(tmp_path, [("a", "x", T0), ("a", "y", T0 + 1), ("b", "x", T0)])
    with pytest.raises(DataError) as e:
        stage.run(DataConfig(source="table", path=str(f), kcore=0), RunDir(tmp_path / "run"))
    msg = str(e.value)
    assert "the valid and test splits are empty" in msg and "2 users, the longest history has 2" in msg
    assert "data.split=temporal" in msg


# --------------------------------------------------------------------------- 6. stale inputs
def _tiny(tmp_path: Path) -> Path:
    return log_of(tmp_path, [(u, i, T0 + k) for u in "ab" for k, i in enumerate("wxyz")])


def test_bad_input_edited_log_with_same_size_and_mtime_is_not_stale(tmp_path: Path) -> None:
    f = _tiny(tmp_path)
    run = RunDir(tmp_path / "run")
    cfg = DataConfig(source="table", path=str(f), kcore=0)
    assert stage.run(cfg, run)["users"] == 2
    st = f.stat()
    write(f, f.read_text().replace("b,", "c,"))  # same size
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))  # what cp -p / rsync -t / touch -r leave
    assert f.stat().st_size == st.st_size and f.stat().st_mtime_ns == st.st_mtime_ns
    stage.run(cfg, run)
    assert pl.read_parquet(run.layout.users)["user_id"].to_list() == ["a", "c"]


def test_bad_input_unchanged_inputs_are_skipped_and_hashed_in_the_manifest(tmp_path: Path) -> None:
    import hashlib

    f = _tiny(tmp_path)
    run = RunDir(tmp_path / "run")
    cfg = DataConfig(source="table", path=str(f), kcore=0)
    stage.run(cfg, run)
    mtime = run.layout.users.stat().st_mtime_ns
    stage.run(cfg, run)
    assert run.layout.users.stat().st_mtime_ns == mtime  # skipped
    digest = hashlib.blake2b(f.read_bytes(), digest_size=16).hexdigest()
    assert run.stage_record("data")["inputs"] == [{"file": str(f), "bytes": f.stat().st_size, "blake2b": digest}]


# --------------------------------------------------------------------------- 2, 3. no catalogue, unmapped text
def test_bad_input_no_catalogue_with_text_required_is_refused_up_front(tmp_path: Path) -> None:
    missing = tmp_path / "not_read_yet.csv"  # refused before any file is opened
    with pytest.raises(DataError) as e:
        stage.run(DataConfig(source="table", path=str(missing)), RunDir(tmp_path / "run"), require_text=True)
    msg = str(e.value)
    assert "column 'data.items_path'" in msg and "data.items_path is not set" in msg and "recsys prepare" in msg


def test_bad_input_no_catalogue_prepare_alone_works_and_counts_no_text(tmp_path: Path) -> None:
    counts = stage.run(DataConfig(source="table", path=str(_tiny(tmp_path)), kcore=0), RunDir(tmp_path / "run"))
    assert counts["items_with_text"] == 0 and counts["items"] == 4 and "items_not_in_catalogue" not in counts


def test_bad_input_catalogue_without_mapped_text_columns_names_them(tmp_path: Path) -> None:
    cat = write(tmp_path / "items.csv", "item_id,text\nw,Red mug\nx,Blue cup\n")
    loaded = load(_tiny(tmp_path), items_path=str(cat))
    (note,) = loaded.notes
    assert "items.csv" in note and "'title' (data.columns.item_title)" in note
    assert "'description' (data.columns.item_description)" in note and "the file has: item_id, text" in note
    assert "data.columns.item_title=text" in note
    assert loaded.items["title"].null_count() == 2  # type: ignore[index]


def test_bad_input_catalogue_without_text_is_refused_when_text_is_required(tmp_path: Path) -> None:
    cat = write(tmp_path / "items.csv", "item_id,text\nw,Red mug\nx,Blue cup\n")
    run = RunDir(tmp_path / "run")
    cfg = DataConfig(source="table", path=str(_tiny(tmp_path)), items_path=str(cat), kcore=0)
    with pytest.raises(DataError) as e:
        stage.run(cfg, run, require_text=True)
    assert "no item has any text" in str(e.value) and "data.columns.item_title=text" in str(e.value)
    with pytest.raises(DataError):  # the fresh (skipped) stage refuses the same way
        stage.run(cfg, run, require_text=True)
    rec = run.stage_record("data")
    assert rec["counts"]["items_with_text"] == 0 and "data.columns.item_title=text" in rec["notes"][0]


def test_bad_input_catalogue_text_column_mapped_by_option(tmp_path: Path) -> None:
    cat = write(tmp_path / "items.csv", "item_id,text\nw,Red mug\nx,Blue cup\n")
    cfg = DataConfig(source="table", path=str(_tiny(tmp_path)), items_path=str(cat), kcore=0,
                     columns=Columns(item_title="text"))
    counts = stage.run(cfg, RunDir(tmp_path / "run"), require_text=True)
    assert counts["items_with_text"] == 2 and counts["items_not_in_catalogue"] == 2
    assert counts["events_of_items_not_in_catalogue"] == 4


def test_bad_input_catalogue_with_some_text_columns_has_no_note(tmp_path: Path) -> None:
    cat = write(tmp_path / "items.csv", "item_id,title\nw,Red mug\n")
    loaded = load(_tiny(tmp_path), items_path=str(cat))
    assert loaded.notes == () and loaded.items["title"].to_list() == ["Red mug"]  # type: ignore[index]


def test_bad_input_teacher_cache_lookup_of_no_keys(tmp_path: Path) -> None:
    pytest.importorskip("safetensors")
    from recsys.teacher.cache import EmbeddingCache

    found, emb = EmbeddingCache(tmp_path, fingerprint="m").get([])
    assert found.shape == (0,) and emb is None


# --------------------------------------------------------------------------- 9. silent degradation
def test_bad_input_latin1_catalogue_counts_replaced_rows(tmp_path: Path) -> None:
    cat = write(tmp_path / "items.csv", "item_id,title\nw,Caf\xe9 mug\nx,Cr\xe8me\ny,Plain\n".encode("latin-1"))
    loaded = load(_tiny(tmp_path), items_path=str(cat))
    assert loaded.counters["catalogue_rows_with_replaced_bytes"] == 2
    assert loaded.items["title"].to_list()[:2] == ["Caf\ufffd mug", "Cr\ufffdme"]  # type: ignore[index]


def test_bad_input_latin1_catalogue_read_with_data_encoding(tmp_path: Path) -> None:
    cat = write(tmp_path / "items.csv", "item_id,title\nw,Caf\xe9 mug\nx,Cr\xe8me\n".encode("latin-1"))
    loaded = load(_tiny(tmp_path), items_path=str(cat), encoding="latin-1")
    assert loaded.counters["catalogue_rows_with_replaced_bytes"] == 0
    assert loaded.items["title"].to_list() == ["Café mug", "Crème"]  # type: ignore[index]


def test_bad_input_latin1_log_ids_with_data_encoding(tmp_path: Path) -> None:
    f = write(tmp_path / "a.csv", (HEADER + f"Jos\xe9,caf\xe9,{T0}\n").encode("latin-1"))
    assert reasons(load(f).quarantine) == [(1, "invalid UTF-8 bytes in user id")]
    loaded = load(f, encoding="latin-1")
    assert loaded.interactions.select("user_id", "item_id").rows() == [("José", "café")]


def test_bad_input_unknown_encoding_names_the_option(tmp_path: Path) -> None:
    msg = error(path=str(_tiny(tmp_path)), encoding="latin-42")
    assert "unknown text encoding 'latin-42'" in msg and "'data.encoding'" in msg


def test_bad_input_duplicate_catalogue_rows_are_quarantined(tmp_path: Path) -> None:
    cat = write(tmp_path / "items.csv", "item_id,title\nw,First\nx,Other\nw,Second\n w ,Third\n")
    loaded = load(_tiny(tmp_path), items_path=str(cat))
    assert loaded.items.filter(pl.col("item_id") == "w")["title"].to_list() == ["First"]  # type: ignore[union-attr]
    q = loaded.items_quarantine
    assert q.select("source_file", "row", "column", "reason").rows() == [  # type: ignore[union-attr]
        (str(cat), 3, "item_id", DUP), (str(cat), 4, "item_id", DUP)]
    assert q["raw"].to_list()[0] == "item_id=w; title=Second; brand=null; description=null; price=null"  # type: ignore[index]
    assert (loaded.counters["catalogue_read"], loaded.counters["catalogue_quarantined"]) == (4, 2)


def test_bad_input_catalogue_quarantine_lands_in_the_quarantine_file(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    cat = write(tmp_path / "items.csv", "item_id,title\nw,First\n,No id\nw,Again\n")
    f = _tiny(tmp_path)
    assert prepare_main(["-q", "-o", str(tmp_path / "run"), "source=table", f"path={f}", f"items_path={cat}",
                         "kcore=0"]) == 0
    run = RunDir(tmp_path / "run")
    q = pl.read_parquet(run.layout.quarantine)
    assert reasons(q.filter(pl.col("source_file") == str(cat))) == [(2, "missing item id"), (3, DUP)]
    counts = run.stage_record("data")["counts"]
    assert (counts["read"], counts["kept"], counts["quarantined"]) == (8, 8, 0)
    assert (counts["catalogue_read"], counts["catalogue_kept"], counts["catalogue_quarantined"]) == (3, 1, 2)
    out = capsys.readouterr().out.splitlines()
    at = out.index("catalogue: read 3 = kept 1 + quarantined 2")
    assert [ln.split(None, 2)[1:] for ln in out[at + 1:at + 3]] == [["1", DUP], ["1", "missing item id"]]
    assert run.stage_record("data")["quarantine_reasons"] == {}
    assert run.stage_record("data")["catalogue_quarantine_reasons"] == {"missing item id": 1, DUP: 1}


def test_bad_input_log_items_absent_from_catalogue_are_counted(tmp_path: Path) -> None:
    cat = write(tmp_path / "items.csv", "item_id,title\nw,W\nx,X\nq,Only in catalogue\n")
    prep = prepare(load(_tiny(tmp_path), items_path=str(cat)), kcore_k=0, require_catalogue=False)
    assert (prep.counts["items_not_in_catalogue"], prep.counts["events_of_items_not_in_catalogue"]) == (2, 4)
    assert prep.counts["items"] == 5 and prep.counts["items_with_text"] == 3


def test_bad_input_json_object_ids_in_a_log_are_quarantined(tmp_path: Path) -> None:
    f = tmp_path / "a.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in [
        {"user_id": {"id": 7}, "item_id": "i", "timestamp": T0},
        {"user_id": "u", "item_id": ["i", "j"], "timestamp": T0},
        {"user_id": "u", "item_id": "i", "timestamp": T0}]) + "\n")
    loaded = load(f)
    assert reasons(loaded.quarantine) == [(1, "user id is a JSON object or list, not a scalar"),
                                          (2, "item id is a JSON object or list, not a scalar")]


def test_bad_input_json_object_id_in_a_catalogue_is_quarantined(tmp_path: Path) -> None:
    cat = tmp_path / "items.jsonl"
    cat.write_text(json.dumps({"item_id": {"sku": "w"}, "title": "T"}) + "\n"
                   + json.dumps({"item_id": "x", "title": "X"}) + "\n")
    loaded = load(_tiny(tmp_path), items_path=str(cat))
    assert reasons(loaded.items_quarantine) == [(1, "item id is a JSON object or list, not a scalar")]  # type: ignore[arg-type]
    assert loaded.items["item_id"].to_list() == ["x"]  # type: ignore[index]


def test_bad_input_semicolon_csv_is_reported_as_such(tmp_path: Path) -> None:
    f = write(tmp_path / "a.csv", f"user_id;item_id;timestamp\nu;i;{T0}\n")
    msg = error(path=str(f))
    assert "a.csv" in msg and "looks ';'-separated, not ','-separated" in msg and "data.delimiter=';'" in msg


def test_bad_input_tab_separated_csv_is_reported_as_such(tmp_path: Path) -> None:
    f = write(tmp_path / "a.csv", f"user_id\titem_id\ttimestamp\nu\ti\t{T0}\n")
    msg = error(path=str(f))
    assert "looks tab-separated" in msg and "data.delimiter='tab'" in msg


def test_bad_input_data_delimiter_reads_semicolons(tmp_path: Path) -> None:
    f = write(tmp_path / "a.csv", f"user_id;item_id;timestamp\nu;i;{T0}\nu;j;{T0 + 1}\n")
    assert load(f, delimiter=";").interactions["item_id"].to_list() == ["i", "j"]


def test_bad_input_data_delimiter_tab_for_the_catalogue(tmp_path: Path) -> None:
    cat = write(tmp_path / "items.csv", "item_id\ttitle\nw\tA, with comma\n")
    log = write(tmp_path / "a.csv", f"user_id\titem_id\ttimestamp\nu\tw\t{T0}\n")
    loaded = load(log, items_path=str(cat), delimiter="tab")
    assert loaded.items["title"].to_list() == ["A, with comma"]  # type: ignore[index]


def test_bad_input_semicolon_catalogue_is_reported_as_such(tmp_path: Path) -> None:
    cat = write(tmp_path / "items.csv", "item_id;title\nw;W\n")
    msg = error(path=str(_tiny(tmp_path)), items_path=str(cat))
    assert "items.csv" in msg and "';'-separated" in msg


def test_bad_input_bidi_override_and_invisible_characters_in_ids(tmp_path: Path) -> None:
    f = tmp_path / "a.parquet"
    pl.DataFrame({"user_id": ["u\u202egnp.exe", "u", "u\u200b", "u\u2066x", "u"],
                  "item_id": ["i", "i\ufeffj", "i", "i", "i\u200dj"],  # ZWJ (Indic/Persian spelling) is allowed
                  "timestamp": [T0, T0 + 1, T0 + 2, T0 + 3, T0 + 4]}).write_parquet(f)
    loaded = load(f)
    assert reasons(loaded.quarantine) == [(1, "bidirectional-override or invisible character in user id"),
                                          (2, "bidirectional-override or invisible character in item id"),
                                          (3, "bidirectional-override or invisible character in user id"),
                                          (4, "bidirectional-override or invisible character in user id")]
    assert loaded.interactions["source_row"].to_list() == [5]


def test_bad_input_c1_control_character_in_an_id(tmp_path: Path) -> None:
    f = tmp_path / "a.parquet"
    pl.DataFrame({"user_id": ["u\x85v", "u"], "item_id": ["i", "i\x9bj"], "timestamp": [T0, T0]}).write_parquet(f)
    assert reasons(load(f).quarantine) == [(1, "control character in user id"), (2, "control character in item id")]


def test_bad_input_overlong_and_hostile_catalogue_ids_are_quarantined(tmp_path: Path) -> None:
    cat = tmp_path / "items.parquet"
    pl.DataFrame({"item_id": ["x" * 10_000, "w\u202e", "x\x00", "w", "bad\ufffd"],
                  "title": ["long", "bidi", "nul", "ok", "bytes"]}).write_parquet(cat)
    loaded = load(_tiny(tmp_path), items_path=str(cat))
    assert reasons(loaded.items_quarantine) == [  # type: ignore[arg-type]
        (1, "item id longer than 512 characters"), (2, "bidirectional-override or invisible character in item id"),
        (3, "control character in item id"), (5, "invalid UTF-8 bytes in item id")]
    assert loaded.items.select("item_id", "title").rows() == [("w", "ok")]  # type: ignore[union-attr]
    assert len(loaded.items_quarantine["raw"][0]) == 2000  # type: ignore[index]


def test_bad_input_catalogue_row_without_id_is_quarantined_not_logged(tmp_path: Path) -> None:
    cat = write(tmp_path / "items.csv", "item_id,title\nw,W\n,Orphan title\n   ,Blank id\n")
    loaded = load(_tiny(tmp_path), items_path=str(cat))
    assert reasons(loaded.items_quarantine) == [(2, "missing item id"), (3, "missing item id")]  # type: ignore[arg-type]
    assert loaded.items_quarantine["raw"][0].startswith("item_id=null; title=Orphan title")  # type: ignore[index]


def test_bad_input_amazon_metadata_garbage_lines_are_quarantined(tmp_path: Path) -> None:
    reviews = write(tmp_path / "reviews.json", "".join(
        json.dumps({"reviewerID": u, "asin": a, "unixReviewTime": T0 + k, "overall": 5}) + "\n"
        for k, (u, a) in enumerate([("r1", "A1"), ("r1", "A2")])))
    meta = write(tmp_path / "meta.json", "{'asin': 'A1', 'title': 'One'}\nnot a record\n"
                 "{'title': 'no asin'}\n{'asin': 'A2', 'title': 'Two'}\n")
    loaded = load_source(DataConfig(source="amazon", path=str(reviews), items_path=str(meta)))
    assert reasons(loaded.items_quarantine) == [(2, "not a JSON object (garbage line)"), (3, "missing item id")]  # type: ignore[arg-type]
    assert loaded.items["item_id"].to_list() == ["A1", "A2"]  # type: ignore[index]
    assert loaded.counters["catalogue_read"] == 4 == loaded.counters["catalogue_kept"] + 2


def test_bad_input_ragged_catalogue_row_is_quarantined(tmp_path: Path) -> None:
    cat = write(tmp_path / "items.csv", 'item_id,title\nw,W\nx,Mug, blue\ny,"Cup, red"\n')
    loaded = load(_tiny(tmp_path), items_path=str(cat))
    assert loaded.items_quarantine.select("row", "column", "reason").rows() == [  # type: ignore[union-attr]
        (2, "(row)", "more fields than the header (an unquoted separator inside a field?)")]
    assert loaded.items.select("item_id", "title").rows() == [("w", "W"), ("y", "Cup, red")]  # type: ignore[union-attr]


def test_bad_input_ragged_tsv_row_is_quarantined(tmp_path: Path) -> None:
    f = write(tmp_path / "a.tsv", f"user_id\titem_id\ttimestamp\nu\ti\t{T0}\t\tx\nu\tj\t{T0}\n")
    loaded = load(f)
    assert reasons(loaded.quarantine) == [(1, "more fields than the header (an unquoted separator inside a field?)")]


# --------------------------------------------------------------------------- 10. UCI Online Retail II
UCI_OLD = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
UCI_II = "Invoice,StockCode,Description,Quantity,InvoiceDate,Price,Customer ID,Country\n"
UCI_ROWS = ("489434,85048,CHRISTMAS LIGHTS,12,2009-12-01 07:45:00,6.95,13085.0,United Kingdom\n"
            "489434,79323P,PINK CHERRY LIGHTS,12,2009-12-01 07:45:00,6.75,13085.0,United Kingdom\n"
            "C489449,22087,PAPER BUNTING,-12,2009-12-01 10:33:00,2.95,16321.0,Australia\n"
            "489436,POST,POSTAGE,1,2009-12-01 09:06:00,18.0,13078.0,United Kingdom\n"
            "489437,21523,DOORMAT,1,2009-12-01 09:08:00,5.95,,United Kingdom\n")


def test_bad_input_uci_online_retail_ii_names_are_accepted(tmp_path: Path) -> None:
    old = load_source(DataConfig(source="uci", path=str(write(tmp_path / "old.csv", UCI_OLD + UCI_ROWS))))
    new = load_source(DataConfig(source="uci", path=str(write(tmp_path / "ii.csv", UCI_II + UCI_ROWS))))
    assert new.n_read == 5 == new.interactions.height + new.quarantine.height
    cols = ["user_id", "item_id", "timestamp", "event", "quantity", "price"]
    assert new.interactions.select(cols).rows() == old.interactions.select(cols).rows()
    assert new.interactions.select("user_id", "item_id").rows() == [("13085", "85048"), ("13085", "79323P")]
    assert new.quarantine.select("row", "column", "reason").rows() == [
        (3, "Invoice", "cancellation ('C' invoice)"),
        (4, "StockCode", "not a product (postage, fee, adjustment or voucher)"),
        (5, "Customer ID", "guest checkout: no customer id")]
    # the catalogue: products sold at a positive price, guest sales included
    assert new.items.select("item_id", "title").rows() == old.items.select("item_id", "title").rows() == [  # type: ignore[union-attr]
        ("21523", "DOORMAT"), ("79323P", "PINK CHERRY LIGHTS"), ("85048", "CHRISTMAS LIGHTS")]


def test_bad_input_uci_online_retail_ii_parquet_from_the_shared_copy(tmp_path: Path) -> None:
    src = Path(__file__).resolve().parents[3] / "shared/data/uci_online_retail/raw/online_retail_2010-12_2011-12.parquet"
    if not src.is_file():
        pytest.skip(f"{src} not present")
    head = pl.read_parquet(src).head(3000)
    head.write_parquet(tmp_path / "old.parquet")
    head.rename({"InvoiceNo": "Invoice", "UnitPrice": "Price", "CustomerID": "Customer ID"}).write_parquet(
        tmp_path / "ii.parquet")
    old = load_source(DataConfig(source="uci", path=str(tmp_path / "old.parquet")))
    new = load_source(DataConfig(source="uci", path=str(tmp_path / "ii.parquet")))
    assert new.n_read == 3000 == new.interactions.height + new.quarantine.height
    assert new.interactions.drop("source_file").equals(old.interactions.drop("source_file"))
    assert new.quarantine.select("row", "reason").equals(old.quarantine.select("row", "reason"))


def test_bad_input_uci_file_with_neither_layout_names_both(tmp_path: Path) -> None:
    f = write(tmp_path / "retail.csv", "Invoice,StockCode,Description,Quantity,InvoiceDate,Price,Customer,Country\n"
              "1,A,x,1,2011-01-01 10:00:00,1.0,5,UK\n")
    with pytest.raises(DataError) as e:
        load_source(DataConfig(source="uci", path=str(f)))
    msg = str(e.value)
    assert "retail.csv" in msg and "'InvoiceNo'" in msg and "Online Retail II" in msg


def test_bad_input_appended_batch_counts_catalogue_and_unknown_items(tmp_path: Path) -> None:
    from recsys.data.append import append

    base = RunDir(tmp_path / "base")
    stage.run(DataConfig(source="table", path=str(_tiny(tmp_path)), kcore=0), base)
    batch = log_of(tmp_path, [("a", "w", T0 + DAY), ("c", "new", (T0 + DAY) * 1000)], name="batch.csv")
    cat = write(tmp_path / "items.csv", "item_id,title\nw,W\nw,W again\n")
    a = append(base=base.layout, loaded=load(batch, items_path=str(cat)), kcore_k=0, require_catalogue=False)
    assert (a.counts["read"], a.counts["kept"], a.counts["quarantined"]) == (2, 2, 0)
    assert a.counts["timestamps_from_ms"] == 1 and a.counts["items_not_in_catalogue"] == 1
    assert (a.counts["catalogue_read"], a.counts["catalogue_quarantined"]) == (2, 1)
    assert reasons(a.quarantine) == [(2, DUP)]


# --------------------------------------------------------------------------- more of the same families
def test_bad_input_delimiter_of_several_characters_names_the_option(tmp_path: Path) -> None:
    msg = error(path=str(_tiny(tmp_path)), delimiter=";;")
    assert "data.delimiter must be one character (got ';;')" in msg and "'data.delimiter'" in msg


def test_bad_input_jsonl_whose_first_line_is_a_list_stays_line_by_line(tmp_path: Path) -> None:
    f = write(tmp_path / "a.jsonl", "[1, 2]\n" + "".join(json.dumps(r) + "\n" for r in _records(2)))
    loaded = load(f)
    assert loaded.interactions["source_row"].to_list() == [2, 3]
    assert reasons(loaded.quarantine) == [(1, "not a JSON object (garbage line)")]


def test_bad_input_gzipped_csv_ragged_row_is_quarantined(tmp_path: Path) -> None:
    import gzip

    f = write(tmp_path / "a.csv.gz", gzip.compress((HEADER + f"u,i,{T0}\nu,j,{T0},x,y\n").encode()))
    loaded = load(f)
    assert loaded.interactions["item_id"].to_list() == ["i"]
    assert reasons(loaded.quarantine) == [(2, "more fields than the header (an unquoted separator inside a field?)")]


def test_bad_input_latin1_amazon_metadata_with_data_encoding(tmp_path: Path) -> None:
    reviews = write(tmp_path / "reviews.json", json.dumps({"reviewerID": "r", "asin": "A1", "unixReviewTime": T0})
                    + "\n")
    meta = write(tmp_path / "meta.json", "{'asin': 'A1', 'title': 'Cr\xe8me br\xfbl\xe9e'}\n".encode("latin-1"))
    bad = load_source(DataConfig(source="amazon", path=str(reviews), items_path=str(meta)))
    assert bad.counters["catalogue_rows_with_replaced_bytes"] == 1
    good = load_source(DataConfig(source="amazon", path=str(reviews), items_path=str(meta), encoding="latin-1"))
    assert good.items["title"].to_list() == ["Crème brûlée"]  # type: ignore[index]
    assert good.counters["catalogue_rows_with_replaced_bytes"] == 0


def test_bad_input_recbole_duplicate_and_latin1_item_rows(tmp_path: Path) -> None:
    inter = write(tmp_path / "shop.inter", f"user_id:token\titem_id:token\ttimestamp:float\n1\t10\t{T0}\n")
    write(tmp_path / "shop.item", "item_id:token\ttitle:token_seq\n10\tcaf\xe9\n10\tagain\n\ttitle only\n"
          .encode("latin-1"))
    loaded = load_source(DataConfig(source="recbole", path=str(inter), encoding="latin-1"))
    assert loaded.items.select("item_id", "title").rows() == [("10", "café")]  # type: ignore[union-attr]
    assert reasons(loaded.items_quarantine) == [(2, DUP), (3, "missing item id")]  # type: ignore[arg-type]
    assert loaded.items_quarantine["source_file"].unique().to_list() == [str(tmp_path / "shop.item")]  # type: ignore[index]


def test_bad_input_recbole_item_file_without_mapped_text_fields_names_them(tmp_path: Path) -> None:
    inter = write(tmp_path / "shop.inter", f"user_id:token\titem_id:token\ttimestamp:float\n1\t10\t{T0}\n")
    write(tmp_path / "shop.item", "item_id:token\tname:token_seq\n10\tred mug\n")
    loaded = load_source(DataConfig(source="recbole", path=str(inter)))
    (note,) = loaded.notes
    assert "shop.item" in note and "the file has: item_id, name" in note and "data.columns.item_title=name" in note
    counts = prepare(loaded, kcore_k=0, require_catalogue=False).counts
    assert counts["items_with_text"] == 0


def test_bad_input_amazon_reviews_as_one_json_array(tmp_path: Path) -> None:
    recs = [{"reviewerID": "r1", "asin": f"A{k}", "unixReviewTime": T0 + k, "overall": 5} for k in range(3)]
    f = write(tmp_path / "reviews.json", json.dumps([*recs, 7], indent=2))
    loaded = load_source(DataConfig(source="amazon", path=str(f)))
    assert loaded.n_read == 4 == loaded.interactions.height + loaded.quarantine.height
    assert loaded.interactions["item_id"].to_list() == ["A0", "A1", "A2"]
    assert reasons(loaded.quarantine) == [(4, "not a JSON object (garbage line)")]


def test_bad_input_prepare_summary_prints_the_catalogue_note(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    cat = write(tmp_path / "items.csv", "item_id,text\nw,Red mug\n")
    f = _tiny(tmp_path)
    assert prepare_main(["-q", "-o", str(tmp_path / "run"), "source=table", f"path={f}", f"items_path={cat}",
                         "kcore=0"]) == 0
    notes = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("note: ")]
    assert len(notes) == 1 and "data.columns.item_title=text" in notes[0] and "items.csv" in notes[0]


def test_bad_input_uci_excel_workbook_says_how_to_convert_it(tmp_path: Path) -> None:
    f = write(tmp_path / "online_retail_II.xlsx", b"PK\x03\x04")
    with pytest.raises(DataError) as e:
        load_source(DataConfig(source="uci", path=str(f)))
    msg = str(e.value)
    assert "online_retail_II.xlsx" in msg and "unsupported file type '.xlsx'" in msg
    assert "save each sheet as CSV" in msg and "point data.path at it" in msg
