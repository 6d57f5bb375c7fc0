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
from common import load_average, ratio_row, run_command, write_result

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
        b, p = args.small_batch, f"b{args.small_batch}_"
        sb = [*syn[:syn.index("--batch-size")], "--batch-size", str(b), "--steps", str(2 * args.steps),
              "--repeats", str(args.repeats), "--warmup", str(args.warmup)]
        sp, st = ["--side", "plain", "--optimizer", "adagrad", *sb], ["--side", "torchrec", *sb]
        v.update({p + "plain_adagrad_1t": (1, 1, sp, 1.0 + 2 * table_gib),
                  p + "torchrec_1proc_1t": (1, 1, st, 1.0 + table_gib),
                  p + "tables_plain_adagrad_1t": (1, 1, [*sp, "--tables-only"], 1.0 + 2 * table_gib),
                  p + "tables_torchrec_1proc_1t": (1, 1, [*st, "--tables-only"], 1.0 + table_gib)})
    if args.narrow_dim and args.narrow_dim != args.dim:  # the 1-thread pairs again with narrower id tables
        p, nd = f"d{args.narrow_dim}_", args.narrow_dim
        narrow_gib = (args.items + args.users) * nd * 4 / GIB
        sn = [*syn[:syn.index("--dim")], "--dim", str(nd), *syn[syn.index("--dim") + 2:]]
        np_, nt = ["--side", "plain", "--optimizer", "adagrad", *sn], ["--side", "torchrec", *sn]
        v.update({p + "plain_adagrad_1t": (1, 1, np_, base + 2 * narrow_gib),
                  p + "torchrec_1proc_1t": (1, 1, nt, base + narrow_gib),
                  p + "tables_plain_adagrad_1t": (1, 1, [*np_, "--tables-only"], 1.0 + 2 * narrow_gib),
                  p + "tables_torchrec_1proc_1t": (1, 1, [*nt, "--tables-only"], 1.0 + narrow_gib)})
    if args.sparse_adam:
        v["plain_sparse_adam_1t"] = (1, 1, ["--side", "plain", "--optimizer", "sparse_adam", *syn],
                                     base + 3 * table_gib)
    if args.dense_adam:
        v["plain_dense_adam_1t"] = (1, 1, ["--side", "plain", "--optimizer", "dense_adam", *syn],
                                    base + 4 * table_gib)
    return v


