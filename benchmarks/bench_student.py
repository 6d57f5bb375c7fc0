"""Training throughput of the student two-tower: TorchRec DMP (1 and 2 processes, gloo, table-wise /
column-wise sharding, fused rowwise-Adagrad TBE tables) vs a plain single-process PyTorch two-tower with
``nn.EmbeddingBag`` tables, same towers, MLPs and in-batch softmax, same batches, in the same run.

    python benchmarks/bench_student.py            # 5M-row tables + the Beauty-size figure (~30 min)
    python benchmarks/bench_student.py --quick    # 50k-row tables, a few steps: a smoke run, nothing kept
    python benchmarks/bench_student.py --only A,B --merge-into benchmarks/results/student.json  # re-measure A, B
    python benchmarks/bench_student.py --render-only benchmarks/results/student.json  # rows/notes from its runs

Large: synthetic Zipf ids (``student_synth.py``) over ``--items`` item rows and ``--users`` user rows
(``--dim`` wide, 128 by default; the ``d64_`` 1-thread pairs at ``--narrow-dim``), lognormal histories (mean 20,
long tail), batch ``--batch-size``; ``tables_*`` variants run the same table work without towers or softmax (what
the fused kernels change). Beauty: the embedded Beauty
tables (22k users, 12k items), batch 1024, with and without the default distillation (random stand-in
384-d teacher: throughput does not depend on its values). Every measurement is its own process
(``student_workers.py``; 2 processes under torchrun); variants run round-robin ``--rounds`` times so a load
swing hits them all; ``_1t`` variants run 1 thread, the others ``cores // nproc`` threads per process, as
``recsys.student.launch`` sets. Throughput is reported per wall second and per CPU-second.
Memory: peak summed RSS of the process tree (sampled every 0.5 s; torchrun's launcher included) and each
rank's own peak. A variant whose estimated memory exceeds what the machine has free (less 2 GiB) is skipped
and named in the notes. Writes benchmarks/results/student.json (``--quick``: a temporary folder unless
``--out-dir``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import load_average, run_command, write_result
from student_rows import notes, rows

WORKER = HERE / "student_workers.py"
GIB = 2**30


def _beauty_tables(root: Path) -> None:
    """The data stage on the embedded Beauty sample plus a stand-in teacher (random unit vectors)."""
    sys.path.insert(0, str(HERE.parent))
    from recsys.artifacts import RunDir
    from recsys.contracts import teacher as T
    from recsys.data.config import DataConfig
    from recsys.data.stage import run
    from recsys.data.tables import load_tables

    rd = RunDir(root)
    run(DataConfig(), rd)
    if rd.stage_record("teacher") is None:
        emb = np.random.default_rng(0).normal(size=(load_tables(rd.layout).n_items, 384)).astype(np.float32)
        emb /= np.linalg.norm(emb, axis=1, keepdims=True)
        meta = T.TeacherMeta(model="stand-in", pooling="none", user_mode="pooled", history_n=20, recency_decay=0.5,
                             adapter_temperature=0.05)
        outs = T.write(layout=rd.layout, raw_items=emb, adapted_items=emb, meta=meta)
        rd.record("teacher", key="stand-in", config={}, outputs=outs, seconds=0.0)


def _available_gib() -> float:
    for ln in Path("/proc/meminfo").read_text().splitlines():
        if ln.startswith("MemAvailable"):
            return int(ln.split()[1]) / 2**20
    return float("inf")


def _run(name: str, *, nproc: int, threads: int, worker_args: list[str], tmp: Path, need_gib: float,
         timeout_s: float) -> dict:
    """One worker process (or a torchrun of ``nproc``); -> its JSON + tree peak, or {"error"/"skipped": ...}."""
    avail = _available_gib()
    if need_gib > avail - 2.0:
        return {"skipped": f"needs ~{need_gib:.1f} GiB, {avail:.1f} GiB available (2 GiB kept free)"}
    out = tmp / f"{name}.{len(list(tmp.glob(name + '.*')))}.json"
    launcher = [sys.executable] if nproc == 1 else [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                                    f"--nproc_per_node={nproc}"]
    # passive OpenMP waits: on a machine busier than its cores a spinning thread burns the core its
    # descheduled partner needs (2-thread steps measured 10x slower than 1-thread ones at load 17 without it)
    env = {"OMP_NUM_THREADS": str(threads), "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
    load = load_average()
    r = run_command([*launcher, str(WORKER), *worker_args, "--out", str(out)], env=env, timeout_s=timeout_s)
    if r["rc"] != 0 or not out.exists():
        return {"error": f"rc {r['rc']}: {r['stderr_tail'][-600:]}", "load_avg_before": load}
    res = json.loads(out.read_text())
    res.update(peak_tree_rss_mib=r["peak_tree_rss_mib"], wall_s=r["wall_s"], load_avg_before=load)
    print(f"  {name}: {res['median_examples_per_s']:,.0f} ex/s, {res['median_examples_per_cpu_s']:,.0f} ex/cpu-s, tree peak {r['peak_tree_rss_mib']:,.0f} MiB, "
          f"load {load}", flush=True)
    return res


def _merge(runs: list[dict]) -> dict:
    """Rounds of one variant -> the first round's record with every repeat pooled and the median over them."""
    ok = [r for r in runs if "examples_per_s" in r]
    if not ok:
        return runs[0]
    out = dict(ok[0])
    out["examples_per_s"] = [x for r in ok for x in r["examples_per_s"]]
    out["examples_per_cpu_s"] = [x for r in ok for x in r["examples_per_cpu_s"]]
    out["median_examples_per_s"] = float(np.median(out["examples_per_s"]))
    out["median_examples_per_cpu_s"] = float(np.median(out["examples_per_cpu_s"]))
    out["peak_tree_rss_mib"] = max(r["peak_tree_rss_mib"] for r in ok)
    out["load_avg_before"] = [r["load_avg_before"] for r in ok]
    return out


