"""Process groups, the TorchRec sharding planner and DistributedModelParallel, on CPU or CUDA.

CPU runs use gloo and can shard tables table-wise or column-wise (or replicate them data-parallel);
row-wise sharding needs CUDA, so on CPU it falls back to table-wise and says so. Table parameters
get fused in-backward optimizers (``apply_optimizer_in_backward``); dense parameters are left to a
regular Adam(W) built by the caller from ``dense_parameters``.
"""

from __future__ import annotations

import datetime
import logging
import os
import socket
import warnings
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torchrec.distributed.embedding_types import EmbeddingComputeKernel
from torchrec.distributed.model_parallel import DistributedModelParallel
from torchrec.distributed.planner import EmbeddingShardingPlanner, Topology
from torchrec.distributed.planner.types import ParameterConstraints
from torchrec.distributed.types import ShardingEnv, ShardingPlan, ShardingType
from torchrec.optim.apply_optimizer_in_backward import apply_optimizer_in_backward
from torchrec.optim.optimizers import in_backward_optimizer_filter

from recsys.student.config import StudentConfig

log = logging.getLogger(__name__)


def init_process_group(*, device: str = "auto") -> tuple[int, int, torch.device]:
    """Join the torchrun group (RANK/WORLD_SIZE set) or start a 1-process group. -> (rank, world, device)."""
    use_cuda = torch.cuda.is_available() if device == "auto" else device == "cuda"
    if not dist.is_initialized():
        backend = "nccl" if use_cuda else "gloo"
        timeout = datetime.timedelta(minutes=10)
        if "RANK" in os.environ:  # launched by torchrun
            dist.init_process_group(backend=backend, timeout=timeout)
        else:  # single process: a private 1-rank group on a free port, environment untouched
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            dist.init_process_group(backend=backend, init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1,
                                    timeout=timeout)
    rank, world = dist.get_rank(), dist.get_world_size()
    if use_cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return rank, world, torch.device("cuda", local)
    return rank, world, torch.device("cpu")


def sharding_types(*, requested: str, device: torch.device) -> list[str]:
    """Sharding types the planner may choose from; row-wise on CPU falls back to table-wise (logged)."""
    cpu = device.type == "cpu"
    if requested == "row_wise" and cpu:
        log.warning("student: row-wise sharding needs CUDA (fbgemm row-wise kernels); falling back to table-wise")
        requested = "table_wise"
    if requested == "auto":
        # CPU: only model-parallel types, so "auto" really shards; the planner picks per table
        names = ["table_wise", "column_wise"] + ([] if cpu else ["row_wise", "table_row_wise"])
    else:
        names = [requested]
    return [getattr(ShardingType, n.upper()).value for n in names]


def _table_optimizer(cfg: StudentConfig) -> tuple[type[torch.optim.Optimizer], dict[str, Any]]:
    if cfg.table_optimizer == "rowwise_adagrad":
        from torchrec.optim.rowwise_adagrad import RowWiseAdagrad

        return RowWiseAdagrad, {"lr": cfg.table_lr, "eps": 1e-8}
    if cfg.table_optimizer == "adam":
        return torch.optim.Adam, {"lr": cfg.table_lr}
    return torch.optim.SGD, {"lr": cfg.table_lr}


def describe_plan(plan: ShardingPlan) -> dict[str, dict[str, Any]]:
    """JSON-able plan: {table: {sharding_type, compute_kernel, ranks, shards: [[offsets], [sizes], rank]}}."""
    out: dict[str, dict[str, Any]] = {}
    for module_path, module_plan in plan.plan.items():
        for table, ps in module_plan.items():  # type: ignore[union-attr]
            shards = []
            spec = getattr(ps, "sharding_spec", None)
            for sh in getattr(spec, "shards", []) or []:
                shards.append([list(sh.shard_offsets), list(sh.shard_sizes), str(sh.placement)])
            out[f"{module_path}.{table}"] = {"sharding_type": ps.sharding_type, "compute_kernel": ps.compute_kernel,
                                             "ranks": list(ps.ranks or []), "shards": shards}
    return out


def shard_model(*, model: nn.Module, cfg: StudentConfig, device: torch.device, batch_size: int,
                ) -> tuple[DistributedModelParallel, dict[str, Any]]:
    """Plan with EmbeddingShardingPlanner over a Topology of this world, wrap in DMP.

    ``model`` must have its EBC tables on the ``meta`` device (DMP materialises only the local shards).
    Returns the DMP module and the plan as JSON (also printed on rank 0).
    """
    world, rank = dist.get_world_size(), dist.get_rank()
    # the pooled tables (EmbeddingBagCollection) and the sequential user tower's (EmbeddingCollection)
    ebcs = [m for m in model.modules() if m.__class__.__name__ in ("EmbeddingBagCollection", "EmbeddingCollection")]
    opt_cls, opt_kw = _table_optimizer(cfg)
    for ebc in ebcs:
        apply_optimizer_in_backward(opt_cls, ebc.parameters(), opt_kw)
    types = sharding_types(requested=cfg.sharding, device=device)
    kernels = [EmbeddingComputeKernel.FUSED.value] if types != [ShardingType.DATA_PARALLEL.value] \
        else [EmbeddingComputeKernel.DENSE.value]
    constraints = {t.name: ParameterConstraints(sharding_types=types, compute_kernels=kernels)
                   for ebc in ebcs for t in (ebc.embedding_bag_configs() if hasattr(ebc, "embedding_bag_configs")
                                             else ebc.embedding_configs())}
    pg = dist.GroupMember.WORLD
    # torchrec 1.8's planner advice for GPU clusters ("use TopologyFactory ... otherwise, the job will fail"), once per
    # worker in the log: a CPU topology of this world is what it gets (``recsys.student.planner`` does the same)
    logging.getLogger("torchrec.distributed.planner").setLevel(logging.ERROR)
    with warnings.catch_warnings():  # its deprecations of its own defaults (the planner's heuristic storage
        # reservation, DMP's broadcast_buffers): changing either could move the plan
        warnings.simplefilter("ignore", FutureWarning)
        topology = Topology(world_size=world, compute_device=device.type)
        planner = EmbeddingShardingPlanner(topology=topology, batch_size=batch_size, constraints=constraints,
                                           debug=False)
        plan = planner.collective_plan(model, None, pg)
        dmp = DistributedModelParallel(module=model, env=ShardingEnv.from_process_group(pg), device=device, plan=plan)
    described = {"world_size": world, "backend": dist.get_backend(), "device": device.type,
                 "requested": cfg.sharding, "allowed": types, "tables": describe_plan(plan)}
    if rank == 0:
        log.info("student sharding plan (world %d, %s):\n%s", world, dist.get_backend(), plan)
    return dmp, described


def dense_parameters(dmp: nn.Module) -> dict[str, nn.Parameter]:
    """Parameters without an in-backward (fused) optimizer: the MLPs, projections, DP-less leftovers."""
    return dict(in_backward_optimizer_filter(dmp.named_parameters(), include=False))