def _rows(res: dict[str, dict], args: argparse.Namespace) -> list[dict]:
    size = (f"{args.items / 1e6:g}M-row item + {args.users / 1e6:g}M-row user tables at {args.dim} dims, "
            f"batch {args.batch_size}")
    plain = "plain PyTorch (sparse Adagrad)"
    rows = []

    def ratio(name: str, ours: str, base: str, baseline_name: str = plain, **kw) -> None:
        a, b = res.get(ours, {}), res.get(base, {})
        if "median_examples_per_s" in a and "median_examples_per_s" in b:
            cpu = a["median_examples_per_cpu_s"] / b["median_examples_per_cpu_s"]
            rows.append(ratio_row(name=name, ours=a["median_examples_per_s"], baseline=b["median_examples_per_s"],
                                  unit="examples/s", higher_is_better=True, baseline_name=baseline_name,
                                  cpu_time_ratio=round(cpu, 2), **kw))

    ratio(f"examples/s: TorchRec DMP 1 process vs plain PyTorch, 1 thread each, {size}", "torchrec_1proc_1t",
          "plain_adagrad_1t", target=1.5)
    ratio(f"examples/s: TorchRec DMP 1 process vs plain PyTorch, all cores each, {size}", "torchrec_1proc",
          "plain_adagrad", target=1.5)
    ratio(f"examples/s: TorchRec DMP 2 processes table-wise vs plain PyTorch on all cores, {size}", "torchrec_2proc",
          "plain_adagrad", target=1.5)
    ratio(f"examples/s: TorchRec DMP 2 processes column-wise vs plain PyTorch on all cores, {size}", "torchrec_2proc_cw",
          "plain_adagrad")
    ratio(f"examples/s: TorchRec DMP 1 process vs plain PyTorch SparseAdam, 1 thread each, {size}",
          "torchrec_1proc_1t", "plain_sparse_adam_1t", baseline_name="plain PyTorch (SparseAdam)")
    ratio(f"examples/s: TorchRec DMP 1 process vs plain PyTorch dense Adam (strawman), 1 thread each, {size}",
          "torchrec_1proc_1t", "plain_dense_adam_1t", baseline_name="plain PyTorch (dense Adam, strawman)")
    ratio(f"table work only (lookups, backward, row updates): TorchRec 1 process vs plain PyTorch, 1 thread "
          f"each, {size}", "tables_torchrec_1proc_1t", "tables_plain_adagrad_1t")
    ratio(f"table work only: TorchRec DMP 2 processes vs plain PyTorch on 1 thread, {size}", "tables_torchrec_2proc",
          "tables_plain_adagrad_1t")
    if args.small_batch:
        p, sb = f"b{args.small_batch}_", size.replace(f"batch {args.batch_size}", f"batch {args.small_batch}")
        ratio(f"examples/s: TorchRec DMP 1 process vs plain PyTorch, 1 thread each, {sb} (the student's default)",
              p + "torchrec_1proc_1t", p + "plain_adagrad_1t")
        ratio(f"table work only: TorchRec 1 process vs plain PyTorch, 1 thread each, {sb}",
              p + "tables_torchrec_1proc_1t", p + "tables_plain_adagrad_1t")
    if args.narrow_dim and args.narrow_dim != args.dim:
        p, nd = f"d{args.narrow_dim}_", size.replace(f"at {args.dim} dims", f"at {args.narrow_dim} dims")
        ratio(f"examples/s: TorchRec DMP 1 process vs plain PyTorch, 1 thread each, {nd}", p + "torchrec_1proc_1t",
              p + "plain_adagrad_1t")
        ratio(f"table work only: TorchRec 1 process vs plain PyTorch, 1 thread each, {nd}",
              p + "tables_torchrec_1proc_1t", p + "tables_plain_adagrad_1t")
    ratio("scaling: 2 processes vs 1 (TorchRec DMP, gloo, same cores), large tables", "torchrec_2proc",
          "torchrec_1proc", baseline_name="1 process")
    for ours, base in (("torchrec_1proc_1t", "plain_adagrad_1t"), ("torchrec_2proc", "plain_adagrad")):
        if "peak_tree_rss_mib" in res.get(ours, {}) and "peak_tree_rss_mib" in res.get(base, {}):
            rows.append(ratio_row(name=f"peak memory (process tree): {ours} vs {base}, large tables",
                                  ours=res[ours]["peak_tree_rss_mib"], baseline=res[base]["peak_tree_rss_mib"],
                                  unit="MiB", higher_is_better=False, baseline_name=plain))
    ratio("examples/s: TorchRec DMP 1 process vs plain PyTorch, 1 thread each, Beauty size (batch 1024)",
          "beauty_torchrec_1proc_1t", "beauty_plain_adagrad_1t")
    ratio("examples/s: TorchRec DMP 1 process vs plain PyTorch, all cores each, Beauty size (batch 1024)",
          "beauty_torchrec_1proc", "beauty_plain_adagrad")
    ratio("examples/s: TorchRec DMP 2 processes vs plain PyTorch on all cores, Beauty size", "beauty_torchrec_2proc",
          "beauty_plain_adagrad")
    ratio("examples/s: with distillation (in-batch ranking + embedding KD + teacher carry) vs without, 2 processes, "
          "Beauty", "beauty_torchrec_2proc_kd", "beauty_torchrec_2proc", baseline_name="no KD")
    return rows


