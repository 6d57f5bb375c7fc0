"""The rows and notes of ``results/student.json`` from its runs (``bench_student.py``: measured, merged or
re-rendered): the ratios against plain PyTorch, and where a step's time goes."""

from __future__ import annotations

import argparse

from common import ratio_row


def rows(res: dict[str, dict], args: argparse.Namespace) -> list[dict]:
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
    pairs = []
    if args.small_batch:
        pairs.append((f"b{args.small_batch}_", size.replace(f"batch {args.batch_size}", f"batch {args.small_batch}"),
                      " (the student's default)"))
    if args.narrow_dim and args.narrow_dim != args.dim:
        pairs.append((f"d{args.narrow_dim}_", size.replace(f"at {args.dim} dims", f"at {args.narrow_dim} dims"), ""))
    for p, label, why in pairs:
        ratio(f"examples/s: TorchRec DMP 1 process vs plain PyTorch, 1 thread each, {label}{why}",
              p + "torchrec_1proc_1t", p + "plain_adagrad_1t")
        ratio(f"table work only: TorchRec 1 process vs plain PyTorch, 1 thread each, {label}",
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


def notes(res: dict[str, dict], args: argparse.Namespace) -> list[str]:
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
    notes.extend(why(res, batch=args.batch_size, small_batch=args.small_batch,
                      narrow_dim=getattr(args, "narrow_dim", 0)))
    notes.extend(profile_notes(res))
    return notes


def why(res: dict[str, dict], *, batch: int, small_batch: int, narrow_dim: int = 0) -> list[str]:
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


def profile_notes(res: dict[str, dict]) -> list[str]:
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
