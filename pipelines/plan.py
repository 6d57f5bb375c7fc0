"""Dry-run the TorchRec sharding planner for a large catalogue on a cluster you do not have (yet).

    recsys plan --items 100000000 --dim 128 --gpus 8 64
    recsys plan --items 1000000 --dim 64 --users 5000000 --gpus 8 --sharding row_wise --json

Builds the student's own tables (``recsys.student.towers.tables_for``: item ids, brands, categories, user
ids; with ``--user-tower sequential`` the sequence table of its EmbeddingCollection) on the meta device, gives EmbeddingShardingPlanner a Topology of N CUDA devices and prints, per
table, the sharding type, kernel, ranks and the memory each rank holds. Runs on a CPU-only machine; nothing is allocated.
See docs/SCALING.md for running the plan for real under torchrun.
"""

from __future__ import annotations

import argparse
import json
import sys

from pipelines.common import command_main


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--items", type=int, default=100_000_000, help="catalogue size (item-id table rows)")
    ap.add_argument("--dim", type=int, default=None,
                    help="item/user-id embedding width (default: StudentConfig.item_id_dim); the other tables "
                    "take StudentConfig's widths")
    ap.add_argument(
        "--users", type=int, default=0, help="user-id table rows (0 = no user-id table, the default)"
    )
    ap.add_argument("--brands", type=int, default=0, help="brand table rows (0 = items / 100)")
    ap.add_argument("--categories", type=int, default=0, help="category table rows (0 = items / 1000)")
    ap.add_argument("--gpus", type=int, nargs="+", default=[8], help="world sizes to plan for, e.g. 8 64")
    ap.add_argument("--gpus-per-host", type=int, default=8)
    ap.add_argument("--hbm-gib", type=float, default=80.0, help="memory per GPU (H100 80, A100 40/80, L4 24)")
    ap.add_argument("--ddr-gib", type=float, default=64.0, help="host memory per rank for UVM-backed tables")
    ap.add_argument("--batch-size", type=int, default=4096, help="global batch per rank the planner costs")
    ap.add_argument(
        "--sharding",
        default="auto",
        choices=["auto", "table_wise", "row_wise", "column_wise", "table_row_wise", "data_parallel"],
    )
    ap.add_argument("--user-tower", default="pooled", choices=["pooled", "sequential"],
                    help="student.user_tower: 'sequential' adds its EmbeddingCollection's sequence table t_seq_item")
    ap.add_argument("--json", action="store_true", help="print the plans as JSON")


def main(argv: list[str] | None = None) -> int:
    return command_main(argv, prog="recsys plan", doc=__doc__, add=add_arguments, run=run)


def run(args: argparse.Namespace) -> int:

    from recsys.student.config import StudentConfig
    from recsys.student.planner import format_plan, plan_tables, plan_to_json, rank_totals, student_tables

    tables = student_tables(
        items=args.items, dim=args.dim, users=args.users, brands=args.brands, categories=args.categories,
        cfg=StudentConfig(user_tower=args.user_tower),
    )
    out = []
    for gpus in args.gpus:
        try:
            plans, _ = plan_tables(
                tables=tables,
                gpus=gpus,
                hbm_gib=args.hbm_gib,
                ddr_gib=args.ddr_gib,
                batch_size=args.batch_size,
                local_world_size=args.gpus_per_host,
                sharding=args.sharding,
            )
        except Exception as e:  # noqa: BLE001 - torchrec's PlannerError: say it plainly, go on to the next size
            msg = str(e).split("\n")[0]
            print(
                f"{gpus} GPUs: no plan fits ({msg}). Add GPUs, raise --hbm-gib, or lower --dim.",
                file=sys.stderr,
            )
            out.append({"gpus": gpus, "error": msg})
            continue
        if args.json:
            totals = rank_totals(plans, gpus=gpus)
            out.append(
                {
                    "gpus": gpus,
                    "hbm_gib": args.hbm_gib,
                    "tables": plan_to_json(plans),
                    "max_rank_bytes": max(totals),
                    "total_bytes": sum(totals),
                }
            )
        else:
            print(
                f"\n=== {gpus} x CUDA ({args.hbm_gib:g} GiB HBM, {min(gpus, args.gpus_per_host)} per host), "
                f"{args.items:,} items x {next(t.dim for t in tables if t.name == 't_item')} dims, "
                f"sharding={args.sharding}"
            )
            print(format_plan(plans, gpus=gpus, hbm_gib=args.hbm_gib))
    if args.json:
        print(json.dumps(out, indent=2))
    return 1 if out and all("error" in o for o in out) else 0


if __name__ == "__main__":
    raise SystemExit(main())
