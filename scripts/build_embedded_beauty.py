"""Build recsys/data/embedded/beauty_*.parquet from ../shared/data/amazon_beauty_2014_5core.

Run once by maintainers (the product never reads ../shared): python scripts/build_embedded_beauty.py
Checks the published counts (22,363 users, 12,101 items, 198,502 interactions) before writing.
"""

from __future__ import annotations

import argparse
import html
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT.parent / "shared" / "data" / "amazon_beauty_2014_5core" / "derived"
OUT = ROOT / "recsys" / "data" / "embedded"


def build(src: Path, out: Path) -> None:
    inter = pl.read_csv(src / "interactions.tsv.gz", separator="\t", schema_overrides={"asin": pl.String})
    items = pl.read_csv(src / "items.tsv", separator="\t", quote_char=None, schema_overrides={"asin": pl.String})
    assert inter.height == 198_502, inter.height
    assert inter["reviewerID"].n_unique() == 22_363
    assert items.height == 12_101 and inter["asin"].n_unique() == 12_101
    # S3-Rec order (seq_pos) breaks same-day ties as the published protocol does: keep it as the row order.
    inter = (inter.sort("reviewerID", "seq_pos")
             .select(pl.col("reviewerID").alias("user_id"), pl.col("asin").alias("item_id"),
                     pl.col("unixReviewTime").cast(pl.Int64).alias("timestamp")))
    # attributes = "brand | category | ..." where brand is "Unknown" when missing; S3-Rec dropped brands used
    # by < 5 items, so a list may also start directly with a top-level category (then there is no brand).
    attrs = items["attributes"].fill_null("").str.split(" | ").list.eval(pl.element().filter(pl.element() != ""))
    top = set(attrs.list.get(1, null_on_oob=True).filter(attrs.list.first() == "Unknown").drop_nulls().unique())
    starts_with_category = attrs.list.first().is_in(list(top)).fill_null(True)
    items = items.with_columns(attrs.alias("_a"), starts_with_category.alias("_c")).select(
        pl.col("asin").alias("item_id"),
        pl.col("title").fill_null(""),
        pl.when(pl.col("_c")).then(None).otherwise(pl.col("_a").list.first().replace("Unknown", None)).alias("brand"),
        pl.when(pl.col("_c")).then(pl.col("_a")).otherwise(pl.col("_a").list.slice(1)).alias("categories"),
    ).sort("item_id")
    unescape = lambda c: pl.col(c).map_elements(html.unescape, return_dtype=pl.String)  # noqa: E731  "L&#39;Oreal"
    items = items.with_columns(unescape("title"), unescape("brand"),
                               pl.col("categories").list.eval(pl.element().map_elements(html.unescape, return_dtype=pl.String)))
    out.mkdir(parents=True, exist_ok=True)
    inter.write_parquet(out / "beauty_interactions.parquet", compression="zstd", compression_level=19)
    items.write_parquet(out / "beauty_items.parquet", compression="zstd", compression_level=19)
    for p in sorted(out.glob("beauty_*.parquet")):
        print(f"{p.relative_to(ROOT)}: {p.stat().st_size:,} B")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src", type=Path, default=SRC)
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args()
    build(a.src, a.out)
