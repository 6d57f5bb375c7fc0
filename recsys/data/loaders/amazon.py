"""Amazon Reviews as downloaded (McAuley lab): reviews + metadata, JSON lines, optionally .gz.

Field names by release:

=========  ==========================================  =================================================
release    reviews (``cfg.path``)                      metadata (``cfg.items_path``)
=========  ==========================================  =================================================
2014/2018  reviewerID, asin, unixReviewTime (s),       asin, title, brand, categories (2014: list of
           overall                                     lists) / category (2018: list), description (str
                                                       or list), price ("$12.99" or float)
2023       user_id, parent_asin (else asin),           parent_asin, title, store, main_category,
           timestamp (ms), rating                      categories, description (list), price
=========  ==========================================  =================================================

The 2014 metadata is written with Python's ``repr`` (single quotes), so it is parsed leniently. Each review
becomes one ``"review"`` event; the rating is kept in ``quarantine.raw`` when a row is rejected but is not an
event weight (the standard protocol treats every review as an implicit interaction).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Literal

import polars as pl

from recsys.data.config import DataConfig
from recsys.data.errors import DataError
from recsys.data.loaders.files import (
    as_price, as_text, iter_json_lines, json_array, read_bytes, read_jsonl, resolve_files,
)
from recsys.data.loaders.table import as_list
from recsys.data.schema import ITEMS, Loaded
from recsys.data.validate import SRC, clean_items, make_loaded, validate

log = logging.getLogger(__name__)
Release = Literal["2014", "2023"]
_FIELDS: dict[Release, dict[str, str]] = {  # canonical -> source field (2018 uses the 2014 names)
    "2014": {"user_id": "reviewerID", "item_id": "asin", "timestamp": "unixReviewTime", "rating": "overall"},
    "2023": {"user_id": "user_id", "item_id": "parent_asin", "timestamp": "timestamp", "rating": "rating"},
}


def load_amazon(cfg: DataConfig, *, now: int | None = None) -> Loaded:
    """Reviews from ``cfg.path`` (file, folder or glob) and metadata from ``cfg.items_path`` (optional)."""
    assert cfg.path is not None
    staged = []
    names: dict[str, str] = {}
    for f in resolve_files(cfg.path):
        data = read_bytes(f, encoding=cfg.encoding)
        release = detect_release(f, data)
        names = _FIELDS[release]
        fields = [*names.values(), *(["asin"] if release == "2023" else [])]
        df, _ = read_jsonl(f, fields=fields, encoding=cfg.encoding)
        staged.append(_stage(df, release=release, path=f))
    df = pl.concat(staged, how="diagonal_relaxed")
    kept, q = validate(df, drop_cancellations=cfg.drop_cancellations, names=names, now=now)
    counters: dict[str, int] = {}
    items = read_meta(Path(cfg.items_path), encoding=cfg.encoding, counts=counters) if cfg.items_path else None
    return make_loaded(parts=[(kept, q)], items=items, n_read=df.height, source=f"amazon:{cfg.path}",
                       counters=counters)


def detect_release(path: Path, data: bytes) -> Release:
    """Look at the first parseable record's keys."""
    head = data if len(data) <= 1_000_000 or json_array(path, data) is not None else \
        data[:1_000_000].rsplit(b"\n", 1)[0]  # a JSON array is only parsed whole
    for _, rec, _err in iter_json_lines(path, head):
        if rec is None:
            continue
        if "reviewerID" in rec:
            return "2014"
        if "user_id" in rec and ("parent_asin" in rec or "asin" in rec):
            return "2023"
        raise DataError(path, f"is not an Amazon reviews file: the first record has fields {sorted(rec)[:12]}.",
                        column="reviewerID", hint="Expected reviewerID/asin/unixReviewTime (2014, 2018) or "
                        "user_id/parent_asin/timestamp (2023); for other logs use data.source=table.")
    raise DataError(path, "holds no JSON records.", hint="Check that this is the reviews file (JSON lines).")


def _stage(df: pl.DataFrame, *, release: Release, path: Path) -> pl.DataFrame:
    f = _FIELDS[release]
    item = pl.coalesce(pl.col("parent_asin"), pl.col("asin")) if release == "2023" else pl.col("asin")
    div = 1000.0 if release == "2023" else 1.0  # 2023 timestamps are unix milliseconds
    ts = pl.col(f["timestamp"]).cast(pl.Float64, strict=False)
    return df.select(
        pl.col(f["user_id"]).alias("user_id"),
        item.alias("item_id"),
        pl.when(ts.is_finite() & (ts.abs() < 9e15)).then((ts / div).floor()).cast(pl.Int64).alias("timestamp"),
        pl.col(f["timestamp"]).alias("_raw_timestamp"),
        pl.lit("review").alias("event"),
        *[pl.col(c).alias(f"{SRC}{c}") for c in df.columns if c not in ("source_row", "_json_error")],
        pl.lit(str(path)).alias("source_file"),
        pl.col("source_row"),
        pl.col("_json_error"),
    )


def read_meta(path: Path, *, encoding: str = "utf-8",
              counts: dict[str, int] | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Metadata file(s) -> (ITEMS, QUARANTINE). Unparseable lines and records without a usable id are
    quarantined with their line number (catalogue rows are not interactions: they are counted apart, as
    ``catalogue_read = catalogue_kept + catalogue_quarantined``)."""
    rows: list[dict[str, Any]] = []
    empty = {"item_id": None, "title": None, "brand": None, "categories": [], "description": None, "price": None}
    for f in resolve_files(path, what="data.items_path"):
        for no, rec, err in iter_json_lines(f, read_bytes(f, encoding=encoding), loose=True):
            prov = {"source_file": str(f), "source_row": no, "_json_error": err}
            rows.append({**(meta_record(rec) if rec is not None else empty), **prov})
    if rows and all(r["item_id"] is None for r in rows if r["_json_error"] is None):
        raise DataError(path, "no record has an item id.", column="asin",
                        hint="Expected 'asin' (2014, 2018) or 'parent_asin' (2023) in the metadata file.")
    schema = {**ITEMS, "source_file": pl.String, "source_row": pl.Int64, "_json_error": pl.String}
    return clean_items(pl.DataFrame(rows, schema=schema), source=str(path), counts=counts)


def meta_record(rec: dict[str, Any]) -> dict[str, Any]:
    """One metadata record (any release) -> an ITEMS row."""
    cats = as_list(rec.get("categories") or rec.get("category"), sep="|")
    main = as_text(rec.get("main_category"))
    if main and main not in cats:
        cats.insert(0, main)
    desc = rec.get("description")
    if isinstance(desc, list):
        desc = " ".join(t for t in (as_text(x) for x in desc) if t)
    details = rec.get("details")
    brand = rec.get("brand") or rec.get("store") or (details.get("Brand") if isinstance(details, dict) else None)
    return {
        "item_id": as_text(rec.get("parent_asin") or rec.get("asin")),
        "title": as_text(rec.get("title")),
        "brand": as_text(brand),
        "categories": cats,
        "description": as_text(desc) if not isinstance(desc, (dict,)) else json.dumps(desc),
        "price": as_price(rec.get("price")),
    }
