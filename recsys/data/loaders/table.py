"""Generic event logs: CSV / TSV / JSON lines / Parquet (by extension), one file, a folder or a glob.

Columns are mapped with ``DataConfig.columns``; an optional catalogue sits at ``cfg.items_path``. CSV and
Parquet are scanned lazily and only the mapped columns are read. CSV is read as text and parsed here, so a
badly typed cell quarantines its row (with the reason) instead of failing the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from recsys.data.config import Columns, DataConfig
from recsys.data.errors import DataError
from recsys.data.loaders.files import (
    Format, as_price, as_text, check_columns, file_format, iter_json_lines, polars_error, price_expr, read_bytes,
    read_jsonl, resolve_files,
)
from recsys.data.quarantine import Rule
from recsys.data.schema import ITEMS, Loaded
from recsys.data.validate import SRC, clean_items, make_loaded, to_unix_seconds, validate

_OPTION = {"user_id": "data.columns.user", "item_id": "data.columns.item", "timestamp": "data.columns.timestamp",
           "event": "data.columns.event", "quantity": "data.columns.quantity", "price": "data.columns.price"}
_NESTED = (pl.List, pl.Array, pl.Struct, pl.Object)


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
    for f in resolve_files(cfg.path):
        raw = read_log(f, required={_OPTION[k]: v for k, v in mapping.items()})
        staged.append(stage(raw, mapping=mapping, path=f, timestamp_format=c.timestamp_format))
    df = pl.concat(staged, how="diagonal_relaxed")
    if df.height == 0:
        raise DataError(cfg.path, "has a header but no data rows.", hint="Check the export; nothing to train on.")
    extra = [Rule(pl.col("_json_error").is_not_null(), "(line)", "not a JSON object (garbage line)")] \
        if "_json_error" in df.columns else []
    kept, q = validate(df, drop_cancellations=cfg.drop_cancellations, names=mapping, extra=extra, now=now)
    items = read_catalogue(Path(cfg.items_path), columns=c) if cfg.items_path else None
    return make_loaded(parts=[(kept, q)], items=items, n_read=df.height, source=f"table:{cfg.path}")


def read_log(path: Path, *, required: dict[str, str], fixed: bool = False) -> pl.DataFrame:
    """The ``required`` columns of one file (CSV as text, others in their own types) + ``source_row``.
    ``required`` maps config option -> column (``fixed``: a fixed layout, see ``check_columns``)."""
    fmt = file_format(path)
    cols = list(dict.fromkeys(required.values()))
    if fmt == "jsonl":
        df, present = read_jsonl(path, fields=cols)
        if df["_json_error"].null_count():  # some line parsed: the fields must occur
            check_columns(path, present, required, fixed=fixed)
        return df
    lf = _scan(path, fmt)
    try:
        present = lf.collect_schema().names()
    except Exception as e:  # noqa: BLE001 - polars raises many types; all mean "cannot read"
        raise polars_error(path, fmt, e) from e
    check_columns(path, present, required, fixed=fixed)
    try:
        return lf.select(cols).with_row_index("source_row", offset=1).collect().with_columns(
            pl.col("source_row").cast(pl.Int64))
    except Exception as e:  # noqa: BLE001
        raise polars_error(path, fmt, e) from e


def _scan(path: Path, fmt: Format) -> pl.LazyFrame:
    try:
        if fmt == "parquet":
            return pl.scan_parquet(path)
        sep = "\t" if fmt == "tsv" else ","
        opts: dict[str, Any] = {"separator": sep, "infer_schema": False, "encoding": "utf8-lossy"}
        if path.suffix.lower() == ".gz":
            data = read_bytes(path)
            if not data.strip():
                raise pl.exceptions.NoDataError("empty CSV")
            return pl.read_csv(data, **opts).lazy()
        return pl.scan_csv(path, **opts)
    except DataError:
        raise
    except Exception as e:  # noqa: BLE001
        raise polars_error(path, fmt, e) from e


def stage(raw: pl.DataFrame, *, mapping: dict[str, str], path: Path, timestamp_format: str | None) -> pl.DataFrame:
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
            out["timestamp"] = to_unix_seconds(s, fmt=timestamp_format)
            out["_raw_timestamp"] = s.cast(pl.String)
        elif canon == "event":
            out["event"] = s.cast(pl.String)
        else:
            out[canon] = s.cast(pl.Float64) if s.dtype.is_numeric() else \
                pl.select(price_expr(pl.lit(s)) if canon == "price" else pl.lit(s).cast(pl.Float64, strict=False)
                          ).to_series()
            out[f"_raw_{canon}"] = s.cast(pl.String)
    src = {f"{SRC}{col}": raw[col].cast(pl.String) for col in dict.fromkeys(mapping.values())}
    extra = {"_json_error": raw["_json_error"]} if "_json_error" in raw.columns else {}
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
def read_catalogue(path: Path, *, columns: Columns) -> pl.DataFrame:
    """Item catalogue (ITEMS schema) from CSV/TSV/JSONL/Parquet. Only the id column is required; missing
    text columns are left empty. Categories may be a list column or a string split on ``category_sep``."""
    key = columns.catalogue_item or columns.item
    want = {"item_id": key, "title": columns.item_title, "brand": columns.item_brand,
            "categories": columns.item_categories, "description": columns.item_description,
            "price": columns.item_price}
    want = {k: v for k, v in want.items() if v}
    frames = []
    for f in resolve_files(path, what="data.items_path"):
        fmt = file_format(f)
        if fmt == "jsonl":
            df = _catalogue_jsonl(f, want=want, sep=columns.category_sep)
        else:
            lf = _scan(f, fmt)
            try:
                present = lf.collect_schema().names()
            except Exception as e:  # noqa: BLE001
                raise polars_error(f, fmt, e) from e
            check_columns(f, present, {"data.columns.catalogue_item": key})
            try:
                df = lf.select([pl.col(v).alias(k) for k, v in want.items() if v in present]).collect()
            except Exception as e:  # noqa: BLE001
                raise polars_error(f, fmt, e) from e
            df = _catalogue_types(df, sep=columns.category_sep)
        frames.append(df)
    return clean_items(pl.concat(frames, how="diagonal_relaxed"), source=str(path))


def _catalogue_types(df: pl.DataFrame, *, sep: str) -> pl.DataFrame:
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
    return df.select(exprs)


def _catalogue_jsonl(path: Path, *, want: dict[str, str], sep: str) -> pl.DataFrame:
    rows: dict[str, list[Any]] = {k: [] for k in want}
    seen_key = False
    for _, rec, _err in iter_json_lines(path, read_bytes(path), loose=True):
        if rec is None:
            continue
        seen_key = seen_key or want["item_id"] in rec
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
    if not seen_key:
        check_columns(path, [], {"data.columns.catalogue_item": want["item_id"]})
    return pl.DataFrame(rows, schema={k: ITEMS[k] for k in want})


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
