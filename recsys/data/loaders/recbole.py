"""RecBole atomic files: ``<name>.inter`` (events) and, beside it, ``<name>.item`` (catalogue).

Tab-separated, no quoting, header cells ``name:type`` with type in token / token_seq / float / float_seq
(``_seq`` values are space-separated). Field names follow RecBole's defaults (``user_id``, ``item_id``,
``timestamp``), overridable with ``data.columns.*``. Without a timestamp field the row order within the
file is used as time (RecBole's own convention for such datasets).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import polars as pl

from recsys.data.config import Columns, DataConfig
from recsys.data.errors import DataError
from recsys.data.loaders.files import check_columns, is_utf8, polars_error, price_expr, read_bytes, resolve_files
from recsys.data.loaders.table import id_text, text_columns_note
from recsys.data.schema import Loaded
from recsys.data.validate import SRC, clean_items, make_loaded, to_unix_seconds, validate

log = logging.getLogger(__name__)


def load_recbole(cfg: DataConfig, *, now: int | None = None) -> Loaded:
    """Load ``cfg.path`` (a ``.inter`` file; the ``.item`` beside it, or ``cfg.items_path``, if present)."""
    assert cfg.path is not None
    c = cfg.columns
    staged, items_files = [], []
    counters: dict[str, int] = {}
    for f in resolve_inter(cfg.path):
        fields, df = read_atomic(f, encoding=cfg.encoding)
        check_columns(f, list(fields), {"data.columns.user": c.user, "data.columns.item": c.item})
        ts_col = c.timestamp if c.timestamp in fields else None
        if ts_col is None:
            log.info("%s: no '%s' field; the row order is used as time", f, c.timestamp)
        ts = to_unix_seconds(df[ts_col], counts=counters) if ts_col else df["source_row"]
        staged.append(pl.DataFrame({
            "user_id": id_text(df[c.user]), "item_id": id_text(df[c.item]), "timestamp": ts.cast(pl.Int64),
            "_raw_timestamp": df[ts_col] if ts_col else ts.cast(pl.String),
            **{f"{SRC}{k}": df[k] for k in fields},
            "source_file": pl.Series([str(f)] * df.height, dtype=pl.String), "source_row": df["source_row"],
        }))
        item_file = f.with_suffix(".item")
        if item_file.is_file():
            items_files.append(item_file)
    df = pl.concat(staged, how="diagonal_relaxed")
    if df.height == 0:
        raise DataError(cfg.path, "has a header but no data rows.", hint="Check the export; nothing to train on.")
    names = {"user_id": c.user, "item_id": c.item, "timestamp": c.timestamp}
    kept, q = validate(df, drop_cancellations=cfg.drop_cancellations, names=names, now=now)
    if cfg.items_path:
        items_files = resolve_files(cfg.items_path, what="data.items_path")
    notes: list[str] = []
    cat = pl.concat([read_item_file(f, columns=c, encoding=cfg.encoding, notes=notes) for f in items_files]) \
        if items_files else None
    items = clean_items(cat, source=str(items_files[0]), counts=counters) if cat is not None else None
    return make_loaded(parts=[(kept, q)], items=items, n_read=df.height, source=f"recbole:{cfg.path}",
                       counters=counters, notes=notes)


def resolve_inter(path: str) -> list[Path]:
    p = Path(path)
    if p.is_dir():
        files = sorted(p.glob("*.inter"))
        if not files:
            raise DataError(p, "holds no .inter file.", hint="Point data.path at <dataset>.inter.")
        return files
    if not any(ch in path for ch in "*?[") and not p.is_file():
        raise DataError(p, "file does not exist.", hint="Point data.path at <dataset>.inter.")
    return [f for f in (resolve_files(path) if any(ch in path for ch in "*?[") else [p])]


def read_atomic(path: Path, *, encoding: str = "utf-8") -> tuple[dict[str, str], pl.DataFrame]:
    """Read one atomic file as text: ({field: type}, frame with bare field names + ``source_row``)."""
    try:
        opts: dict[str, Any] = {"separator": "\t", "infer_schema": False, "quote_char": None, "encoding": "utf8-lossy"}
        lf = pl.scan_csv(path, **opts) if is_utf8(encoding) else \
            pl.read_csv(read_bytes(path, encoding=encoding), **opts).lazy()
        header = lf.collect_schema().names()
    except Exception as e:  # noqa: BLE001
        raise polars_error(path, "tsv", e) from e
    fields: dict[str, str] = {}
    for h in header:
        name, sep, typ = h.rpartition(":")
        if not sep or typ not in ("token", "token_seq", "float", "float_seq"):
            raise DataError(path, "header cell is not 'name:type' with type token/token_seq/float/float_seq.",
                            column=h, hint="RecBole atomic files start with e.g. 'user_id:token<TAB>item_id:token'.")
        fields[name] = typ
    try:
        df = lf.with_row_index("source_row", offset=1).collect()
    except Exception as e:  # noqa: BLE001
        raise polars_error(path, "tsv", e) from e
    df = df.rename(dict(zip(header, fields))).with_columns(pl.col("source_row").cast(pl.Int64))
    return fields, df


def read_item_file(path: Path, *, columns: Columns, encoding: str = "utf-8",
                   notes: list[str] | None = None) -> pl.DataFrame:
    """``.item`` -> ITEMS-like frame (``clean_items`` finishes it); a file with none of the mapped text
    fields adds a line to ``notes`` (see ``table.text_columns_note``)."""
    fields, df = read_atomic(path, encoding=encoding)
    key = columns.catalogue_item or columns.item
    check_columns(path, list(fields), {"data.columns.catalogue_item": key})
    want = {"item_id": key, "title": columns.item_title, "brand": columns.item_brand,
            "categories": columns.item_categories, "description": columns.item_description}
    note = text_columns_note(path, present=list(fields), want={k: v for k, v in want.items() if v})
    if note and notes is not None:
        notes.append(note)

    def text(name: str | None) -> pl.Expr:
        return pl.col(name) if name and name in fields else pl.lit(None, dtype=pl.String)

    cat = columns.item_categories
    if cat and cat in fields:
        sep = " " if fields[cat].endswith("_seq") else columns.category_sep
        cats = pl.col(cat).str.split(sep).list.eval(pl.element().str.strip_chars()).alias("categories")
    else:
        cats = pl.lit([], dtype=pl.List(pl.String)).alias("categories")
    price = price_expr(pl.col(columns.item_price)) if columns.item_price in fields else pl.lit(None, pl.Float64)
    return df.select(pl.col(key).alias("item_id"), text(columns.item_title).alias("title"),
                     text(columns.item_brand).alias("brand"), cats,
                     text(columns.item_description).alias("description"), price.alias("price"),
                     pl.lit(str(path)).alias("source_file"), pl.col("source_row"))
