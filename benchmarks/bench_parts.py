"""What the new parts cost (issue 13): student training throughput of each user-tower kind and each negatives
kind, and the ranker's feature build time per 1k users. A benchmark, not a timed test.

    python benchmarks/bench_parts.py --run-dir RUN   # a run holding tables/ and teacher/ (Beauty-shaped)
    python benchmarks/bench_parts.py                 # builds the embedded Beauty tables + a stand-in teacher
    python benchmarks/bench_parts.py --quick         # synthetic shop, a few steps: a smoke run, nothing kept

Student: the product's ``TwoTower`` + ``StudentObjective`` (default distillation, no text input) under
``shard_model`` (DMP, gloo), steps from the product's ``step_batch`` (batch 1024), one worker process per
variant (``student_workers.py --side torchrec --user-tower U --negatives N``): ``--warmup`` untimed steps,
then ``--repeats`` x ``--steps`` timed ones; examples/s of wall time and per CPU-second, ratio vs
pooled + in_batch measured in the same run; 2-process rows run under ``torch.distributed.run`` (gloo,
1 thread per rank, as ``recsys.student.launch`` sets threads). Ranker: ``feature_context`` (valid split)
timed, then ``candidate_features`` on the union candidates of 1, 100 and 1000 users (the rank stage's own
``candidates`` when the run holds its sources, else synthetic unions of the same shape, ~125 per user).
Writes benchmarks/results/parts.json (``--quick``: a temporary folder unless ``--out-dir``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from bench_student import _merge, _run  # noqa: E402
from common import load_average, measure, ratio_row, write_result  # noqa: E402

BASE = "pooled+in_batch_1proc"
PAIRS = (("pooled", "in_batch"), ("pooled", "mixed"), ("pooled", "full"), ("sequential", "in_batch"),
         ("sequential", "mixed"), ("sequential", "full"))


def _tables(root: Path, *, quick: bool) -> None:
    """The data stage (embedded Beauty, or the synthetic shop with ``quick``) plus a stand-in teacher."""
    from recsys.artifacts import RunDir
    from recsys.contracts import teacher as T
    from recsys.data.config import DataConfig
    from recsys.data.stage import run
    from recsys.data.tables import load_tables

    rd = RunDir(root)
    synth = DataConfig(source="synthetic", synthetic_users=2000, synthetic_items=500)
    run(synth if quick else DataConfig(), rd)
    emb = np.random.default_rng(0).normal(size=(load_tables(rd.layout).n_items, 384)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    meta = T.TeacherMeta(model="stand-in", pooling="none", user_mode="pooled", history_n=20,
                         recency_decay=0.5, adapter_temperature=0.05)
    outs = T.write(layout=rd.layout, raw_items=emb, adapted_items=emb, meta=meta)
    rd.record("teacher", key="stand-in", config={}, outputs=outs, seconds=0.0)


def _student(args: argparse.Namespace, tmp: Path) -> dict[str, dict]:
    cores = os.cpu_count() or 1
    common = ["--side", "torchrec", "--data", "beauty", "--run-dir", str(args.run_dir), "--kd",
              "--batch-size", str(args.batch_size), "--steps", str(args.steps), "--repeats", str(args.repeats), "--warmup",
              str(args.warmup)]
    variants = [(f"{u}+{n}_1proc", 1, cores, u, n) for u, n in PAIRS]
    if args.two_proc and cores >= 2:
        variants += [(f"{u}+in_batch_2proc", 2, max(1, cores // 2), u, "in_batch")
                     for u in ("pooled", "sequential")]
    runs: dict[str, list[dict]] = {}
    for rnd in range(args.rounds):
        print(f"round {rnd + 1}/{args.rounds}", flush=True)
        for name, nproc, threads, u, n in variants:
            wargs = [*common, "--user-tower", u, "--negatives", n]
            runs.setdefault(name, []).append(_run(name, nproc=nproc, threads=threads, tmp=tmp,
                                                  need_gib=2.0 * nproc, worker_args=wargs, timeout_s=args.timeout))
    return {k: _merge(v) for k, v in runs.items()}


def _synthetic_union(*, users: np.ndarray, n_items: int, per_user: int, seed: int = 0):
    """A union-shaped frame (user, item, {s,t,a}_score/_rank, n_sources): ``per_user`` distinct
    random items per user, each source ranking a random 40 % of them."""
    import polars as pl

    rng = np.random.default_rng(seed)
    k = min(per_user, n_items)
    items = np.concatenate([rng.choice(n_items, k, replace=False) for _ in users])
    cols: dict[str, object] = {"user": np.repeat(users, k).astype(np.int64), "item": items.astype(np.int64)}
    depth, hit = 50, []
    for src in ("s", "t", "a"):  # the prefixes of recsys.rank.sources.SOURCE_ROWS
        h = rng.random(len(items)) < 0.4
        hit.append(h)
        cols[f"{src}_rank"] = np.where(h, rng.integers(0, depth, len(items)), depth).astype(np.int32)
        cols[f"{src}_score"] = rng.normal(size=len(items)).astype(np.float32)
    cols["n_sources"] = np.sum(hit, axis=0).astype(np.int8)
    return pl.DataFrame(cols).sort("user", "item")


def _ranker(args: argparse.Namespace) -> tuple[list[dict], list[str]]:
    import polars as pl

    from recsys.artifacts import RunDir
    from recsys.data.tables import load_tables
    from recsys.rank.config import RankConfig
    from recsys.rank.features import candidate_features, feature_context
    from recsys.rank.stage import candidates

    tables = load_tables(RunDir(args.run_dir).layout)
    cfg = RankConfig()
    load = load_average()
    ctx_t = measure(lambda: feature_context(tables=tables, split="valid", recent_days=cfg.recent_days),
                    repeats=3, warmup=0)
    ctx = ctx_t["last"]
    try:
        t0 = time.perf_counter()
        cands, _ = candidates(args.run_dir, cfg, tables=tables, split="valid")
        how = (f"the rank stage's own union candidates "
               f"(valid split, built in {time.perf_counter() - t0:.1f} s)")
    except Exception as e:  # noqa: BLE001 - a run without the rank stage's sources: synthetic unions instead
        users = tables.targets("valid")["user"].unique().sort().to_numpy()
        cands = _synthetic_union(users=users, n_items=tables.n_items, per_user=125)
        how = f"synthetic unions of 125 items per user ({type(e).__name__}: no rank-stage sources in the run)"
    users = np.unique(cands["user"].to_numpy())
    rng = np.random.default_rng(0)
    rows = [{"name": "feature_context_valid", "value": round(ctx_t["median"], 3), "unit": "s",
             "times_s": ctx_t["times"], "load_avg_before": load, "ctx_mib": round(ctx.nbytes() / 2**20, 1)}]
    for n in (1, 100, 1000):
        pick = np.sort(rng.choice(users, min(n, len(users)), replace=False))
        block = cands.filter(pl.col("user").is_in(pl.Series(pick).implode()))
        load = load_average()
        t = measure(lambda b=block: candidate_features(b, ctx=ctx), repeats=args.rank_repeats, warmup=1)
        per_1k = round(t["median"] / len(pick) * 1e6, 1)
        rows.append({"name": f"candidate_features_{len(pick)}_users", "value": per_1k,
                     "unit": "ms per 1k users", "median_s": round(t["median"], 4), "times_s": t["times"],
                     "candidates": block.height, "per_user": round(block.height / len(pick), 1),
                     "feature_rows": t["last"].height, "load_avg_before": load})
        print(f"  candidate_features {len(pick)} users: {rows[-1]['value']:,.1f} ms per 1k users "
              f"({block.height} candidates), load {load}", flush=True)
    notes = [f"ranker: feature_context once per split (median of 3 builds, valid split); candidate_features "
             f"(no teacher features, as the rank stage calls it) on {how}, {len(users)} users in all; "
             f"each batch is a random sample of users, median of {args.rank_repeats} calls after one warm-up; "
             "ms per 1k users = median seconds / users x 1e6"]
    return rows, notes


def _student_rows(res: dict[str, dict]) -> list[dict]:
    base = res.get(BASE, {}).get("median_examples_per_s")
    base_cpu = res.get(BASE, {}).get("median_examples_per_cpu_s")
    rows = []
    for name, r in res.items():
        if "median_examples_per_s" not in r:
            rows.append({"name": name, "value": None, "unit": "x",
                         "error": r.get("error") or r.get("skipped")})
            continue
        row = ratio_row(name=name, ours=r["median_examples_per_s"], baseline=base or 0.0, unit="examples/s",
                        higher_is_better=True, baseline_name=BASE)
        row.update(examples_per_cpu_s=round(r["median_examples_per_cpu_s"]),
                   cpu_time_ratio=round(r["median_examples_per_cpu_s"] / base_cpu, 2) if base_cpu else None,
                   world=r.get("world"), threads=r.get("threads"), load_avg_before=r.get("load_avg_before"),
                   peak_tree_rss_mib=round(r.get("peak_tree_rss_mib") or 0))
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run-dir", type=Path, default=None, help="a run with tables/ and teacher/ (else built)")
    ap.add_argument("--quick", action="store_true", help="synthetic shop, 3 steps, 1 repeat")
    ap.add_argument("--batch-size", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=20, help="timed steps per repeat")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=1, help="round-robin passes over the student variants")
    ap.add_argument("--rank-repeats", type=int, default=5)
    ap.add_argument("--no-2proc", dest="two_proc", action="store_false")
    ap.add_argument("--no-student", dest="student", action="store_false")
    ap.add_argument("--no-rank", dest="rank", action="store_false")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per worker")
    ap.add_argument("--out-dir", type=Path, default=None)
    args = ap.parse_args(argv)
    if args.quick:
        args.batch_size, args.steps, args.repeats, args.warmup, args.rank_repeats = 256, 3, 1, 1, 2
    tmp = Path(tempfile.mkdtemp(prefix="bench_parts_"))
    if args.run_dir is None:
        args.run_dir = tmp / "run"
        _tables(args.run_dir, quick=args.quick)
    res = _student(args, tmp) if args.student else {}
    rows, notes = _student_rows(res), []
    if res:
        notes.append(f"student: {args.run_dir} tables, batch {args.batch_size}, {args.warmup} warm-up steps then "
                     f"{args.repeats} x {args.steps} timed steps per variant, each variant its own process; the "
                     "product's default student config (distillation on, no text input) with user_tower and "
                     f"negatives set; value = examples/s ratio vs {BASE} in this run (cpu_time_ratio: the same per "
                     "CPU-second, the figure other jobs' load disturbs least); 1proc rows: all cores, 2proc: 1 "
                     "thread per rank under torch.distributed.run; OMP_WAIT_POLICY=PASSIVE")
    if args.rank:
        r_rows, r_notes = _ranker(args)
        rows += r_rows
        notes += r_notes
    out_dir = args.out_dir or (tmp if args.quick else None)
    path = write_result("parts", results=rows, notes=notes, out_dir=out_dir, probes=not args.quick,
                        extra={"runs": res, "quick": args.quick, "run_dir": str(args.run_dir)})
    print(json.dumps({r["name"]: r["value"] for r in rows}, indent=2))
    print(f"wrote {path}")
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
