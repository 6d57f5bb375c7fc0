"""Generic event logs: CSV / TSV / JSON lines / Parquet (by extension), one file, a folder or a glob.

Columns are mapped with ``DataConfig.columns``; an optional catalogue sits at ``cfg.items_path``. CSV and
Parquet are scanned lazily and only the mapped columns are read. CSV is read as text and parsed here, so a
badly typed cell quarantines its row (with the reason) instead of failing the file.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import polars as pl

from recsys.data.config import Columns, DataConfig
from recsys.data.errors import DataError
from recsys.data.loaders.files import (
    Format, as_price, as_text, check_columns, delimiter_error, file_format, is_utf8, iter_json_lines, polars_error,
    price_expr, read_bytes, read_jsonl, read_ragged, resolve_files, separator,
)
from recsys.data.schema import ITEMS, Loaded
from recsys.data.validate import SRC, clean_items, make_loaded, to_unix_seconds, validate

_OPTION = {"user_id": "data.columns.user", "item_id": "data.columns.item", "timestamp": "data.columns.timestamp",
           "event": "data.columns.event", "quantity": "data.columns.quantity", "price": "data.columns.price"}
_NESTED = (pl.List, pl.Array, pl.Struct, pl.Object)
log = logging.getLogger(__name__)


def load_table(cfg: DataConfig, *, now: int | None = None) -> Loaded:
    """Load every file of ``cfg.path`` and the optional catalogue ``cfg.items_path``.

    Args:
        cfg: the data config; ``cfg.columns`` names the source columns.
        now: unix seconds used for the "timestamp in the future" rule (default: the clock).
    """
    assert cfg.path is not None
    c = cfg.columns
    mapping = {k: v for k, v in {"user_id": c.user, "item_id": c.item, "timestamp": c.timestamp,
                                 "event": c.event, "quantity": c.quantity, "price": c.price}.items() if v}
    staged = []
    counters: dict[str, int] = {}
    for f in resolve_files(cfg.path):
        raw = read_log(f, required={_OPTION[k]: v for k, v in mapping.items()}, encoding=cfg.encoding,
                       delimiter=cfg.delimiter)
        staged.append(stage(raw, mapping=mapping, path=f, timestamp_format=c.timestamp_format, counts=counters))
    df = pl.concat(staged, how="diagonal_relaxed")
    if df.height == 0:
        raise DataError(cfg.path, "has a header but no data rows.", hint="Check the export; nothing to train on.")
    kept, q = validate(df, drop_cancellations=cfg.drop_cancellations, names=mapping, now=now)
    notes: list[str] = []
    items = read_catalogue(Path(cfg.items_path), columns=c, encoding=cfg.encoding, delimiter=cfg.delimiter,
                           counts=counters, notes=notes) if cfg.items_path else None
    return make_loaded(parts=[(kept, q)], items=items, n_read=df.height, source=f"table:{cfg.path}",
                       counters=counters, notes=notes)


def read_log(path: Path, *, required: dict[str, str], fixed: bool = False, encoding: str = "utf-8",
             delimiter: str | None = None) -> pl.DataFrame:
    """The ``required`` columns of one file (CSV as text, others in their own types) + ``source_row``.
    ``required`` maps config option -> column (``fixed``: a fixed layout, see ``check_columns``). A CSV row
    with more fields than the header is kept with ``_ragged`` set (the row rules quarantine it)."""
    fmt = file_format(path)
    cols = list(dict.fromkeys(required.values()))
    if fmt == "jsonl":
        df, present = read_jsonl(path, fields=cols, encoding=encoding)
        if df["_json_error"].null_count():  # some line parsed: the fields must occur
            check_columns(path, present, required, fixed=fixed)
        return df
    lf, present = scan_columns(path, fmt, encoding=encoding, delimiter=delimiter, required=cols)
    check_columns(path, present, required, fixed=fixed)
    return collect_rows(lf, path=path, fmt=fmt, cols=cols, encoding=encoding, delimiter=delimiter)


def scan_columns(path: Path, fmt: Format, *, encoding: str, delimiter: str | None,
                 required: list[str]) -> tuple[pl.LazyFrame, list[str]]:
    """(lazy frame, its column names); a delimited header that is one column holding another separator
    (``;`` or a tab in a .csv) while ``required`` columns are missing is a DataError saying so."""
    lf = _scan(path, fmt, encoding=encoding, delimiter=delimiter)
    try:
        present = lf.collect_schema().names()
    except Exception as e:  # noqa: BLE001 - polars raises many types; all mean "cannot read"
        raise polars_error(path, fmt, e) from e
    if fmt != "parquet" and any(c not in present for c in required):
        err = delimiter_error(path, present, separator(fmt, delimiter))
        if err is not None:
            raise err
    return lf, present


def collect_rows(lf: pl.LazyFrame, *, path: Path, fmt: Format, cols: list[str], encoding: str,
                 delimiter: str | None) -> pl.DataFrame:
    """``cols`` + ``source_row`` (+ ``_ragged`` when some row has more fields than the header)."""
    if "_ragged" in lf.collect_schema().names():  # read by read_ragged already (see _scan)
        return lf.select(*cols, "source_row", "_ragged").collect()
    try:
        return lf.select(cols).with_row_index("source_row", offset=1).collect().with_columns(
            pl.col("source_row").cast(pl.Int64))
    except Exception as e:  # noqa: BLE001
        if fmt == "parquet" or "more fields than defined" not in str(e):
            raise polars_error(path, fmt, e) from e
    df = read_ragged(path, sep=separator(fmt, delimiter), columns=cols, encoding=encoding)
    log.warning("%s: %d rows have more fields than the header; they are quarantined", path, int(df["_ragged"].sum()))
    return df


def _scan(path: Path, fmt: Format, *, encoding: str = "utf-8", delimiter: str | None = None) -> pl.LazyFrame:
    try:
        if fmt == "parquet":
            return pl.scan_parquet(path)
        opts: dict[str, Any] = {"separator": separator(fmt, delimiter), "infer_schema": False,
                                "encoding": "utf8-lossy"}
        if path.suffix.lower() == ".gz" or not is_utf8(encoding):
            data = read_bytes(path, encoding=encoding)
            if not data.strip():
                raise pl.exceptions.NoDataError("empty CSV")
            try:
                return pl.read_csv(data, **opts).lazy()
            except pl.exceptions.ComputeError as e:
                if "more fields than defined" not in str(e):
                    raise
                ragged = read_ragged(path, sep=opts["separator"], encoding=encoding)
                log.warning("%s: %d rows have more fields than the header; they are quarantined", path,
                            int(ragged["_ragged"].sum()))
                return ragged.lazy()
        return pl.scan_csv(path, **opts)
    except DataError:
        raise
    except Exception as e:  # noqa: BLE001
        raise polars_error(path, fmt, e) from e


def stage(raw: pl.DataFrame, *, mapping: dict[str, str], path: Path, timestamp_format: str | None,
          counts: dict[str, int] | None = None) -> pl.DataFrame:
    """Source columns -> the staging frame ``validate`` expects (see recsys.data.validate)."""
    for canon, col in mapping.items():
        if isinstance(raw.schema[col], _NESTED) or raw.schema[col] == pl.Binary:
            raise DataError(path, f"has type {raw.schema[col]}; expected text or numbers.", column=col,
                            hint=f"Point {_OPTION[canon]} at a scalar column.")
    out: dict[str, pl.Series] = {}
    for canon, col in mapping.items():
        s = raw[col]
        if canon in ("user_id", "item_id"):
            out[canon] = id_text(s)
        elif canon == "timestamp":
            out["timestamp"] = to_unix_seconds(s, fmt=timestamp_format, counts=counts)
            out["_raw_timestamp"] = s.cast(pl.String)
        elif canon == "event":
            out["event"] = s.cast(pl.String)
        else:
            out[canon] = s.cast(pl.Float64) if s.dtype.is_numeric() else \
                pl.select(price_expr(pl.lit(s)) if canon == "price" else pl.lit(s).cast(pl.Float64, strict=False)
                          ).to_series()
            out[f"_raw_{canon}"] = s.cast(pl.String)
    src = {f"{SRC}{col}": raw[col].cast(pl.String) for col in dict.fromkeys(mapping.values())}
    extra = {c: raw[c] for c in ("_json_error", "_ragged") if c in raw.columns}
    return pl.DataFrame({**{k: v.alias(k) for k, v in out.items()}, **src, **extra}).with_columns(
        pl.lit(str(path)).alias("source_file"), raw["source_row"].cast(pl.Int64).alias("source_row"))


def id_text(s: pl.Series) -> pl.Series:
    """Ids as text; whole floats (1234.0, as pandas writes nullable ints) become "1234"."""
    if s.dtype.is_float():
        return pl.select(pl.when(pl.lit(s) == pl.lit(s).floor()).then(pl.lit(s).cast(pl.Int64, strict=False)
                                                                          .cast(pl.String))
                         .otherwise(pl.lit(s).cast(pl.String))).to_series()
    return s.cast(pl.String)


# --------------------------------------------------------------------------- catalogue
TEXT_OPTIONS = {"title": "data.columns.item_title", "brand": "data.columns.item_brand",
                "categories": "data.columns.item_categories", "description": "data.columns.item_description"}


def read_catalogue(path: Path, *, columns: Columns, encoding: str = "utf-8", delimiter: str | None = None,
                   counts: dict[str, int] | None = None,
                   notes: list[str] | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Item catalogue from CSV/TSV/JSONL/Parquet -> (ITEMS, QUARANTINE of its rejected rows; see
    ``clean_items``). Only the id column is required; a mapped text column the file lacks is named in a log
    line, and a file with none of them in ``notes`` (the data stage refuses it when text is required).
    Categories may be a list column or a string split on ``category_sep``."""
    key = columns.catalogue_item or columns.item
    want = {"item_id": key, "title": columns.item_title, "brand": columns.item_brand,
            "categories": columns.item_categories, "description": columns.item_description,
            "price": columns.item_price}
    want = {k: v for k, v in want.items() if v}
    frames = []
    for f in resolve_files(path, what="data.items_path"):
        fmt = file_format(f)
        if fmt == "jsonl":
            df, present = _catalogue_jsonl(f, want=want, sep=columns.category_sep, encoding=encoding)
        else:
            lf, present = scan_columns(f, fmt, encoding=encoding, delimiter=delimiter, required=[key])
            check_columns(f, present, {"data.columns.catalogue_item": key})
            cols = [v for k, v in want.items() if v in present]
            raw = collect_rows(lf, path=f, fmt=fmt, cols=list(dict.fromkeys(cols)), encoding=encoding,
                               delimiter=delimiter)
            df = raw.select([pl.col(v).alias(k) for k, v in want.items() if v in present]
                            + [c for c in ("source_row", "_ragged") if c in raw.columns])
            df = _catalogue_types(df, sep=columns.category_sep)
        note = text_columns_note(f, present=present, want=want)
        if note and notes is not None:
            notes.append(note)
        frames.append(df.with_columns(pl.lit(str(f)).alias("source_file")))
    return clean_items(pl.concat(frames, how="diagonal_relaxed"), source=str(path), counts=counts)