def _set(argv: list[str], flag: str, value: object) -> list[str]:
    """``argv`` with ``flag``'s value replaced."""
    i = argv.index(flag)
    return [*argv[:i + 1], str(value), *argv[i + 2:]]


def _one_thread_pairs(prefix: str, syn: list[str], *, base: float, gib: float) -> dict[str, tuple[int, int, list[str], float]]:
    """The 1-thread plain / TorchRec pair, full step and table work only, on the synthetic data of ``syn``."""
    sp, st = ["--side", "plain", "--optimizer", "adagrad", *syn], ["--side", "torchrec", *syn]
    return {prefix + "plain_adagrad_1t": (1, 1, sp, base + 2 * gib),
            prefix + "torchrec_1proc_1t": (1, 1, st, base + gib),
            prefix + "tables_plain_adagrad_1t": (1, 1, [*sp, "--tables-only"], 1.0 + 2 * gib),
            prefix + "tables_torchrec_1proc_1t": (1, 1, [*st, "--tables-only"], 1.0 + gib)}


def _variants(args: argparse.Namespace) -> dict[str, tuple[int, int, list[str], float]]:
    """name -> (processes, threads each, worker args, GiB it needs); Beauty's set, then the large synthetic one.
    ``_1t``: one process on one thread, the pair least disturbed by other jobs' load."""
    cores = os.cpu_count() or 1
    table_gib = (args.items + args.users) * args.dim * 4 / GIB
    syn = ["--data", "synth", "--items", str(args.items), "--users", str(args.users), "--dim", str(args.dim),
           "--batch-size", str(args.batch_size), "--steps", str(args.steps), "--repeats", str(args.repeats),
           "--warmup", str(args.warmup)]
    base = 1.0 + 3 * args.batch_size ** 2 * 4 / GIB  # interpreter + libraries, the (B, B) logits and masks
    plain, tr = ["--side", "plain", "--optimizer", "adagrad", *syn], ["--side", "torchrec", *syn]
    v: dict[str, tuple[int, int, list[str], float]] = {}
    if args.beauty:
        bty = ["--data", "beauty", "--run-dir", str(args.run_dir), "--batch-size", "1024", "--steps",
               str(args.beauty_steps), "--repeats", str(args.repeats), "--warmup", "1"]
        v.update({"beauty_plain_adagrad_1t": (1, 1, ["--side", "plain", *bty], 1.5),
                  "beauty_torchrec_1proc_1t": (1, 1, ["--side", "torchrec", *bty], 1.5),
                  "beauty_plain_adagrad": (1, cores, ["--side", "plain", *bty], 1.5),
                  "beauty_torchrec_1proc": (1, cores, ["--side", "torchrec", *bty], 1.5),
                  "beauty_torchrec_2proc": (2, max(1, cores // 2), ["--side", "torchrec", *bty], 3.0),
                  "beauty_torchrec_2proc_kd": (2, max(1, cores // 2), ["--side", "torchrec", "--kd", *bty], 3.0)})
    v.update({"plain_adagrad_1t": (1, 1, plain, base + 2 * table_gib),
              "torchrec_1proc_1t": (1, 1, tr, base + table_gib),
              "plain_adagrad": (1, cores, plain, base + 2 * table_gib),
              "torchrec_1proc": (1, cores, tr, base + table_gib),
              "torchrec_2proc": (2, max(1, cores // 2), tr, 2 * base + table_gib),
              "torchrec_2proc_cw": (2, max(1, cores // 2), [*tr, "--sharding", "column_wise"],
                                    2 * base + table_gib),
              # the table work alone: same lookups, backward and row updates, no towers or softmax
              "tables_plain_adagrad_1t": (1, 1, [*plain, "--tables-only"], 1.0 + 2 * table_gib),
              "tables_torchrec_1proc_1t": (1, 1, [*tr, "--tables-only"], 1.0 + table_gib),
              "tables_torchrec_2proc": (2, max(1, cores // 2), [*tr, "--tables-only"], 2.0 + table_gib)})
    if args.small_batch:  # the 1-thread pairs again at the student's own batch size: a 16x smaller softmax
        sb = _set(_set(syn, "--batch-size", args.small_batch), "--steps", 2 * args.steps)
        v.update(_one_thread_pairs(f"b{args.small_batch}_", sb, base=1.0, gib=table_gib))
    if args.narrow_dim and args.narrow_dim != args.dim:  # the 1-thread pairs again with narrower id tables
        v.update(_one_thread_pairs(f"d{args.narrow_dim}_", _set(syn, "--dim", args.narrow_dim), base=base,
                                   gib=(args.items + args.users) * args.narrow_dim * 4 / GIB))
    if args.sparse_adam:
        v["plain_sparse_adam_1t"] = (1, 1, ["--side", "plain", "--optimizer", "sparse_adam", *syn],
                                     base + 3 * table_gib)
    if args.dense_adam:
        v["plain_dense_adam_1t"] = (1, 1, ["--side", "plain", "--optimizer", "dense_adam", *syn],
                                    base + 4 * table_gib)
    return v


def _render(path: Path, args: argparse.Namespace) -> int:
    """Rows and notes again from the stored runs (same figures; machine, date and command kept)."""
    doc = json.loads(path.read_text())
    vars(args).update({k: v for k, v in doc["sizes"].items() if k != "batch_size"}, batch_size=doc["sizes"]
                      ["batch_size"], beauty=any(k.startswith("beauty_") for k in doc["runs"]))
    doc.update(results=rows(doc["runs"], args), notes=notes(doc["runs"], args))
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    os.replace(tmp, path)
    print(f"rewrote {path}")
    return 0


def _merge_into(path: Path, res: dict[str, dict], args: argparse.Namespace) -> int:
    """Add freshly measured variants to a stored run (each run keeps its own load record) and re-render."""
    from common import command_line, machine_info

    doc = json.loads(path.read_text())
    doc["runs"].update(res)
    m = machine_info()
    doc.setdefault("merged", []).append({"variants": sorted(res), "command": command_line(), "date": m["date"],
                                         "git_commit": m["git_commit"], "load_avg": m["load_avg"]})
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return _render(path, args)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="50k-row tables, batch 512, 3 steps, no Beauty")
    ap.add_argument("--items", type=int, default=5_000_000)
    ap.add_argument("--users", type=int, default=5_000_000)
    ap.add_argument("--dim", type=int, default=128, help="item-id and user-id table width of the large tables "
                    "(the issue's range is 64-128: the wider, the larger the tables' share of a step)")
    ap.add_argument("--narrow-dim", type=int, default=64, help="also the 1-thread pairs with id tables this wide; "
                    "0 = off")
    ap.add_argument("--batch-size", type=int, default=4096)
    ap.add_argument("--steps", type=int, default=10, help="timed steps per repeat")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--small-batch", type=int, default=1024, help="also the 1-thread pairs at this batch (the "
                    "student's default), 2x the steps; 0 = off")
    ap.add_argument("--rounds", type=int, default=2, help="round-robin passes over the variants")
    ap.add_argument("--beauty-steps", type=int, default=30)
    ap.add_argument("--no-beauty", dest="beauty", action="store_false")
    ap.add_argument("--sparse-adam", action="store_true", help="also plain SparseAdam (3x the table memory)")
    ap.add_argument("--dense-adam", action="store_true", help="also plain dense Adam, the strawman (4x the tables)")
    ap.add_argument("--profile", type=int, default=3, help="steps profiled (round 1, the 1-thread pair at "
                                                           "the large size, after their clock); 0 = off")
    ap.add_argument("--timeout", type=float, default=1200.0, help="seconds per worker")
    ap.add_argument("--out-dir", type=Path, default=None)
    ap.add_argument("--only", default=None, help="comma-separated variant names: measure only these")
    ap.add_argument("--merge-into", type=Path, default=None, metavar="JSON",
                    help="with --only: put these runs into a written student.json (replacing theirs) and rebuild "
                         "its rows; the merge is recorded in its 'merged' list")
    ap.add_argument("--render-only", type=Path, default=None, metavar="JSON",
                    help="measure nothing: rebuild the rows and notes of a written student.json from its runs")
    args = ap.parse_args(argv)
    if args.render_only:
        return _render(args.render_only, args)
    if args.quick:
        args.items = args.users = 50_000
        args.batch_size, args.steps, args.repeats, args.warmup, args.rounds = 512, 3, 1, 1, 1
        args.beauty, args.profile, args.small_batch, args.narrow_dim = False, 0, 0, 0
    tmp = Path(tempfile.mkdtemp(prefix="bench_student_"))
    args.run_dir = tmp / "beauty"
    if args.beauty:
        _beauty_tables(args.run_dir)
    runs: dict[str, list[dict]] = {}
    for rnd in range(args.rounds):
        print(f"round {rnd + 1}/{args.rounds}", flush=True)
        for name, (nproc, threads, wargs, need) in _variants(args).items():
            if args.only and name not in args.only.split(","):
                continue
            prof = ["--profile", str(args.profile)] if rnd == 0 and args.profile and name in (
                "plain_adagrad_1t", "torchrec_1proc_1t") else []
            runs.setdefault(name, []).append(_run(name, nproc=nproc, threads=threads, worker_args=[*wargs, *prof],
                                                  tmp=tmp, need_gib=need, timeout_s=args.timeout))
    res = {k: _merge(v) for k, v in runs.items()}
    med = {k: v["median_examples_per_s"] for k, v in res.items() if "median_examples_per_s" in v}
    if args.merge_into:
        return _merge_into(args.merge_into, res, args)
    out_dir = args.out_dir or (tmp if args.quick else None)
    path = write_result("student", results=rows(res, args), notes=notes(res, args), out_dir=out_dir,
                        probes=not args.quick,
                        extra={"runs": res, "quick": args.quick,
                               "sizes": {"items": args.items, "users": args.users, "dim": args.dim,
                                         "batch_size": args.batch_size, "steps": args.steps,
                                         "repeats": args.repeats, "warmup": args.warmup, "rounds": args.rounds,
                                         "small_batch": args.small_batch, "narrow_dim": args.narrow_dim}})
    print(json.dumps({k: round(v) for k, v in med.items()}, indent=2))
    print(f"wrote {path}")
    return 1 if any("error" in v for v in res.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
