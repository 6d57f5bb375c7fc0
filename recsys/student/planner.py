"""Dry-run the TorchRec sharding planner for a catalogue and cluster far larger than this machine.

``plan_tables`` builds the student's embedding tables on the ``meta`` device (no memory), describes a
cluster of ``gpus`` CUDA devices as a planner ``Topology`` and asks ``EmbeddingShardingPlanner`` for a
plan. Planning is pure arithmetic over the topology and the table shapes, so it runs on a CPU-only
machine: use it to check, before renting GPUs, that a 100M-item catalogue fits and how it will be split.

The tables are the towers' own (``recsys.student.towers.tables_for``, what training builds: one item-id
table read by the candidate and both history bags, brand, category and the user-id table), for a
``StudentConfig`` and vocabulary sizes, so the plan cannot drift from the model; with ``user_tower =
"sequential"`` also the sequence table of its EmbeddingCollection (``t_seq_item``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from recsys.student.config import StudentConfig

GIB = 1 << 30
Sharding = Literal["auto", "table_wise", "row_wise", "column_wise", "table_row_wise", "data_parallel"]


@dataclasses.dataclass(frozen=True)
class TableSpec:
    name: str
    rows: int
    dim: int
    features: tuple[str, ...]
    pooled: bool = True  # False: a sequence table (the sequential user tower's EmbeddingCollection)


@dataclasses.dataclass(frozen=True)
class TablePlan:
    """One table's placement. ``per_rank_bytes`` = weights + row-wise optimizer state on each rank."""

    name: str
    rows: int
    dim: int
    sharding_type: str
    compute_kernel: str
    ranks: list[int]
    per_rank_bytes: dict[int, int]