def text_columns_note(path: Path, *, present: list[str], want: dict[str, str]) -> str | None:
    """Log the mapped text columns ``path`` lacks; when it has none of them, return a note saying what the
    file has and which option to set."""
    missing = {k: v for k, v in want.items() if k in TEXT_OPTIONS and v not in present}
    if not missing:
        return None
    mapped = [v for k, v in want.items() if k in TEXT_OPTIONS]
    if len(missing) < len(mapped):
        log.info("%s: catalogue has no %s column(s) (%s); those fields stay empty", path,
                 ", ".join(f"'{v}'" for v in missing.values()), ", ".join(TEXT_OPTIONS[k] for k in missing))
        return None
    others = [c for c in present if c not in want.values()]
    guess = next((c for c in others if c.lower() in ("text", "name", "title", "product_name", "item_name",
                                                     "description", "desc", "label")), others[0] if others else None)
    fix = f"Set data.columns.item_title={guess} (or the other data.columns.item_* options) to the text column." \
        if guess else "Add a text column (title, brand, categories or description) to the catalogue."
    note = (f"{path}: the catalogue has none of the mapped text columns "
            f"({', '.join(f'{v!r} ({TEXT_OPTIONS[k]})' for k, v in missing.items())}); the file has: "
            f"{', '.join(present[:20])}. Every item would have empty text. {fix}")
    log.warning("%s", note)
    return note


