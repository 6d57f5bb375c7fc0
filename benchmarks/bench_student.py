"""Training throughput of the student two-tower: TorchRec DMP (1 and 2 processes, gloo), undistilled
and with the default distillation (in-batch ranking KD + embedding KD), vs a plain single-process PyTorch
nn.EmbeddingBag two-tower of the same sizes, on the embedded Beauty tables. Distillation reads a random
stand-in teacher table of the real shape (384-d): throughput does not depend on its values.

    python benchmarks/bench_student.py [--steps 30] [--repeats 3] [--batch-size 1024]

Each process runs ``cores // nproc`` threads (what ``recsys.student.launch`` sets).
Writes benchmarks/results/student.json: examples/s (median of repeats), peak RSS per process, machine info.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def _tables(root: Path):  # noqa: ANN202
    from recsys.artifacts import RunDir
    from recsys.contracts import teacher as T
    from recsys.data.config import DataConfig
    from recsys.data.stage import run
    from recsys.data.tables import load_tables

    rd = RunDir(root)
    run(DataConfig(), rd)
    if rd.stage_record("teacher") is None:  # a stand-in teacher: random unit vectors, the default pooling
        emb = np.random.default_rng(0).normal(size=(load_tables(rd.layout).n_items, 384)).astype(np.float32)
        emb /= np.linalg.norm(emb, axis=1, keepdims=True)
        meta = T.TeacherMeta(model="stand-in", pooling="none", user_mode="pooled", history_n=20, recency_decay=0.5,
                             adapter_temperature=0.05)
        outs = T.write(layout=rd.layout, raw_items=emb, adapted_items=emb, meta=meta)
        rd.record("teacher", key="stand-in", config={}, outputs=outs, seconds=0.0)
    return rd


def _config(args: argparse.Namespace):  # noqa: ANN202
    from recsys.student.config import StudentConfig

    kd = {} if args.kd else {"lambda_emb": 0.0, "lambda_rank": 0.0}
    return StudentConfig(use_text=False, batch_size=args.batch_size, sharding="table_wise", **kd)


def _steps(cfg, data, n: int, seed: int, rank: int, world: int):  # noqa: ANN001, ANN202
    from recsys.student.dataset import step_batch

    rng = np.random.default_rng(seed)
    return [step_batch(data=data, cfg=cfg, idx=rng.integers(0, len(data.ex_users), cfg.batch_size), rng=rng,
                       rank=rank, world=world) for _ in range(n)]


def _time(fn, steps, repeats: int, batch: int) -> list[float]:  # noqa: ANN001
    fn(steps[0])  # warm-up
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for s in steps:
            fn(s)
        out.append(len(steps) * batch / (time.perf_counter() - t0))
    return out


def torchrec_worker(args: argparse.Namespace) -> None:
    import torch

    from recsys.student.dataset import load_data
    from recsys.student.objective import StudentObjective
    from recsys.student.sharding import dense_parameters, init_process_group, shard_model
    from recsys.student.towers import TwoTower

    rank, world, device = init_process_group(device="cpu")
    cfg = _config(args)
    data = load_data(cfg=cfg, layout=_tables(Path(args.run_dir)).layout, need_teacher=args.kd)
    towers = TwoTower(cfg=cfg, feats=data.feats, n_users=data.n_users, text_dim=0, device=torch.device("meta"))
    t_dim = 0 if data.teacher is None else data.teacher.shape[1]
    obj = StudentObjective(cfg=cfg, towers=towers, teacher_dim=t_dim, teacher_scale=data.teacher_scale)
    dmp, plan = shard_model(model=obj, cfg=cfg,
                            device=device, batch_size=cfg.batch_size // world)
    opt = torch.optim.AdamW(list(dense_parameters(dmp).values()), lr=cfg.lr)

    def step(s) -> None:  # noqa: ANN001
        dmp(s)["total"].backward()
        opt.step()
        opt.zero_grad()

    eps = _time(step, _steps(cfg, data, args.steps, 0, rank, world), args.repeats, cfg.batch_size)
    if rank == 0:
        Path(args.out).write_text(json.dumps({"examples_per_s": eps, "threads": torch.get_num_threads(), "plan": {k: v["sharding_type"] for k, v in
                                                                                plan["tables"].items()},
                                              "peak_rss_mb_rank0": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                                              / 1024}))


def plain_pytorch(args: argparse.Namespace) -> dict:
    import torch
    import torch.nn.functional as F
    from torch import nn

    from recsys.student.config import StudentConfig
    from recsys.student.dataset import load_data
    from recsys.student.losses import sampled_softmax
    from recsys.student.towers import mlp

    cfg = StudentConfig(use_text=False, batch_size=args.batch_size, lambda_emb=0.0, lambda_rank=0.0)
    data = load_data(cfg=cfg, layout=_tables(Path(args.run_dir)).layout, need_teacher=False)
    f = data.feats
    item = nn.EmbeddingBag(f.n_items, cfg.item_id_dim, mode="mean")
    brand = nn.EmbeddingBag(f.n_brands, cfg.brand_dim, mode="mean")
    cat = nn.EmbeddingBag(f.n_cats, cfg.category_dim, mode="mean")
    u_mlp = mlp([2 * cfg.item_id_dim + cfg.brand_dim + cfg.category_dim, *cfg.mlp, cfg.dim])
    i_mlp = mlp([cfg.item_id_dim + cfg.brand_dim + cfg.category_dim, *cfg.mlp, cfg.dim])
    sparse = nn.ModuleList([item, brand, cat])
    opt_s = torch.optim.Adagrad(sparse.parameters(), lr=cfg.table_lr)
    opt_d = torch.optim.AdamW([*u_mlp.parameters(), *i_mlp.parameters()], lr=cfg.lr)

    def bag(table: nn.EmbeddingBag, kjt, key: str):  # noqa: ANN001, ANN202
        jt = kjt[key]
        return table(jt.values(), offsets=jt.offsets()[:-1])

    def step(s) -> None:  # noqa: ANN001
        k, n = s.batch.kjt, s.batch.n_user_rows
        u = F.normalize(u_mlp(torch.cat([bag(item, k, "hist_item")[:n], bag(item, k, "recent_item")[:n],
                                         bag(brand, k, "hist_brand")[:n], bag(cat, k, "hist_cat")[:n]], 1)), dim=1)
        v = F.normalize(i_mlp(torch.cat([bag(item, k, "item")[n:], bag(brand, k, "brand")[n:],
                                         bag(cat, k, "cat")[n:]], 1)), dim=1)
        loss = sampled_softmax(users=u, items=v, temperature=cfg.temperature, item_ids=s.batch.item_ids,
                               log_q=torch.from_numpy(s.log_q))
        loss.backward()
        opt_s.step(), opt_d.step(), opt_s.zero_grad(), opt_d.zero_grad()

    eps = _time(step, _steps(cfg, data, args.steps, 0, 0, 1), args.repeats, cfg.batch_size)
    return {"examples_per_s": eps, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=1024)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--kd", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--run-dir", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        torchrec_worker(args)
        return 0
    import torch

    tmp = Path(tempfile.mkdtemp(prefix="bench_student_"))
    args.run_dir = str(tmp / "run")
    _tables(Path(args.run_dir))
    results: dict = {"plain_pytorch_1proc": plain_pytorch(args)}
    for kd in (False, True):
        for n in (1, 2):
            name = f"torchrec_dmp_{n}proc" + ("_kd" if kd else "")
            out = tmp / f"{name}.json"
            cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}", __file__,
                   "--worker", "--run-dir", args.run_dir, "--out", str(out), "--steps", str(args.steps), "--repeats",
                   str(args.repeats), "--batch-size", str(args.batch_size), *(["--kd"] if kd else [])]
            env = {**os.environ, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // n))}
            subprocess.run(cmd, check=True, env=env, capture_output=True)
            results[name] = json.loads(out.read_text())
    for r in results.values():
        r["median_examples_per_s"] = float(np.median(r["examples_per_s"]))
    sys.path.insert(0, str(HERE))
    from common import ratio_row, write_result

    med = {k: v["median_examples_per_s"] for k, v in results.items()}
    plain = med["plain_pytorch_1proc"]
    rows = [
        ratio_row(name="examples/s: TorchRec DMP, 1 process vs plain PyTorch two-tower", ours=med["torchrec_dmp_1proc"],
                  baseline=plain, unit="examples/s", higher_is_better=True, target=1.5, baseline_name="plain PyTorch"),
        ratio_row(name="examples/s: TorchRec DMP, 2 processes vs plain PyTorch two-tower",
                  ours=med["torchrec_dmp_2proc"], baseline=plain, unit="examples/s", higher_is_better=True,
                  target=1.5, baseline_name="plain PyTorch"),
        ratio_row(name="scaling: 2 processes vs 1 (TorchRec DMP, gloo, same cores)", ours=med["torchrec_dmp_2proc"],
                  baseline=med["torchrec_dmp_1proc"], unit="examples/s", higher_is_better=True,
                  baseline_name="1 process"),
        ratio_row(name="examples/s: with distillation (in-batch ranking + embedding KD) vs without, 2 processes",
                  ours=med["torchrec_dmp_2proc_kd"], baseline=med["torchrec_dmp_2proc"], unit="examples/s",
                  higher_is_better=True, baseline_name="no KD"),
        ratio_row(name="peak memory per process: TorchRec DMP (rank 0, 2 processes) vs plain PyTorch",
                  ours=results["torchrec_dmp_2proc"]["peak_rss_mb_rank0"], baseline=results["plain_pytorch_1proc"]
                  ["peak_rss_mb"], unit="MiB", higher_is_better=False, baseline_name="plain PyTorch"),
    ]
    notes = ["embedded Beauty tables (22k users, 12k items), batch %d, %d steps x %d repeats after a warm-up, median"
             % (args.batch_size, args.steps, args.repeats),
             "same towers and in-batch softmax loss on both sides; no text input; plain PyTorch = nn.EmbeddingBag "
             "tables + Adagrad / AdamW in one process with all cores; TorchRec = EmbeddingBagCollection sharded "
             "table-wise under DistributedModelParallel (gloo), fused rowwise Adagrad, cores / nproc threads each",
             "_kd rows: the default distillation terms on a random stand-in 384-d teacher table (throughput does "
             "not depend on its values)",
             "why the ratio is ~1: at Beauty's size the tables hold 3 MiB, so both sides spend the step in the "
             "same MLPs and the 1024 x 1024 in-batch softmax; TorchRec's fused sparse row updates pay off when "
             "tables are large (the growth benchmark's student step grows as items^0.07 from 10k to 1M). "
             "2 processes on 2 cores add gloo all-to-all and all-gather traffic with no idle core to win back"]
    write_result("student", results=rows, notes=notes, extra={"runs": results, "batch_size": args.batch_size,
                                                               "steps": args.steps, "repeats": args.repeats})
    print(json.dumps({k: round(v) for k, v in med.items()}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
