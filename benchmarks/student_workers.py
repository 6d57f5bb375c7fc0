"""Workers of ``bench_student.py``: one training-throughput measurement per process, written as JSON to ``--out``.

    python benchmarks/student_workers.py --side plain --data synth --items 5000000 --users 5000000 --out r.json
    python -m torch.distributed.run --standalone --nproc_per_node=2 benchmarks/student_workers.py \
        --side torchrec --data synth --sharding column_wise ... --out r.json

``--side torchrec``: the product's ``TwoTower`` inside ``StudentObjective``, sharded by
``recsys.student.sharding.shard_model`` (DistributedModelParallel over gloo, fused rowwise-Adagrad TBE tables),
AdamW on the dense parameters, exactly as ``recsys.student.train`` steps it.
``--side plain``: the same towers written with ``nn.EmbeddingBag`` (one lookup per table, its features' bags
concatenated, as TorchRec groups them), the product's ``mlp`` and in-batch softmax (``recsys.student.fused``), in one process:
``adagrad`` = sparse gradients + ``torch.optim.Adagrad`` (the fair baseline: the optimizer TorchRec's tables use,
but per element, as torch has no row-wise one), ``sparse_adam`` = sparse gradients + ``torch.optim.SparseAdam``,
``dense_adam`` = dense gradients + ``torch.optim.Adam`` on every row every step (a strawman, labelled so).
Batches are built before the clock starts, on both sides.
``--user-tower`` / ``--negatives`` (Beauty data only): the product's ``student.user_tower`` and
``student.negatives`` (``bench_parts.py`` measures each kind).
``--tables-only``: the same lookups, backward and row updates with the towers and the softmax replaced by a
fixed linear read-out of the pooled bags (``scale * sum_f <pooled_f, w_f>``): the table work alone.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

TABLES = {"item": ("hist_item", "recent_item", "item"), "brand": ("hist_brand", "brand"), "cat": ("hist_cat", "cat"),
          "user": ("user",)}


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _config(args: argparse.Namespace):
    from recsys.student.config import ABLATION, StudentConfig

    if args.data == "synth":  # the large-catalogue shape: a user-id table as big as the item table, long histories
        return StudentConfig(use_text=False, batch_size=args.batch_size, sharding=args.sharding, user_id_dim=args.dim,
                             item_id_dim=args.dim, history_len=200, **ABLATION["student_no_kd"])
    kd = {} if args.kd else ABLATION["student_no_kd"]  # _kd: the product's default student (no text input)
    return StudentConfig(use_text=False, batch_size=args.batch_size, sharding=args.sharding,
                         user_tower=args.user_tower, negatives=args.negatives, **kd)


def _beauty(args: argparse.Namespace, cfg, *, need_teacher: bool):
    from recsys.artifacts import RunDir
    from recsys.student.dataset import load_data

    return load_data(cfg=cfg, layout=RunDir(Path(args.run_dir)).layout, need_teacher=need_teacher)


def _data(args: argparse.Namespace, cfg, *, rank: int, world: int, need_teacher: bool = False):
    """-> (ItemFeatures, n_users, teacher scale, steps, teacher dim); the steps are the same global batches for any world."""
    n = args.warmup + args.steps
    if args.data == "synth":
        import student_synth as S

        sizes = S.SynthSizes(n_items=args.items, n_users=args.users)
        feats = S.features(sizes)
        return feats, sizes.n_users, 0.0, S.steps(feats=feats, sizes=sizes, cfg=cfg, n=n, rank=rank, world=world), 0
    from recsys.student.dataset import step_batch

    data = _beauty(args, cfg, need_teacher=need_teacher)
    rng = np.random.default_rng(0)
    st = [step_batch(data=data, cfg=cfg, idx=rng.integers(0, len(data.ex_users), cfg.batch_size), rng=rng, rank=rank,
                     world=world) for _ in range(n)]
    return data.feats, data.n_users, data.teacher_scale, st, (0 if data.teacher is None else data.teacher.shape[1])


def _clock(fn, steps: list, *, warmup: int, repeats: int, batch: int, barrier=None) -> tuple[list, list]:
    """(examples/s of wall time, examples per CPU-second of this process) of each repeat over
    ``steps[warmup:]``, after ``warmup`` untimed steps. CPU time counts every thread of the process: with one
    thread it is the work itself, almost free of other jobs' load (a descheduled process spends no CPU)."""
    for s in steps[:warmup]:
        fn(s)
    wall, cpu = [], []
    n = (len(steps) - warmup) * batch
    for _ in range(repeats):
        if barrier:
            barrier()
        t0, c0 = time.perf_counter(), time.process_time()
        for s in steps[warmup:]:
            fn(s)
        wall.append(n / (time.perf_counter() - t0))
        cpu.append(n / (time.process_time() - c0))
    return wall, cpu