def _notes(res: dict[str, dict], args: argparse.Namespace) -> list[str]:
    notes = [
        (f"large: synthetic Zipf(0.95) item and user ids (ranks scattered over the table), {args.items:,} item "
         f"rows and {args.users:,} user rows at {args.dim} dims (+ 10k-row brand and 1k-leaf category tables at "
         f"16), lognormal histories (mean 20, sigma 1, capped at 200; category bags 2x), batch {args.batch_size}; "
         f"{args.warmup} warm-up steps, then {args.steps} steps x {args.repeats} repeats per process, "
         f"{args.rounds} round-robin rounds over the variants, median of all repeats"),
        ("same towers (the product's mlp; its fused in-batch softmax with logQ over the global batch, recsys.student.fused), same batches, built "
         "before the clock on both sides; plain = nn.EmbeddingBag(sparse=True, mode=mean), one lookup per table "
         "(its features' bags concatenated, as TorchRec groups them) + torch.optim.Adagrad (per-element state; "
         "torch has no row-wise Adagrad) and AdamW on the MLPs, in one process; TorchRec = the product's TwoTower "
         "+ StudentObjective under recsys.student.sharding.shard_model (DMP, gloo, fused rowwise-Adagrad TBE); "
         "_1t rows: 1 thread; the others: cores / processes threads per process"),
        ("cpu_time_ratio: the same ratio in examples per CPU-second (all threads and ranks): on a machine "
         "busier than its cores a process gets CPU in proportion to its threads, so wall-clock ratios between a "
         "1- and a 2-thread run say little; the 1-thread pair's CPU-time ratio is the figure other jobs disturb "
         "least. Every worker runs with OMP_WAIT_POLICY=PASSIVE (unless set): with spinning waits a 2-thread step "
         "ran ~10x slower than a 1-thread one at load 17 on 2 cores"),
        ("memory: peak summed RSS of the process tree every 0.5 s (2 processes: torchrun's launcher included); "
         "each run's own peak per rank is in runs.*.peak_rss_mib_per_rank"),
    ]
    if args.beauty:
        notes.append("Beauty: embedded Beauty tables (22k users, 12k items), batch 1024, product defaults without "
                     "text input; _kd = the default distillation on a random stand-in 384-d teacher")
    skipped = {k: v.get("skipped") or v.get("error") for k, v in res.items() if "median_examples_per_s" not in v}
    if skipped:
        notes.append("not measured: " + "; ".join(f"{k}: {v}" for k, v in skipped.items()))
    notes.extend(_why(res, batch=args.batch_size, small_batch=args.small_batch,
                      narrow_dim=getattr(args, "narrow_dim", 0)))
    notes.extend(_profile_notes(res))
    return notes


