"""Index benchmark: build time, QPS and recall@10 of flat / IVF-Flat / IVF-PQ / HNSW, and exact search
as a fraction of this machine's limits, against faiss's own IndexFlatIP. One run, median of repeats
after a warm-up; JSON to benchmarks/results/index.json.

Limits, measured in the same run:
* batched exact search is compute-bound: 2*N*d FLOP per query vs the fp32 matmul peak (torch 2048^3 GEMM);
* one query at a time is bandwidth-bound: 4*N*d bytes read per query vs a streaming-read rate.
Targets: exact batched >= 50% of the compute bound; ANN >= 0.95 recall@10 at >= 30x exact QPS at 1M.

    python benchmarks/bench_index.py --quick      # 100k items only (~2 min on 2 cores)
    python benchmarks/bench_index.py              # 100k and 1M (long: run on an idle machine)
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from recsys.index import IndexConfig, build_index, exact_topk, tune
from recsys.index.synthetic import clustered_vectors, queries_like
from recsys.index.tune import recall_vs_exact

K = 10


def timed(fn: Callable[[], object], *, repeats: int) -> float:
    fn()  # warm-up
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def machine_limits(repeats: int) -> dict[str, float]:
    import torch

    a = torch.randn(2048, 2048)
    gemm = timed(lambda: a @ a, repeats=max(5, repeats))
    x = torch.randn(64 << 20)  # 256 MB, far beyond cache
    read = timed(lambda: x.sum(), repeats=max(5, repeats))
    return {"matmul_gflops": 2 * 2048**3 / gemm / 1e9, "read_gbps": x.numel() * 4 / read / 1e9}


def machine_info() -> dict[str, object]:
    import faiss
    import torch

    mem = next((int(line.split()[1]) // 1024 for line in open("/proc/meminfo") if line.startswith("MemTotal")), None) \
        if os.path.exists("/proc/meminfo") else None
    return {"cores": os.cpu_count(), "ram_mb": mem, "cpu": platform.processor() or platform.machine(),
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(), "faiss": faiss.__version__,
            "faiss_gpus": faiss.get_num_gpus(), "numpy": np.__version__,
            "device": "cuda" if faiss.get_num_gpus() > 0 else "cpu",
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}


def bench_size(n: int, *, d: int, n_queries: int, n_single: int, repeats: int, lim: dict[str, float],
               kinds: list[str]) -> dict[str, object]:
    import faiss

    items = clustered_vectors(n, d, n_clusters=max(64, int(np.sqrt(n))), seed=0)
    q = queries_like(items, n_queries, seed=1)
    q_tune = queries_like(items, 1000, seed=2)
    flop = 2.0 * n * d
    res: dict[str, object] = {"items": n, "dim": d, "queries": n_queries}
    # exact, batched: ours vs faiss IndexFlatIP
    t = timed(lambda: exact_topk(items, q, k=K), repeats=repeats)
    truth = exact_topk(items, q, k=K)[1]
    fl = faiss.IndexFlatIP(d)
    fl.add(items)
    tf = timed(lambda: fl.search(q, K), repeats=repeats)
    res["exact_batched"] = {"ours_qps": n_queries / t, "ours_frac_compute": flop * n_queries / t / 1e9 / lim["matmul_gflops"],
                            "faiss_qps": n_queries / tf,
                            "faiss_frac_compute": flop * n_queries / tf / 1e9 / lim["matmul_gflops"],
                            "faiss_recall@10": recall_vs_exact(fl.search(q, K)[1], truth)}
    # exact, one query at a time (bandwidth-bound)
    one = q[:n_single]
    t1 = timed(lambda: [exact_topk(items, one[i:i + 1], k=K) for i in range(n_single)], repeats=max(1, repeats // 2))
    tf1 = timed(lambda: [fl.search(one[i:i + 1], K) for i in range(n_single)], repeats=max(1, repeats // 2))
    byts = 4.0 * n * d
    res["exact_single"] = {"ours_qps": n_single / t1, "ours_frac_bandwidth": byts * n_single / t1 / 1e9 / lim["read_gbps"],
                           "faiss_qps": n_single / tf1, "faiss_frac_bandwidth": byts * n_single / tf1 / 1e9 / lim["read_gbps"]}
    exact_qps = max(n_queries / t, n_queries / tf)
    for kind in kinds:
        cfg = IndexConfig(kind=kind, k=K, use_gpu="auto")  # type: ignore[arg-type]
        t0 = time.perf_counter()
        ix = build_index(items, cfg=cfg)
        build_s = time.perf_counter() - t0
        tr = tune(ix, queries=q_tune, k=K, target_recall=0.95)
        ta = timed(lambda: ix.search(q, k=K), repeats=repeats)
        rec = recall_vs_exact(ix.search(q, k=K)[1], truth)
        res[kind] = {"build_s": build_s, "param": tr.param, "value": tr.value, "tune_recall@10": tr.recall,
                     "qps": n_queries / ta, "recall@10": rec, "speedup_vs_exact": n_queries / ta / exact_qps}
        print(f"  {kind:9s} build {build_s:6.1f}s  {tr.param}={tr.value}  recall@10 {rec:.3f}  "
              f"{n_queries / ta:9.0f} qps  ({n_queries / ta / exact_qps:.1f}x exact)", flush=True)
        del ix
    return res


def result_rows(out: dict[str, object]) -> list[dict[str, object]]:
    """Summary rows (with targets) for benchmarks/README.md: exact search vs the compute bound, ANN vs exact."""
    rows: list[dict[str, object]] = []
    for r in out["sizes"]:  # type: ignore[union-attr]
        n, eb = r["items"], r["exact_batched"]
        big = n >= 1_000_000
        rows.append({"name": f"exact batched search, share of the fp32 compute bound, {n:,} items",
                     "value": round(max(eb["ours_frac_compute"], eb["faiss_frac_compute"]), 3),
                     "ours": round(eb["ours_frac_compute"], 3), "faiss_flat": round(eb["faiss_frac_compute"], 3),
                     **({"target": ">= 0.50", "met": max(eb["ours_frac_compute"], eb["faiss_frac_compute"]) >= 0.5}
                        if big else {})})
        ann = [(k, r[k]) for k in ("ivf_flat", "ivf_pq", "hnsw") if k in r and r[k]["recall@10"] >= 0.95]
        if ann:
            kind, best = max(ann, key=lambda kv: kv[1]["speedup_vs_exact"])
            rows.append({"name": f"best ANN at recall@10 >= 0.95: QPS vs exact, {n:,} items ({kind}, "
                                 f"recall {best['recall@10']:.3f})", "value": round(best["speedup_vs_exact"], 2),
                         "value_unit": "x", **({"target": ">= 30x", "met": best["speedup_vs_exact"] >= 30} if big else {})})
    return rows


def main(argv: list[str] | None = None) -> dict[str, object]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="100k items only")
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--single", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--kinds", default="flat,ivf_flat,ivf_pq,hnsw")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "index.json"))
    a = ap.parse_args(argv)
    sizes = [100_000] if a.quick else [100_000, 1_000_000]
    lim = machine_limits(a.repeats)
    out: dict[str, object] = {"machine": machine_info(), "limits": lim, "k": K, "quick": a.quick, "sizes": []}
    print(f"limits: matmul {lim['matmul_gflops']:.1f} GFLOP/s, read {lim['read_gbps']:.1f} GB/s", flush=True)
    for n in sizes:
        print(f"N={n:,} d={a.dim}", flush=True)
        r = bench_size(n, d=a.dim, n_queries=a.queries, n_single=a.single, repeats=a.repeats, lim=lim,
                       kinds=[k for k in a.kinds.split(",") if k])
        eb, es = r["exact_batched"], r["exact_single"]
        print(f"  exact batched: ours {eb['ours_qps']:.0f} qps = {eb['ours_frac_compute']:.0%} of compute bound; "
              f"faiss {eb['faiss_qps']:.0f} qps = {eb['faiss_frac_compute']:.0%}", flush=True)
        print(f"  exact single:  ours {es['ours_qps']:.0f} qps = {es['ours_frac_bandwidth']:.0%} of bandwidth bound; "
              f"faiss {es['faiss_qps']:.0f} qps = {es['faiss_frac_bandwidth']:.0%}", flush=True)
        out["sizes"].append(r)  # type: ignore[union-attr]
    lim_after = machine_limits(a.repeats)  # contention check: limits should not move much during the run
    out["limits_after"] = lim_after
    out["results"] = result_rows(out)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {a.out}")
    return out


if __name__ == "__main__":
    main()
