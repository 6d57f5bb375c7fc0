"""How time and memory grow with the catalogue and the log: fitted log-log exponents and a plot.

    python benchmarks/bench_growth.py                      # -> results/growth.json + results/growth.png
    python benchmarks/bench_growth.py --items 10000 100000 --interactions 100000 1000000   # quicker

Items axis (d=64): exact top-100 search for 1024 queries (blocked torch matmul + top-k), FAISS IVF-Flat
build (nlist ~ 4 sqrt N), and a TorchRec training step (EBC under DMP, fused row-wise Adagrad, batch 1024,
20-item histories) when recsys.student is importable. Interactions axis: the polars data stage (prepare +
leave-one-out + histories). Each point runs in its own process; memory = peak RSS minus the RSS after the
libraries were imported. The exponent b of time ~ size^b is a least-squares fit in log-log space:
b ~ 1 is linear, < 1 means fixed costs still dominate, > 1 super-linear.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, load_average, run_worker, write_result  # noqa: E402

WORKER = str(Path(__file__).resolve().parent / "growth_workers.py")
ITEM_KINDS = ["exact", "faiss_build", "student_step"]
LABEL = {
    "exact": "exact top-100 search (1024 queries)",
    "faiss_build": "FAISS IVF-Flat build",
    "student_step": "student train step (batch 1024)",
    "data": "data stage (prepare+split+histories)",
}


def exponent(sizes: list[float], values: list[float]) -> float | None:
    pts = [(s, v) for s, v in zip(sizes, values) if v and v > 0]
    if len(pts) < 2:
        return None
    x, y = np.log([p[0] for p in pts]), np.log([p[1] for p in pts])
    return round(float(np.polyfit(x, y, 1)[0]), 2)


def sweep(kind: str, sizes: list[int], *, timeout: float) -> list[dict[str, Any]]:
    points = []
    for n in sizes:
        r = run_worker([WORKER, kind, str(n)], timeout_s=timeout)
        if "error" in r:
            print(f"  {kind:<13} {n:>10,}: FAILED {r['error'][:300]}", flush=True)
            points.append({"size": n, "error": r["error"][:500]})
            if "No module named" in r["error"]:
                break
            continue
        mem = max(0.0, r["peak_rss_mib"] - r["rss_start_mib"])
        print(
            f"  {kind:<13} {n:>10,}: {r['median']:.4f}s  +{mem:.0f} MiB (peak {r['peak_rss_mib']:.0f})",
            flush=True,
        )
        points.append(
            {
                "size": n,
                "seconds": r["median"],
                "times": r["times"],
                "memory_mib": round(mem, 1),
                "peak_rss_mib": r["peak_rss_mib"],
                **{k: r[k] for k in ("queries_per_s", "examples_per_s", "nlist") if k in r},
            }
        )
    return points


def plot(curves: dict[str, dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    for col, (axis, kinds) in enumerate([("items", ITEM_KINDS), ("interactions", ["data"])]):
        for row, (key, ylabel) in enumerate([("seconds", "seconds"), ("memory_mib", "MiB above libraries")]):
            ax = axes[row][col]
            for kind in kinds:
                c = curves.get(kind)
                pts = [p for p in (c or {}).get("points", []) if p.get(key)]
                if not pts:
                    continue
                b = c["time_exponent" if key == "seconds" else "memory_exponent"]
                ax.plot(
                    [p["size"] for p in pts], [p[key] for p in pts], "o-", label=f"{LABEL[kind]}  (b={b})"
                )
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel(axis)
            ax.set_ylabel(ylabel)
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=8)
    fig.suptitle("Growth: time and memory vs size (log-log; b = fitted exponent of size^b)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, nargs="+", default=[10_000, 30_000, 100_000, 300_000, 1_000_000])
    ap.add_argument(
        "--interactions", type=int, nargs="+", default=[100_000, 300_000, 1_000_000, 3_000_000, 10_000_000]
    )
    ap.add_argument("--kinds", nargs="+", default=[*ITEM_KINDS, "data"], choices=[*ITEM_KINDS, "data"])
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--out", type=Path, default=None, help="results folder (default benchmarks/results)")
    args = ap.parse_args(argv)
    out_dir = args.out or RESULTS
    out_dir.mkdir(parents=True, exist_ok=True)

    print(f"load {load_average()}", flush=True)
    curves: dict[str, dict[str, Any]] = {}
    for kind in args.kinds:
        sizes = args.interactions if kind == "data" else args.items
        pts = sweep(kind, sizes, timeout=args.timeout)
        ok = [p for p in pts if "seconds" in p]
        curves[kind] = {
            "axis": "interactions" if kind == "data" else "items",
            "label": LABEL[kind],
            "points": pts,
            "time_exponent": exponent([p["size"] for p in ok], [p["seconds"] for p in ok]),
            "memory_exponent": exponent([p["size"] for p in ok], [p["memory_mib"] for p in ok]),
        }
    png = out_dir / "growth.png"
    plot(curves, png)

    rows = []
    for kind, c in curves.items():
        ok = [p for p in c["points"] if "seconds" in p]
        if not ok:
            rows.append(
                {
                    "name": f"{c['label']}",
                    "value": None,
                    "error": (c["points"][0].get("error", "no points") if c["points"] else "not run")[:200],
                }
            )
            continue
        lo, hi = ok[0], ok[-1]
        rows.append(
            {
                "name": f"{c['label']}: time exponent over {c['axis']} {lo['size']:,}..{hi['size']:,}",
                "value": c["time_exponent"],
                "unit": "b in size^b",
                "seconds_smallest": round(lo["seconds"], 4),
                "seconds_largest": round(hi["seconds"], 4),
            }
        )
        rows.append(
            {
                "name": f"{c['label']}: memory exponent over {c['axis']}",
                "value": c["memory_exponent"],
                "unit": "b in size^b",
                "mib_smallest": lo["memory_mib"],
                "mib_largest": hi["memory_mib"],
            }
        )
    notes = [
        "each point: own process, median of up to 3 runs after a warm-up (one cold run when a run "
        "takes > 20 s); memory = peak RSS minus RSS after importing the libraries",
        "exponents near 1 are the expected linear scaling; below 1 at small sizes = fixed overheads",
        f"plot: {png.relative_to(out_dir.parent) if out_dir == RESULTS else png}",
    ]
    path = write_result(
        "growth", results=rows, notes=notes, extra={"curves": curves, "plot": "growth.png"}, out_dir=out_dir
    )
    print(f"-> {path}, {png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