def _profile(fn, steps: list, *, n: int) -> dict:
    """Over ``n`` steps: the phases (``bench::*`` scopes, CPU ms per step, children included) and the top ops
    by self CPU time [{op, ms_per_step, share}]."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for s in steps[:n]:
            fn(s)
    ev = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in ev) or 1.0
    phases = {e.key.removeprefix("bench::"): round(e.cpu_time_total / 1e3 / n, 1) for e in ev
              if e.key.startswith("bench::")}
    return {"phases_ms_per_step": phases, "self_cpu_ms_per_step": round(total / 1e3 / n, 1),
            "top_ops": [{"op": e.key, "ms_per_step": round(e.self_cpu_time_total / 1e3 / n, 1),
                         "share": round(e.self_cpu_time_total / total, 3)} for e in ev[:16]]}


def _readout(pooled: dict, scale):
    """``--tables-only`` loss: ``scale * sum_f <pooled_f, w_f>``, fixed random ``w_f`` (the same on both sides)."""
    import torch

    g = torch.Generator().manual_seed(0)
    return scale * sum((v * torch.randn(v.shape[1], generator=g)).sum() for _, v in sorted(pooled.items()))


def _tables_only(ebc):
    """The collection and one dense scalar (so DMP has a dense part to wrap), read out by ``_readout``."""
    import torch
    from torch import nn

    class TablesOnly(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.ebc = ebc
            self.scale = nn.Parameter(torch.ones(()))

        def forward(self, step) -> dict:
            return {"total": _readout(self.ebc(step.batch.kjt).to_dict(), self.scale)}

    return TablesOnly()


def plain(args: argparse.Namespace) -> dict:
    import student_synth as S
    import torch
    import torch.nn.functional as F
    from torch import nn
    from torch.profiler import record_function

    from recsys.student.fused import in_batch_losses
    from recsys.student.towers import mlp

    torch.manual_seed(0)
    cfg = _config(args)
    feats, n_users, _, steps, _ = _data(args, cfg, rank=0, world=1)
    tables = {k: v for k, v in TABLES.items() if k != "user" or cfg.user_id_dim > 0}
    rows = {"item": feats.n_items, "brand": feats.n_brands, "cat": feats.n_cats, "user": n_users}
    dims = {"item": cfg.item_id_dim, "brand": cfg.brand_dim, "cat": cfg.category_dim, "user": cfg.user_id_dim}
    sparse = args.optimizer != "dense_adam"
    emb = nn.ModuleDict({t: nn.EmbeddingBag(rows[t], dims[t], mode="mean", sparse=sparse) for t in tables})
    u_mlp = mlp([2 * cfg.item_id_dim + cfg.brand_dim + cfg.category_dim + cfg.user_id_dim, *cfg.mlp, cfg.dim])
    i_mlp = mlp([cfg.item_id_dim + cfg.brand_dim + cfg.category_dim, *cfg.mlp, cfg.dim])
    opt_s = {"adagrad": lambda p: torch.optim.Adagrad(p, lr=cfg.table_lr, eps=1e-8),
             "sparse_adam": lambda p: torch.optim.SparseAdam(p, lr=1e-3),
             "dense_adam": lambda p: torch.optim.Adam(p, lr=1e-3)}[args.optimizer](list(emb.parameters()))
    scale = nn.Parameter(torch.ones(()))
    dense = [scale] if args.tables_only else [*u_mlp.parameters(), *i_mlp.parameters()]
    opt_d = torch.optim.AdamW(dense, lr=cfg.lr, weight_decay=cfg.weight_decay)
    rss_model = _rss_mib()
    inputs = [(S.plain_inputs(s, tables=tables), s) for s in steps]

    def towers_loss(pooled: dict, s):
        u_in = [pooled["hist_item"], pooled["recent_item"], pooled["hist_brand"], pooled["hist_cat"]]
        u = F.normalize(u_mlp(torch.cat(u_in + ([pooled["user"]] if "user" in pooled else []), 1)), dim=1)
        v = F.normalize(i_mlp(torch.cat([pooled["item"] * s.batch.keep_id[:, None], pooled["brand"],
                                         pooled["cat"]], 1)), dim=1)
        # the product's L_rec (``StudentObjective`` without distillation): the same fused node on both sides
        rec, _ = in_batch_losses(users=u, cols=v, item_ids=s.batch.item_ids, temperature=cfg.temperature,
                                 log_q=torch.from_numpy(s.log_q))
        return rec

    def step(x) -> None:
        inp, s = x
        pooled = {}
        with record_function("bench::lookup"):
            for t, (vals, offs, parts) in inp.items():
                out, i = emb[t](vals, offs), 0
                for f, k in parts:
                    pooled[f], i = out[i:i + k], i + k
        with record_function("bench::towers_loss"):
            loss = _readout(pooled, scale) if args.tables_only else towers_loss(pooled, s)
        with record_function("bench::backward"):
            loss.backward()
        with record_function("bench::table_optimizer"):
            opt_s.step()
            opt_s.zero_grad()
        with record_function("bench::dense_optimizer"):
            opt_d.step()
            opt_d.zero_grad()

    eps, cps = _clock(step, inputs, warmup=args.warmup, repeats=args.repeats, batch=cfg.batch_size)
    out = {"examples_per_s": eps, "examples_per_cpu_s": cps, "threads": torch.get_num_threads(),
           "optimizer": args.optimizer, "rss_after_model_mib": rss_model, "peak_rss_mib_per_rank": [_rss_mib()]}
    if args.profile:
        out["profile"] = _profile(step, inputs, n=args.profile)
    return out


def torchrec(args: argparse.Namespace) -> dict | None:
    import torch
    import torch.distributed as dist
    from torch.profiler import record_function

    from recsys.student.objective import StudentObjective
    from recsys.student.sharding import dense_parameters, init_process_group, shard_model
    from recsys.student.towers import TwoTower

    torch.manual_seed(0)
    rank, world, device = init_process_group(device="cpu")
    cfg = _config(args)
    feats, n_users, t_scale, steps, t_dim = _data(args, cfg, rank=rank, world=world, need_teacher=args.kd)
    towers = TwoTower(cfg=cfg, feats=feats, n_users=n_users, text_dim=0, device=torch.device("meta"))
    obj = _tables_only(towers.ebc) if args.tables_only else \
        StudentObjective(cfg=cfg, towers=towers, teacher_dim=t_dim, teacher_scale=t_scale, n_items=feats.n_items)
    dmp, plan = shard_model(model=obj, cfg=cfg, device=device, batch_size=cfg.batch_size // world)
    opt = torch.optim.AdamW(list(dense_parameters(dmp).values()), lr=cfg.lr, weight_decay=cfg.weight_decay)
    rss_model = _rss_mib()

    def step(s) -> None:
        with record_function("bench::forward"):  # input dist, TBE lookup, output dist, towers, loss
            loss = dmp(s)["total"]
        with record_function("bench::backward"):  # the TBE backward updates its rows here (fused optimizer)
            loss.backward()
        with record_function("bench::dense_optimizer"):
            opt.step()
            opt.zero_grad(set_to_none=True)

    eps, cps = _clock(step, steps, warmup=args.warmup, repeats=args.repeats, batch=cfg.batch_size,
                      barrier=dist.barrier)
    prof = _profile(step, steps, n=args.profile) if args.profile else None
    rss = [None] * world
    dist.all_gather_object(rss, [_rss_mib(), rss_model, cps])
    if rank:
        return None
    # CPU-seconds of every rank per repeat -> examples of the global batch per CPU-second of the whole job
    cps_all = [1.0 / sum(1.0 / r[2][i] for r in rss) for i in range(len(cps))]
    out = {"examples_per_s": eps, "examples_per_cpu_s": cps_all, "threads": torch.get_num_threads(),
           "world": world,
           "plan": {k.rsplit(".", 1)[-1]: [v["sharding_type"], v["compute_kernel"], len(v["shards"])]
                    for k, v in plan["tables"].items()},
           "peak_rss_mib_per_rank": [r[0] for r in rss], "rss_after_model_mib": [r[1] for r in rss]}
    if prof:
        out["profile"] = prof
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--side", choices=["plain", "torchrec"], required=True)
    ap.add_argument("--data", choices=["synth", "beauty"], required=True)
    ap.add_argument("--run-dir", help="beauty: a run dir holding the data stage's tables (and a teacher for --kd)")
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=64, help="synth: item-id and user-id table width")
    ap.add_argument("--batch-size", type=int, default=4096)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--sharding", choices=["table_wise", "column_wise"], default="table_wise")
    ap.add_argument("--optimizer", choices=["adagrad", "sparse_adam", "dense_adam"], default="adagrad")
    ap.add_argument("--kd", action="store_true")
    ap.add_argument("--user-tower", choices=["pooled", "sequential"], default="pooled", help="beauty only")
    ap.add_argument("--negatives", choices=["in_batch", "mixed", "full"], default="in_batch", help="beauty only")
    ap.add_argument("--tables-only", action="store_true", help="no towers or softmax: a fixed read-out of the bags")
    ap.add_argument("--profile", type=int, default=0, help="also profile this many steps (top ops by self CPU)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    res = plain(args) if args.side == "plain" else torchrec(args)
    if res is not None:
        res["worker_wall_s"] = round(time.perf_counter() - t0, 1)
        res["median_examples_per_s"] = float(np.median(res["examples_per_s"]))
        res["median_examples_per_cpu_s"] = float(np.median(res["examples_per_cpu_s"]))
        Path(args.out).write_text(json.dumps(res))
    return 0


if __name__ == "__main__":
    from recsys.lifeline import leave

    leave(main())
