"""The README's main job end to end: wall time and peak memory, cold and warm.

    python benchmarks/bench_e2e.py                                  # embedded Beauty (= recsys demo)
    python benchmarks/bench_e2e.py data.source=synthetic --out /tmp/x   # quick check of the script itself

Runs ``python -m pipelines.evaluate -o <fresh run dir> teacher.cache_dir=<cache> [overrides]``:

* cold: an empty teacher cache (every item text is embedded) and an empty run directory;
* warm: the teacher cache the cold run filled, a new empty run directory (every stage recomputes except
  the item-text embeddings, which is what a re-run on new logs costs).

Memory is the peak of the summed RSS of the whole process tree (torchrun student workers included),
sampled every 0.5 s. CPU is the user + system seconds of the whole tree (and, per stage, the manifest's
``cpu_seconds``): on a shared machine wall time measures the neighbours, CPU seconds measure the job.
Targets (idle 2-core machine): cold <= 6 min, warm <= 3 min, peak tree RSS <= 4 GiB.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import load_average, run_command, write_result  # noqa: E402

TARGETS = {"cold": 360.0, "warm": 180.0}
RSS_TARGET_MIB = 4096.0


def run_once(*, overrides: list[str], cache: Path, work: Path, tag: str, timeout: float) -> dict[str, Any]:
    run_dir = Path(tempfile.mkdtemp(prefix=f"e2e-{tag}-", dir=work))
    shutil.rmtree(run_dir)  # the pipeline must create it: a truly fresh run directory
    cmd = [
        sys.executable,
        "-m",
        "pipelines.evaluate",
        "-o",
        str(run_dir),
        f"teacher.cache_dir={cache}",
        *overrides,
    ]
    load = load_average()
    r = run_command(cmd, timeout_s=timeout)
    r.update(tag=tag, load_before=load, load_after=load_average(), run_dir=str(run_dir), cmd=" ".join(cmd[1:]))
    manifest = run_dir / "manifest.json"
    if manifest.exists():
        m = json.loads(manifest.read_text())
        r["stage_timings"] = m.get("timings", {})
        r["stage_cpu_seconds"] = m.get("cpu_seconds", {})
        # per-stage seconds from the stage records: present even when the run was killed part-way
        r["stage_seconds"] = {k: v.get("seconds") for k, v in m.get("stages", {}).items()}
    status = "ok" if r["rc"] == 0 else f"FAILED ({r['rc']})"
    print(
        f"  {tag}: {status} {r['wall_s']:.1f}s wall, {r['cpu_s']:.0f} CPU s, peak tree RSS "
        f"{r['peak_tree_rss_mib']:.0f} MiB, load {load} -> {r['load_after']}",
        flush=True,
    )
    if r["rc"] != 0:
        print(r["stderr_tail"][-1500:], flush=True)
    return r


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides for the main job")
    ap.add_argument(
        "--repeats", type=int, default=1, help="cold/warm pairs (each cold run has its own cache)"
    )
    ap.add_argument("--warm-repeats", type=int, default=2, help="warm runs per cold run")
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument(
        "--work", type=Path, default=None, help="where run dirs and caches go (default: a temp dir)"
    )
    ap.add_argument("--keep", action="store_true", help="keep the run directories")
    ap.add_argument("--warm-cache", type=Path, default=None,
                    help="skip the cold run: copy this filled teacher cache and time warm runs only")
    ap.add_argument("--out", type=Path, default=None, help="results folder (default benchmarks/results)")
    args = ap.parse_args(argv)

    work = args.work or Path(tempfile.mkdtemp(prefix="recsys-e2e-"))
    work.mkdir(parents=True, exist_ok=True)
    runs: dict[str, list[dict[str, Any]]] = {"cold": [], "warm": []}
    try:
        for i in range(args.repeats):
            cache = work / f"teacher-cache-{i}"
            shutil.rmtree(cache, ignore_errors=True)
            if args.warm_cache is not None:
                shutil.copytree(args.warm_cache, cache)
                for _ in range(args.warm_repeats):
                    runs["warm"].append(
                        run_once(
                            overrides=args.overrides, cache=cache, work=work, tag="warm", timeout=args.timeout
                        )
                    )
                continue
            cache.mkdir()
            runs["cold"].append(
                run_once(overrides=args.overrides, cache=cache, work=work, tag="cold", timeout=args.timeout)
            )
            for _ in range(args.warm_repeats if runs["cold"][-1]["rc"] == 0 else 0):
                runs["warm"].append(
                    run_once(
                        overrides=args.overrides, cache=cache, work=work, tag="warm", timeout=args.timeout
                    )
                )
    finally:
        if not args.keep and args.work is None:
            shutil.rmtree(work, ignore_errors=True)

    results = []
    for tag, rs in runs.items():
        if tag == "cold" and args.warm_cache is not None:
            continue
        ok = [r for r in rs if r["rc"] == 0]
        if not ok:
            err = rs[0]["stderr_tail"][-400:] if rs else "not run (the cold run failed)"
            results.append(
                {
                    "name": f"{tag} run wall time",
                    "value": None,
                    "unit": "s",
                    "met": False,
                    "target": f"<= {TARGETS[tag]:.0f} s",
                    "error": err,
                }
            )
            continue
        wall = statistics.median(r["wall_s"] for r in ok)
        mem = statistics.median(r["peak_tree_rss_mib"] for r in ok)
        results.append(
            {
                "name": f"{tag} run wall time",
                "value": round(wall, 1),
                "unit": "s",
                "target": f"<= {TARGETS[tag]:.0f} s",
                "met": wall <= TARGETS[tag],
                "times": [r["wall_s"] for r in ok],
                "stage_timings": ok[0].get("stage_timings", {}),
                "load": [[r["load_before"], r["load_after"]] for r in ok],
            }
        )
        results.append(
            {
                "name": f"{tag} run CPU seconds (process tree)",
                "value": round(statistics.median(r["cpu_s"] for r in ok), 1),
                "unit": "s",
                "all": [r["cpu_s"] for r in ok],
                "stage_cpu_seconds": ok[0].get("stage_cpu_seconds", {}),
            }
        )
        results.append(
            {
                "name": f"{tag} run peak memory (process tree)",
                "value": round(mem, 0),
                "unit": "MiB",
                "target": f"<= {RSS_TARGET_MIB:.0f} MiB",
                "met": mem <= RSS_TARGET_MIB,
                "all": [r["peak_tree_rss_mib"] for r in ok],
            }
        )
    by_name = {r["name"]: r.get("value") for r in results}
    if by_name.get("cold run wall time") and by_name.get("warm run wall time"):
        results.append(
            {
                "name": "warm / cold wall time",
                "value": round(by_name["warm run wall time"] / by_name["cold run wall time"], 3),
                "unit": "ratio",
            }
        )
    job = " ".join(["python -m pipelines.evaluate -o RUN teacher.cache_dir=CACHE", *args.overrides])
    notes = [
        f"job: {job}",
        "cold = empty teacher cache + empty run dir; warm = filled cache + empty run dir",
        "memory = peak of the summed RSS of the process tree (sampled every 0.5 s)",
        "CPU = user + system seconds of the process tree (resource.getrusage of the finished children)",
        f"load average before each run: {[r['load_before'] for rs in runs.values() for r in rs]}",
    ]
    runs_slim = {
        t: [{k: v for k, v in r.items() if k != "stdout_tail"} for r in rs] for t, rs in runs.items()
    }
    path = write_result(
        "e2e.custom" if args.overrides else "e2e.warm" if args.warm_cache else "e2e",
        results=results,
        notes=notes,
        extra={"job": job, "runs": runs_slim},
        out_dir=args.out,
    )
    print(f"-> {path}")
    return 0 if all(r["rc"] == 0 for rs in runs.values() for r in rs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