def student_tables(
    *, items: int, dim: int | None = None, users: int = 0, brands: int = 0, categories: int = 0,
    cfg: StudentConfig | None = None,
) -> list[TableSpec]:
    """The student's tables for a catalogue of ``items`` (brands/categories default to items/100, /1000).

    Args:
        cfg: the student config (default ``StudentConfig()``); its table widths are used.
        dim: overrides the item-id width, and the user-id width when ``users`` > 0 (``recsys plan --dim``).
        users: user-id table rows; 0 = no user-id table (the towers then keep a 1-row placeholder).
    """
    from recsys.student.towers import sequence_tables, tables_for

    cfg = cfg or StudentConfig()
    if dim is not None:
        cfg = dataclasses.replace(cfg, item_id_dim=dim, user_id_dim=dim if users else 0)
    elif not users:
        cfg = dataclasses.replace(cfg, user_id_dim=0)
    configs = tables_for(cfg=cfg, n_items=items, n_brands=max(1, brands or items // 100),
                         n_cats=max(1, categories or items // 1000), n_users=max(1, users))
    seq = sequence_tables(cfg=cfg, n_items=items)
    return [TableSpec(c.name, c.num_embeddings, c.embedding_dim, tuple(c.feature_names)) for c in configs] + \
        [TableSpec(c.name, c.num_embeddings, c.embedding_dim, tuple(c.feature_names), pooled=False) for c in seq]


def _module(tables: list[TableSpec]) -> Any:
    import torch
    from torch import nn
    from torchrec.modules.embedding_configs import EmbeddingBagConfig, EmbeddingConfig, PoolingType
    from torchrec.modules.embedding_modules import EmbeddingBagCollection, EmbeddingCollection

    class Towers(nn.Module):  # only the EBC (and the sequential tower's EC) matter to the planner
        def __init__(self) -> None:
            super().__init__()
            self.ebc = EmbeddingBagCollection(
                tables=[
                    EmbeddingBagConfig(
                        name=t.name,
                        embedding_dim=t.dim,
                        num_embeddings=t.rows,
                        feature_names=list(t.features),
                        pooling=PoolingType.MEAN,
                    )
                    for t in tables if t.pooled
                ],
                device=torch.device("meta"),
            )
            seq = [EmbeddingConfig(name=t.name, embedding_dim=t.dim, num_embeddings=t.rows,
                                   feature_names=list(t.features)) for t in tables if not t.pooled]
            if seq:
                self.ec = EmbeddingCollection(tables=seq, device=torch.device("meta"))

    return Towers()


def plan_tables(
    *,
    tables: list[TableSpec],
    gpus: int,
    hbm_gib: float = 80.0,
    ddr_gib: float = 64.0,
    local_world_size: int = 8,
    batch_size: int = 4096,
    sharding: Sharding = "auto",
    reserve: float = 0.15,
    bytes_per_value: int = 4,
) -> tuple[list[TablePlan], Any]:
    """Plan ``tables`` over ``gpus`` CUDA devices (``local_world_size`` per host). -> (plans, ShardingPlan).

    Args:
        hbm_gib / ddr_gib: HBM per GPU (H100: 80 GiB) and host memory per rank the planner may fill.
        sharding: ``auto`` lets the planner choose per table; otherwise every table is forced to that type.
        reserve: share of HBM kept back for dense parameters, activations and buffers.
    Raises:
        torchrec's PlannerError when the tables cannot fit the given memory.
    """
    import logging
    import warnings

    from torchrec.distributed.embedding import EmbeddingCollectionSharder
    from torchrec.distributed.embeddingbag import EmbeddingBagCollectionSharder
    from torchrec.distributed.planner import EmbeddingShardingPlanner, ParameterConstraints, Topology
    from torchrec.distributed.planner.storage_reservations import FixedPercentageStorageReservation

    logging.getLogger("torchrec.distributed.planner").setLevel(logging.ERROR)  # "use TopologyFactory" noise
    topology = Topology(
        world_size=gpus,
        compute_device="cuda",
        hbm_cap=int(hbm_gib * GIB),
        ddr_cap=int(ddr_gib * GIB),
        local_world_size=min(local_world_size, gpus),
    )
    constraints = (
        None
        if sharding == "auto"
        else {t.name: ParameterConstraints(sharding_types=[sharding]) for t in tables}
    )
    planner = EmbeddingShardingPlanner(
        topology=topology,
        batch_size=batch_size,
        constraints=constraints,
        storage_reservation=FixedPercentageStorageReservation(reserve),
        debug=False,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        plan = planner.plan(_module(tables), [EmbeddingBagCollectionSharder(),  # type: ignore[list-item]
                                              EmbeddingCollectionSharder()])
    by_name = {t.name: t for t in tables}
    out: list[TablePlan] = []
    for module_plan in plan.plan.values():
        for name, ps in module_plan.items():  # type: ignore[union-attr]
            t = by_name[name]
            out.append(
                TablePlan(
                    name=name,
                    rows=t.rows,
                    dim=t.dim,
                    sharding_type=ps.sharding_type,
                    compute_kernel=ps.compute_kernel,
                    ranks=sorted(set(ps.ranks or [])),
                    per_rank_bytes=_per_rank(ps, t, gpus=gpus, bytes_per_value=bytes_per_value),
                )
            )
    return sorted(out, key=lambda p: p.name), plan


def _per_rank(ps: Any, t: TableSpec, *, gpus: int, bytes_per_value: int) -> dict[int, int]:
    """Bytes of each shard (weights + one fp32 row-wise Adagrad value per row) by rank."""
    per: dict[int, int] = {}
    spec = getattr(ps, "sharding_spec", None)
    shards = getattr(spec, "shards", None) or []
    if not shards:  # data parallel: a full replica everywhere
        return {r: t.rows * (t.dim * bytes_per_value + 4) for r in range(gpus)}
    for sh in shards:
        rows, cols = sh.shard_sizes
        rank = sh.placement.rank()
        per[rank] = per.get(rank, 0) + rows * cols * bytes_per_value + rows * 4
    return per


def rank_totals(plans: list[TablePlan], *, gpus: int) -> list[int]:
    totals = [0] * gpus
    for p in plans:
        for r, b in p.per_rank_bytes.items():
            totals[r] += b
    return totals


def format_plan(plans: list[TablePlan], *, gpus: int, hbm_gib: float) -> str:
    """A readable report: one line per table, then memory per rank."""
    lines = [f"{'table':<9} {'rows':>13} {'dim':>4} {'GiB':>8}  {'sharding':<15} {'kernel':<17} ranks"]
    for p in plans:
        gib = p.rows * p.dim * 4 / GIB
        ranks = _ranges(p.ranks)
        lines.append(
            f"{p.name:<9} {p.rows:>13,} {p.dim:>4} {gib:>8.2f}  {p.sharding_type:<15} "
            f"{p.compute_kernel:<17} {ranks}"
        )
    totals = rank_totals(plans, gpus=gpus)
    lines.append(
        f"\nper-rank embedding memory (weights + row-wise optimizer state; HBM cap {hbm_gib:g} GiB):"
    )
    used = [r for r in range(gpus) if totals[r] > 0]
    for i in range(0, len(used), 8):
        lines.append("  " + "  ".join(f"r{r}={totals[r] / GIB:.2f}" for r in used[i : i + 8]))
    if len(used) < gpus:
        lines.append(
            f"  {gpus - len(used)} of {gpus} ranks hold no embedding shard (they still run dense work)"
        )
    lines.append(
        f"  max {max(totals) / GIB:.2f} GiB, min {min(totals) / GIB:.2f} GiB, "
        f"total {sum(totals) / GIB:.2f} GiB"
    )
    if any("uvm" in p.compute_kernel for p in plans):
        lines.append(
            "  fused_uvm*: the table does not fit HBM; its rows live in host memory (CUDA unified memory)\n"
            "  and HBM holds only a cache of hot rows (_caching) or nothing: expect lower throughput."
        )
    return "\n".join(lines)


def _ranges(ranks: list[int]) -> str:
    if not ranks:
        return "all (replicated)"
    if ranks == list(range(ranks[0], ranks[-1] + 1)) and len(ranks) > 2:
        return f"{ranks[0]}..{ranks[-1]}"
    return ",".join(map(str, ranks))


def plan_to_json(plans: list[TablePlan]) -> list[dict[str, Any]]:
    return [dataclasses.asdict(p) for p in plans]
