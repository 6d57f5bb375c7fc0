"""Data stage: our polars preparation vs the same steps in pandas, plus the larger-than-memory path.

    python benchmarks/bench_data.py                       # 1M and 10M rows -> results/data.json
    python benchmarks/bench_data.py --sizes 100000 --repeats 1 --out /tmp/x   # quick smoke
    python benchmarks/bench_data.py --check               # pandas baseline == polars output on 50k rows
    python benchmarks/bench_data.py --profile 10000000    # where prepare() spends its time

Steps timed on each side (from frames already in memory; reading the parquet is timed separately):
``prepare`` (dedupe + catalogue + 5-core + id maps + positions, quarantine included), ``leave_one_out``,
and per-user history lists. Each run is its own process, so its peak RSS (getrusage) is clean; figures
are medians over ``--repeats`` runs after ``--warmup`` discarded runs. Ratios > 1 mean polars is better.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import load_average, ratio_row, run_worker, write_result  # noqa: E402
from data_workers import K, check, worker, write_train  # noqa: E402

SIDES = ("polars", "pandas", "streaming", "hist_polars", "hist_pandas")


# --------------------------------------------------------------------------- driver
def _runs(side: str, logs: Path, items: Path, *, repeats: int, warmup: int, timeout: float) -> dict[str, Any]:
    runs = []
    for i in range(warmup + repeats):
        r = run_worker(
            [__file__, "--worker", side, "--logs", str(logs), "--items", str(items)], timeout_s=timeout
        )
        print(
            f"  {side:<9} run {i}: "
            + (
                r["error"][:200] if "error" in r else f"{r['total_s']:.2f}s, peak {r['peak_rss_mib']:.0f} MiB"
            ),
            flush=True,
        )
        if "error" in r:
            return {"error": r["error"], "runs": runs}
        if i >= warmup:
            runs.append(r)
    med = {
        "total_s": statistics.median(r["total_s"] for r in runs),
        "peak_rss_mib": statistics.median(r["peak_rss_mib"] for r in runs),
        "rss_after_read_mib": statistics.median(r["rss_after_read_mib"] for r in runs),
    }
    for step in runs[0]["steps"]:
        med[f"{step}_s"] = statistics.median(r["steps"][step] for r in runs)
    return {
        **med,
        "times": [round(r["total_s"], 3) for r in runs],
        "kept": runs[0]["kept"],
        "train": runs[0]["train"],
        "users": runs[0]["users"],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--big-repeats", type=int, default=2, help="runs per side at >= 10M rows")
    ap.add_argument("--big-warmup", type=int, default=0, help="discarded runs per side at >= 10M rows")
    ap.add_argument("--sides", nargs="+", default=list(SIDES), choices=SIDES)
    ap.add_argument("--timeout", type=float, default=900, help="seconds per run before it counts as failed")
    ap.add_argument("--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "recsys-bench")
    ap.add_argument("--out", type=Path, default=None, help="results folder (default benchmarks/results)")
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--profile", type=int, default=0, metavar="ROWS")
    ap.add_argument("--worker", choices=[*SIDES, "write_train"], help=argparse.SUPPRESS)
    ap.add_argument("--train-out", help=argparse.SUPPRESS)
    ap.add_argument("--logs", help=argparse.SUPPRESS)
    ap.add_argument("--items", help=argparse.SUPPRESS)
    ap.add_argument("--profile-worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        if args.worker == "write_train":
            write_train(args.logs, args.items, args.train_out)
        else:
            worker(args.worker, args.logs, args.items, args.profile_worker)
        return 0
    from synth_logs import write_logs

    if args.check:
        check(args.data_dir)
        return 0
    if args.profile:
        logs, items = write_logs(n_rows=args.profile, out_dir=args.data_dir)
        r = run_worker(
            [__file__, "--worker", "polars", "--logs", str(logs), "--items", str(items), "--profile-worker"],
            timeout_s=args.timeout,
        )
        print({k: round(v, 2) for k, v in r.get("steps", {}).items()} or r)
        return 0

    results: list[dict[str, Any]] = []
    raw: dict[str, Any] = {}
    for n in args.sizes:
        logs, items = write_logs(n_rows=n, out_dir=args.data_dir)
        train = args.data_dir / f"train_{n}.parquet"
        if any(s.startswith("hist_") for s in args.sides) and not train.exists():
            run_worker(
                [
                    __file__,
                    "--worker",
                    "write_train",
                    "--logs",
                    str(logs),
                    "--items",
                    str(items),
                    "--train-out",
                    str(train),
                ],
                timeout_s=args.timeout,
            )
        for f in (logs, items, train):  # page cache warm for every side alike
            if f.exists():
                f.read_bytes()
        big = n >= 10_000_000
        reps, warm = (args.big_repeats, args.big_warmup) if big else (args.repeats, args.warmup)
        print(
            f"{n:,} rows ({logs}), load {load_average()}, {warm} warm-up + {reps} runs per side", flush=True
        )
        sides = {
            s: _runs(
                s,
                train if s.startswith("hist_") else logs,
                items,
                repeats=reps,
                warmup=warm,
                timeout=args.timeout,
            )
            for s in args.sides
        }
        raw[str(n)] = sides
        results.extend(_rows(n, sides, big=n >= 10_000_000))
    notes = [
        f"synthetic log: Zipf(0.95) items, lognormal(sigma=1.2) user activity, 1% exact duplicates, "
        f"{K}-core, leave-one-out; ids are strings as in real exports",
        "time = prepare + split + histories from frames in memory (parquet read excluded, timed apart); "
        "peak = the run's whole-process peak RSS (input frames included)",
        "polars = recsys.data.prepare + recsys.data.split.leave_one_out, the production path (string ids -> "
        "int32 codes once, one sort on packed 64-bit keys, np.bincount k-core, quarantine by masks)",
        "pandas runs with its default (pyarrow-backed) string dtype; same outputs as polars "
        "(bench_data.py --check)",
        "histories only: each side reads the train split from parquet, then builds user -> [items] "
        "(polars group_by/agg vs pandas sort_values + groupby(...).agg(list))",
        f"runs per side: {args.warmup} warm-up + {args.repeats} below 10M rows, "
        f"{args.big_warmup} + {args.big_repeats} at 10M (each run is a fresh process; input files pre-read "
        "into the page cache)",
    ]
    path = write_result("data", results=results, notes=notes, extra={"raw": raw}, out_dir=args.out)
    print(f"-> {path}")
    return 0


def _ok(*sides: dict[str, Any]) -> bool:
    return all(s and "error" not in s for s in sides)


def _rows(n: int, sides: dict[str, Any], *, big: bool) -> list[dict[str, Any]]:
    """Ratio rows (> 1 = the first side is better) from the per-side medians."""
    pol, pd_, st = sides.get("polars", {}), sides.get("pandas", {}), sides.get("streaming", {})
    hp, hd = sides.get("hist_polars", {}), sides.get("hist_pandas", {})
    tag = f"{n / 1e6:g}M rows"

    def row(name: str, a: dict[str, Any], b: dict[str, Any], key: str, base: str = "pandas",
            **kw: Any) -> dict[str, Any]:
        unit = "MiB" if "rss" in key else "s"
        return ratio_row(name=f"{name}, {tag}", ours=a[key], baseline=b[key], unit=unit,
                         higher_is_better=False, baseline_name=base, **kw)

    def working(a: dict[str, Any]) -> dict[str, Any]:  # memory the work itself added over its loaded input
        return {**a, "work_rss_mib": max(1.0, a["peak_rss_mib"] - a["rss_after_read_mib"])}

    rows: list[dict[str, Any]] = []
    for name, side in (("pandas", pd_), ("polars", pol), ("streaming", st)):
        if side and "error" in side:
            rows.append({"name": f"{name} at {tag}", "value": None, "error": side["error"][:300]})
    if _ok(pol, pd_):
        rows.append(row("speed: polars vs pandas, prepare+split+histories", pol, pd_, "total_s",
                        target=10 if big else None))
        rows.append(row("peak memory: polars vs pandas", pol, pd_, "peak_rss_mib", target=3 if big else None))
        rows.append(row("working memory (peak - input): polars vs pandas", working(pol), working(pd_),
                        "work_rss_mib"))
        rows += [row(f"speed: {step} step", pol, pd_, f"{step}_s") for step in ("prepare", "split",
                                                                                 "histories")]
    if _ok(hp, hd):
        rows.append(row("speed: histories only, polars vs pandas", hp, hd, "total_s", headline=big))
        rows.append(row("peak memory: histories only, polars vs pandas", hp, hd, "peak_rss_mib",
                        headline=big))
        rows.append(row("working memory (peak - input): histories only, polars vs pandas", working(hp),
                        working(hd), "work_rss_mib"))
    if _ok(st, pol):
        rows.append(row("peak memory: streaming vs in-memory polars", st, pol, "peak_rss_mib",
                        base="polars in memory", streaming_time_s=round(st["total_s"], 2), headline=big))
    return rows


if __name__ == "__main__":
    raise SystemExit(main())
