"""Top-K recommendations from a finished run directory (index + student vectors + ranker).

    recsys recommend -o runs/demo USER_ID [USER_ID ...] [-k 10] [--similar ITEM_ID ...]

Ids are the raw ids of your logs. Unknown users get the most popular unseen items with --fallback.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pipelines.common import UsageError, command_main


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("users", nargs="*", help="raw user ids")
    ap.add_argument("-o", "--out", type=Path, default=Path("runs/demo"), help="run directory (default runs/demo)")
    ap.add_argument("-k", type=int, default=10, help="items per user (default 10)")
    ap.add_argument("--variant", default="student_kd", help="student variant to serve (default student_kd)")
    ap.add_argument("--similar", nargs="*", default=[], metavar="ITEM_ID", help="items to find neighbours of")
    ap.add_argument("--fallback", action="store_true", help="popular items for unknown users instead of an error")
    ap.add_argument("--titles", action="store_true", help="show item titles")


def main(argv: list[str] | None = None) -> int:
    return command_main(argv, prog="recsys recommend", doc=__doc__, add=add_arguments, run=run)


def run(args: argparse.Namespace) -> int:
    if not args.users and not args.similar:
        raise UsageError("give user ids and/or --similar item ids")
    if args.k < 1:
        raise UsageError(f"-k {args.k}: give at least 1 item per user")
    import polars as pl

    from recsys.api import Recommender
    from recsys.contracts import StageError

    try:
        rec = Recommender.load(args.out, variant=args.variant)
    except StageError as e:  # a damaged or inconsistent artifact: one paragraph naming the file
        raise UsageError(f"cannot load {args.out}: {e}") from None
    except (KeyError, ValueError) as e:  # OSError names its file already
        raise UsageError(f"cannot load {args.out}: {type(e).__name__}: {e}") from None
    titles = rec.tables.items.select("item_id", "title") if args.titles else None
    pl.Config.set_tbl_rows(200)
    pl.Config.set_fmt_str_lengths(60)
    if args.users:
        try:
            out = rec.recommend(args.users, k=args.k, on_unknown="popular" if args.fallback else "raise")
        except KeyError as e:
            raise UsageError(f"{e.args[0]} (use --fallback for popular items)") from None
        print(out.join(titles, on="item_id", how="left") if titles is not None else out)
    if args.similar:
        try:
            out = rec.similar_items(args.similar, k=args.k)
        except KeyError as e:
            raise UsageError(f"--similar: {e.args[0]}; give item ids of the run's catalogue ({args.out})") from None
        if titles is not None:
            out = out.join(titles.rename({"item_id": "similar_item_id"}), on="similar_item_id", how="left")
        print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