def _why(res: dict[str, dict], *, batch: int, small_batch: int, narrow_dim: int = 0) -> list[str]:
    """Where the 1-thread step's CPU time goes, from the full-step and table-only runs (ms per step); what the
    2-process wall-clock gain is made of."""
    eps = {k: v.get("median_examples_per_s") for k, v in res.items()}
    cps = {k: v.get("median_examples_per_cpu_s") for k, v in res.items()}
    out = []
    if all(eps.get(k) and cps.get(k) for k in ("torchrec_2proc", "plain_adagrad", "plain_adagrad_1t")):
        out.append(f"the 2-process rows are wall clock: {eps['torchrec_2proc'] / eps['plain_adagrad']:.2f}x plain "
                   f"on all cores, but {cps['torchrec_2proc'] / cps['plain_adagrad']:.2f}x per CPU-second: two "
                   "1-thread ranks each run a whole half-batch, where plain's second thread only helps inside "
                   f"ops (plain all cores vs 1 thread: {eps['plain_adagrad'] / eps['plain_adagrad_1t']:.2f}x); "
                   "the gain is parallel efficiency, not less work per example")
    for prefix, b, at in (("", batch, f"batch {batch}"), (f"b{small_batch}_", small_batch, f"batch {small_batch}"),
                          (f"d{narrow_dim}_", batch if narrow_dim else 0, f"batch {batch}, {narrow_dim}-dim id tables")):
        keys = tuple(prefix + k for k in ("plain_adagrad_1t", "torchrec_1proc_1t", "tables_plain_adagrad_1t",
                                          "tables_torchrec_1proc_1t"))
        if not b or not all(cps.get(k) for k in keys):
            continue
        full_p, full_t, tab_p, tab_t = (b / cps[k] * 1e3 for k in keys)
        rest_p, rest_t = full_p - tab_p, full_t - tab_t
        out.append(f"where the time goes at {at} (1 thread, CPU ms per step): the full step costs plain "
                   f"{full_p:,.0f} vs TorchRec {full_t:,.0f} ({full_p / full_t:.2f}x); the table work alone "
                   f"(lookups, backward, row updates) {tab_p:,.0f} vs {tab_t:,.0f} ({tab_p / tab_t:.1f}x) is "
                   f"{tab_p / full_p:.0%} of plain's step; the rest (towers, the in-batch softmax over a {b}x{b} "
                   f"logit matrix, AdamW) costs {rest_p:,.0f} vs {rest_t:,.0f}, the same code on both sides, so "
                   f"even free table work would give at most {full_p / max(rest_t, 1e-9):.2f}x")
    if any(n.startswith("where the time") for n in out):
        out.append("what TBE does differently: one fused kernel per table group pools the bags, and its backward "
                   "sorts the step's ids once, sums each unique row's gradient and applies the row-wise Adagrad "
                   "update in place (one accumulator per row); plain nn.EmbeddingBag(sparse=True) emits a COO "
                   "gradient with one row per lookup, and torch.optim.Adagrad coalesces it (a sort) and then makes "
                   "separate passes (square, add into the rows x dim state, sparse_mask, sqrt, add eps, divide, add "
                   "into the weights)")
    return out


def _profile_notes(res: dict[str, dict]) -> list[str]:
    """Where the profiled 1-thread pair's step goes (``--profile``), as shares: the profiler's op times are wall
    time spent inside ops, which a busy machine inflates, so only their proportions carry over."""
    out = []
    for name in ("plain_adagrad_1t", "torchrec_1proc_1t"):
        prof = res.get(name, {}).get("profile")
        if not prof:
            continue
        total = prof["self_cpu_ms_per_step"] or 1.0
        ph = ", ".join(f"{k} {v / total:.0%}" for k, v in prof["phases_ms_per_step"].items())
        top = ", ".join(f"{o['op'].split('::')[-1]} {o['share']:.0%}" for o in prof["top_ops"][:10])
        out.append(f"profile of {name} (share of the step): phases {ph}; top ops by self time {top}")
    cw = res.get("torchrec_2proc_cw", {}).get("plan")
    if cw and all(v[0] == "column_wise" and v[2] == 1 for v in cw.values()):
        out.append("column-wise: the planner kept every table in one column shard (all of its columns; "
                   "shard_model sets no min_partition), so each table lives whole on one rank, as under "
                   "table-wise: the two rows measure the same kind of layout")
    return out


def _render(path: Path, args: argparse.Namespace) -> int:
    """Rows and notes again from the stored runs (same figures; machine, date and command kept)."""
    doc = json.loads(path.read_text())
    vars(args).update({k: v for k, v in doc["sizes"].items() if k != "batch_size"}, batch_size=doc["sizes"]
                      ["batch_size"], beauty=any(k.startswith("beauty_") for k in doc["runs"]))
    doc.update(results=_rows(doc["runs"], args), notes=_notes(doc["runs"], args))
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
    path = write_result("student", results=_rows(res, args), notes=_notes(res, args), out_dir=out_dir,
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
