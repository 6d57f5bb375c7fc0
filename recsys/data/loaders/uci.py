"""The UCI "Online Retail" log (D. Chen 2015, CC BY 4.0): a UK gift shop's invoices, 2010-12 .. 2011-12.

Columns: InvoiceNo, StockCode, Description, Quantity, InvoiceDate ('YYYY-MM-DD HH:MM:SS', or the
'M/D/YYYY H:MM' of CSV copies), UnitPrice (GBP), CustomerID (float, null for guests), Country.
"Online Retail II" (UCI 502, the 2009-12 .. 2011-12 release) names three of them differently: Invoice,
Price and Customer ID; a file with those names is read the same way (each file on its own).
``cfg.path = None`` reads the embedded compact copy (all 541,909 rows; recsys/data/embedded/README.md).

Kept rows: user = CustomerID as an int string, item = StockCode stripped and upper-cased (``85123a`` and
``85123A`` are one product), event ``"purchase"``, quantity, price = UnitPrice. InvoiceDate is UK local
time (GMT/BST) and is read as UTC: times shift by one hour in summer, which moves nothing across a day
boundary that matters for a weekly split and keeps the parsing free of time-zone data.

Quarantined, first matching reason wins: guest checkout (no CustomerID); 'A' bad-debt adjustments;
cancellations ('C' invoices; with ``drop_cancellations=False`` they are kept as ``"cancel"`` events);
non-product codes (postage, fees, manual adjustments, discounts, samples, gift vouchers); zero or negative
price; missing description when ``require_catalogue``; then the shared rules (recsys.data.validate), which
include negative quantities and exact duplicate rows.

Catalogue: one row per StockCode sold at a positive price (guest sales included), title = the most
frequent description, price = the median unit price.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import polars as pl

from recsys.data.config import DataConfig
from recsys.data.loaders.files import file_format, resolve_files
from recsys.data.loaders.table import read_log, scan_columns
from recsys.data.quarantine import Rule
from recsys.data.schema import ITEMS, Loaded
from recsys.data.validate import SRC, clean_items, make_loaded, normalise_id, to_unix_seconds, validate

EMBEDDED = "uci_online_retail.parquet"
COLUMNS = ["InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID", "Country"]
_REQUIRED = [c for c in COLUMNS if c != "Country"]
NON_PRODUCT = ("POST", "DOT", "M", "BANK CHARGES", "AMAZONFEE", "C2", "D", "S", "B", "CRUK", "PADS")
_NAMES = {"user_id": "CustomerID", "item_id": "StockCode", "timestamp": "InvoiceDate", "quantity": "Quantity",
          "price": "UnitPrice", "event": "InvoiceNo"}
RELEASE_II = {"InvoiceNo": "Invoice", "UnitPrice": "Price", "CustomerID": "Customer ID"}  # ours -> Online Retail II


def embedded_path() -> Path:
    return Path(str(resources.files("recsys.data.embedded") / EMBEDDED))


def load_uci(cfg: DataConfig, *, now: int | None = None) -> Loaded:
    """Load ``cfg.path`` (file/folder/glob of CSV or Parquet with the UCI columns) or the embedded copy."""
    files = resolve_files(cfg.path) if cfg.path is not None else [embedded_path()]
    frames = []
    names = _NAMES
    counters: dict[str, int] = {}
    for f in files:
        source_names = column_names(f, encoding=cfg.encoding, delimiter=cfg.delimiter)
        release_ii = all(RELEASE_II[c] in source_names for c in RELEASE_II) and "InvoiceNo" not in source_names
        rename = RELEASE_II if release_ii else {}
        required = {_option(c): rename.get(c, c) for c in _REQUIRED}
        raw = read_log(f, required=required, fixed=True, encoding=cfg.encoding, delimiter=cfg.delimiter)
        raw = raw.rename({v: k for k, v in rename.items()})
        frames.append(stage(raw, path=EMBEDDED if cfg.path is None else str(f), counts=counters))
        names = {k: rename.get(v, v) for k, v in _NAMES.items()}  # the quarantine names the file's own columns
    df = pl.concat(frames, how="diagonal_relaxed")
    kept, q = validate(df, drop_cancellations=cfg.drop_cancellations, names=names, now=now,
                       extra=uci_rules(drop_cancellations=cfg.drop_cancellations, names=names,
                                       require_description=cfg.require_catalogue))
    source = "uci_online_retail (embedded)" if cfg.path is None else f"uci:{cfg.path}"
    return make_loaded(parts=[(kept, q)], items=catalogue(df), n_read=df.height, source=source, counters=counters)


def _option(col: str) -> str:
    alt = f" ('{RELEASE_II[col]}' in Online Retail II)" if col in RELEASE_II else ""
    return f"UCI Online Retail column {col}{alt}"


def column_names(path: Path, *, encoding: str, delimiter: str | None) -> list[str]:
    """The header of a CSV/TSV/Parquet file (empty for JSON lines: those must use the first release's names)."""
    fmt = file_format(path)
    if fmt == "jsonl":
        return []
    return scan_columns(path, fmt, encoding=encoding, delimiter=delimiter, required=[])[1]


def stage(raw: pl.DataFrame, *, path: str, counts: dict[str, int] | None = None) -> pl.DataFrame:
    """Source columns (Parquet types or CSV text) -> the staging frame of recsys.data.validate."""
    num = lambda c: pl.col(c).cast(pl.Float64, strict=False)  # noqa: E731
    cust = num("CustomerID")
    invoice = pl.col("InvoiceNo").cast(pl.String).str.strip_chars().str.to_uppercase()
    date = pl.col("InvoiceDate")
    ts = to_unix_seconds(raw["InvoiceDate"], counts=counts)
    if raw.schema["InvoiceDate"] == pl.String:
        ts = ts.fill_null(to_unix_seconds(raw["InvoiceDate"], fmt="%m/%d/%Y %H:%M"))
    return raw.select(
        pl.when(cust == cust.floor()).then(cust.cast(pl.Int64, strict=False).cast(pl.String))
        .otherwise(pl.col("CustomerID").cast(pl.String)).alias("user_id"),
        pl.col("StockCode").cast(pl.String).str.strip_chars().str.to_uppercase().alias("item_id"),
        pl.lit(ts).alias("timestamp"),
        date.cast(pl.String).alias("_raw_timestamp"),
        pl.when(invoice.str.starts_with("C")).then(pl.lit("cancel")).otherwise(pl.lit("purchase")).alias("event"),
        num("Quantity").alias("quantity"), pl.col("Quantity").cast(pl.String).alias("_raw_quantity"),
        num("UnitPrice").alias("price"), pl.col("UnitPrice").cast(pl.String).alias("_raw_price"),
        invoice.alias("_invoice"),
        normalise_id(pl.col("Description")).alias("_description"),
        *[pl.col(c).cast(pl.String).alias(f"{SRC}{c}") for c in _REQUIRED],
        pl.lit(path).alias("source_file"),
        pl.col("source_row").cast(pl.Int64),
    )


def non_product(code: pl.Expr) -> pl.Expr:
    """Postage, fees, manual/discount/sample lines, bad-debt and gift vouchers (``gift_0001_20``...)."""
    return code.is_in(list(NON_PRODUCT)) | code.str.starts_with("GIFT_")


def uci_rules(*, drop_cancellations: bool, require_description: bool,
              names: dict[str, str] | None = None) -> list[Rule]:
    """``names``: the file's own column names (``_NAMES``, or those of Online Retail II) for the quarantine."""
    n = names or _NAMES
    rules = [
        Rule(pl.col("user_id").is_null(), n["user_id"], "guest checkout: no customer id"),
        Rule(pl.col("_invoice").str.starts_with("A"), n["event"], "bad-debt adjustment ('A' invoice)"),
    ]
    if drop_cancellations:
        rules.append(Rule(pl.col("_invoice").str.starts_with("C"), n["event"], "cancellation ('C' invoice)"))
    rules += [
        Rule(non_product(pl.col("item_id")), "StockCode", "not a product (postage, fee, adjustment or voucher)"),
        Rule(pl.col("price").is_not_null() & (pl.col("price") <= 0), n["price"], "zero or negative unit price"),
    ]
    if require_description:
        rules.append(Rule(pl.col("_description").is_null(), "Description", "missing description"))
    return rules


def catalogue(df: pl.DataFrame) -> pl.DataFrame:
    """One row per product StockCode sold at a positive price: most frequent description, median price."""
    sold = df.filter(pl.col("item_id").is_not_null() & ~non_product(pl.col("item_id")) & (pl.col("price") > 0)
                     & (pl.col("quantity") > 0) & ~pl.col("_invoice").str.starts_with("A"))
    title = (sold.filter(pl.col("_description").is_not_null())
             .group_by("item_id", "_description").agg(pl.len().alias("n"), pl.col("source_row").min().alias("first"))
             .sort(["item_id", "n", "first"], descending=[False, True, False])
             .unique("item_id", keep="first", maintain_order=True)
             .select("item_id", pl.col("_description").alias("title")))
    price = sold.group_by("item_id").agg(pl.col("price").median().alias("price"))
    items = price.join(title, on="item_id", how="left").sort("item_id")
    # derived from the log rows: an id the catalogue rules reject is rejected on each of its log rows as well,
    # so the catalogue's own quarantine would only repeat them
    items, _ = clean_items(items.with_columns(pl.lit([], dtype=pl.List(pl.String)).alias("categories"))
                           .select([c for c in ITEMS if c in items.columns or c == "categories"]), source="uci")
    return items
