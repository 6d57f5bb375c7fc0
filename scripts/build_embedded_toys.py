"""Build recsys/data/embedded/toys_*.parquet from ../shared/data/amazon_toys_2014_5core.

Run once by maintainers (the product never reads ../shared): python scripts/build_embedded_toys.py
Checks the published counts (19,412 users, 11,924 items, 167,597 interactions) before writing.

The interactions are S3-Rec's ``Toys_and_Games.txt`` ("user item item ..." in each user's published order), with
users and items named by reviewerID and ASIN through ``derived/users.tsv`` / ``derived/items.tsv``. The file has no
timestamps: ``timestamp`` is the 1-based position in the user's sequence (the schema's "sequence position when the
source has no time"), so leave-one-out holds out exactly the published last and second-to-last items.
"""

from __future__ import annotations

import argparse
import html
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT.parent / "shared" / "data" / "amazon_toys_2014_5core"
OUT = ROOT / "recsys" / "data" / "embedded"


def build(src: Path, out: Path) -> None:
    users = pl.read_csv(src / "derived" / "users.tsv", separator="\t", quote_char=None,
                        schema_overrides={"user_id": pl.Int64, "reviewerID": pl.String})
    items = pl.read_csv(src / "derived" / "items.tsv", separator="\t", quote_char=None,
                        schema_overrides={"item_id": pl.Int64, "asin": pl.String, "title": pl.String,
                                          "categories": pl.String})
    rows = []
    for line in (src / "raw" / "s3rec" / "Toys_and_Games.txt").read_text().splitlines():
        u, *seq = (int(x) for x in line.split())
        rows.extend((u, i, p) for p, i in enumerate(seq, start=1))
    seq = pl.DataFrame(rows, schema={"u": pl.Int64, "i": pl.Int64, "timestamp": pl.Int64}, orient="row")
    assert seq.height == 167_597, seq.height
    assert seq["u"].n_unique() == 19_412 and users.height == 19_412
    assert seq["i"].n_unique() == 11_924 and items.height == 11_924
    assert seq.select("u", "i").is_unique().all(), "a (user, item) pair repeats"
    inter = (seq.join(users.select(pl.col("user_id").alias("u"), "reviewerID"), on="u", how="left")
             .join(items.select(pl.col("item_id").alias("i"), "asin"), on="i", how="left"))
    assert inter["reviewerID"].null_count() == 0 and inter["asin"].null_count() == 0
    assert inter["reviewerID"].n_unique() == 19_412  # identical sequences still have distinct reviewers
    inter = inter.rename({"reviewerID": "user_id"})
    inter = inter.sort("user_id", "timestamp").select("user_id", pl.col("asin").alias("item_id"), "timestamp")
    unescape = lambda s: html.unescape(s)  # noqa: E731  "Barrel of Monkeys &amp; ..." -> "&"
    # categories = the levels of every path below the shared root "Toys & Games", first path first, each level once
    # (Beauty's layout: a flat list whose last entry is the leaf); 345 items have only the root -> []
    def levels(paths: str | None) -> list[str]:
        out: list[str] = []
        for path in (paths or "").split(" | "):
            out += [html.unescape(lv) for lv in path.split(" > ")[1:] if lv and html.unescape(lv) not in out]
        return out

    cats = pl.Series([levels(p) for p in items["categories"].to_list()], dtype=pl.List(pl.String))
    items = items.select(
        pl.col("asin").alias("item_id"),
        pl.col("title").map_elements(unescape, return_dtype=pl.String),
        pl.lit(None, dtype=pl.String).alias("brand"),  # S3-Rec brand ids are unnamed
        cats.alias("categories"),
    ).sort("item_id")
    assert items["title"].str.contains("&amp;").sum() == 0
    out.mkdir(parents=True, exist_ok=True)
    inter.write_parquet(out / "toys_interactions.parquet", compression="zstd", compression_level=19)
    items.write_parquet(out / "toys_items.parquet", compression="zstd", compression_level=19)
    for p in sorted(out.glob("toys_*.parquet")):
        print(f"{p.relative_to(ROOT)}: {p.stat().st_size:,} B")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src", type=Path, default=SRC)
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args()
    build(a.src, a.out)
