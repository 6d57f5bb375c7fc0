"""Build recsys/data/embedded/uci_online_retail.parquet from ../shared/data/uci_online_retail.

Run once by maintainers (the product never reads ../shared): python scripts/build_embedded_uci.py
Keeps every row and the original columns and order (row i of the copy = row i of the UCI sheet, so
quarantine row numbers point into the original), re-encoded as zstd Parquet. Checks the well-known UCI
figures (541,909 rows, 25,900 invoices, 4,070 StockCodes, 4,372 customers, 135,080 guest rows, 1,454
rows without Description) before writing.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT.parent / "shared" / "data" / "uci_online_retail" / "raw" / "online_retail_2010-12_2011-12.parquet"
OUT = ROOT / "recsys" / "data" / "embedded" / "uci_online_retail.parquet"
SCHEMA = {"InvoiceNo": pl.String, "StockCode": pl.String, "Description": pl.String, "Quantity": pl.Int64,
          "InvoiceDate": pl.String, "UnitPrice": pl.Float64, "CustomerID": pl.Float64, "Country": pl.String}


def build(src: Path, out: Path) -> pl.DataFrame:
    df = pl.read_parquet(src)
    assert dict(df.schema) == SCHEMA, df.schema
    counts = {
        "rows": df.height,
        "invoices": df["InvoiceNo"].n_unique(),
        "stock_codes": df["StockCode"].n_unique(),
        "customers": df["CustomerID"].drop_nulls().n_unique(),
        "guest_rows": df["CustomerID"].null_count(),
        "no_description": df["Description"].null_count(),
    }
    expected = {"rows": 541_909, "invoices": 25_900, "stock_codes": 4_070, "customers": 4_372,
                "guest_rows": 135_080, "no_description": 1_454}
    assert counts == expected, counts
    out.parent.mkdir(parents=True, exist_ok=True)
    df.write_parquet(out, compression="zstd", compression_level=19, statistics=True)
    assert pl.read_parquet(out).equals(df)
    print(f"{out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}: {out.stat().st_size:,} B, {counts}")
    return df


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src", type=Path, default=SRC)
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args()
    build(a.src, a.out)