def _catalogue_types(df: pl.DataFrame, *, sep: str) -> pl.DataFrame:
    keep = [pl.col(c) for c in ("source_row", "_ragged") if c in df.columns]
    exprs = [pl.col("item_id").cast(pl.String) if not df.schema["item_id"].is_float()
             else pl.col("item_id").cast(pl.Int64, strict=False).cast(pl.String)]
    for c in ("title", "brand", "description"):
        if c in df.columns:
            exprs.append(pl.col(c).list.eval(pl.element().cast(pl.String)).list.join(" ").alias(c)
                         if isinstance(df.schema[c], pl.List) else pl.col(c).cast(pl.String))
    if "categories" in df.columns:
        dt = df.schema["categories"]
        exprs.append(pl.col("categories").cast(pl.List(pl.String)) if isinstance(dt, pl.List) else
                     pl.col("categories").cast(pl.String).str.split(sep).list.eval(pl.element().str.strip_chars()))
    if "price" in df.columns:
        exprs.append(pl.col("price").cast(pl.Float64) if df.schema["price"].is_numeric() else price_expr(pl.col("price")))
    return df.select(exprs + keep)


def _catalogue_jsonl(path: Path, *, want: dict[str, str], sep: str,
                     encoding: str = "utf-8") -> tuple[pl.DataFrame, list[str]]:
    """-> (ITEMS columns + source_row + _json_error, the fields that occur in some record)."""
    rows: dict[str, list[Any]] = {k: [] for k in want}
    seen: dict[str, None] = {}
    line_no: list[int] = []
    errors: list[str | None] = []
    for no, rec, err in iter_json_lines(path, read_bytes(path, encoding=encoding), loose=True):
        line_no.append(no)
        errors.append(err)
        if rec is None:
            for k in want:
                rows[k].append([] if k == "categories" else None)
            continue
        seen.update(dict.fromkeys(rec))
        for k, v in want.items():
            val = rec.get(v)
            if k == "categories":
                rows[k].append(as_list(val, sep=sep))
            elif k == "price":
                rows[k].append(as_price(val))
            elif k in ("title", "brand", "description") and isinstance(val, list):
                rows[k].append(" ".join(t for t in (as_text(x) for x in val) if t))
            else:
                rows[k].append(as_text(val))
    if want["item_id"] not in seen:
        check_columns(path, list(seen), {"data.columns.catalogue_item": want["item_id"]})
    df = pl.DataFrame({**rows, "source_row": line_no, "_json_error": errors},
                      schema={**{k: ITEMS[k] for k in want}, "source_row": pl.Int64, "_json_error": pl.String})
    return df, list(seen)


def as_list(v: Any, *, sep: str) -> list[str]:
    """Categories: a string split on ``sep``; a list (of lists, as in Amazon 2014) flattened, order kept."""
    if v is None:
        return []
    if isinstance(v, str):
        return [t.strip() for t in v.split(sep) if t.strip()]
    out: list[str] = []
    for x in v if isinstance(v, list) else [v]:
        for t in (x if isinstance(x, list) else [x]):
            s = as_text(t)
            if s and s not in out:
                out.append(s)
    return out
