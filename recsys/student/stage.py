"""The student stage: train one variant, export its vectors, record it in the manifest.

``run(cfg, run_dir, variant=...)`` writes ``<run>/student/<variant>/``; with ``cfg.nproc > 1`` it
launches torchrun workers (``recsys.student.launch``, each running ``recsys.student.worker``, which calls
``execute``) and rank 0 writes the exports and the manifest. ``run_variants`` trains several variants (the
ablation) with ONE launch per process count: the workers start, import torchrec and join their process group
once, then train the variants one after another (each launch costs ~7 s of start and imports on 2 cores).
A variant whose config and inputs are unchanged (and whose outputs still match) is skipped.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

from recsys.artifacts import RunDir, file_sha256, hash_obj, versions
from recsys.contracts import student as S
from recsys.contracts import tables as T
from recsys.student.config import StudentConfig
from recsys.student.dataset import teacher_paths
from recsys.torchrun import SINGLE, Rendezvous

log = logging.getLogger(__name__)


def needs_teacher(cfg: StudentConfig) -> bool:
    return cfg.use_text or cfg.lambda_emb > 0 or cfg.lambda_rank > 0 or cfg.teacher_carry > 0


def stage_name(variant: str) -> str:
    return S.stage_of(variant)


def input_key(cfg: StudentConfig, run_dir: RunDir, *, variant: str) -> str:
    """Hash of the config (minus nproc, which changes speed not the model family), the data stage's outputs
    and the teacher files this variant reads."""
    teacher = {}
    if needs_teacher(cfg):
        for name, p in teacher_paths(run_dir.layout).items():
            if p.exists():
                teacher[name] = file_sha256(p)
    if cfg.lambda_rank > 0 and cfg.rank_teacher == "intermediate":  # multi-level: its targets are another variant's
        lay = run_dir.layout
        for name, p in (("intermediate_items", lay.item_vectors(cfg.intermediate)),
                        ("intermediate_tower", lay.user_tower(cfg.intermediate))):
            if p.exists():
                teacher[name] = file_sha256(p)
    try:
        data = run_dir.output_hash("data")
    except Exception:  # tables made outside the data stage (tests): hash the split files themselves
        data = hash_obj([file_sha256(p) for p in T.paths(run_dir.layout)[2:]])
    same = dataclasses.replace(cfg, nproc=1)  # (it was in the key until the multi-node work noticed)
    key = {"cfg": same, "variant": variant, "data": data, "teacher": teacher, "v": 1}
    if carries_shift_from(cfg):  # the shift it takes is an input: the source variant's, as recorded now
        rec = run_dir.stage_record(stage_name(cfg.carry_fit_from)) or {}
        key["carry_from"] = {"key": rec.get("key"), "shift": rec.get("carry_shift")}
    return hash_obj(key)


def carries_shift_from(cfg: StudentConfig) -> bool:
    """True when ``cfg`` has a per-item carry whose shift is taken from another variant (``carry_fit_from``)."""
    return bool(cfg.carry_fit_from) and cfg.teacher_carry > 0 and cfg.carry_count_k > 0


def inherited_shift(cfg: StudentConfig, run_dir: RunDir) -> float:
    """The carry shift ``cfg.carry_fit_from`` chose in this run (its manifest record); a clear error without one."""
    rec = run_dir.stage_record(stage_name(cfg.carry_fit_from)) or {}
    shift = rec.get("carry_shift")
    if shift is None:
        from recsys.config import ConfigError

        raise ConfigError(f"config key 'student.carry_fit_from': variant {cfg.carry_fit_from!r} has no carry shift "
                          f"in {run_dir.layout.manifest} (not trained in this run, or trained without a per-item "
                          f"carry fit). Train it first, or set student.carry_fit_from=\"\" to fit this variant's own")
    return float(shift)


def run(cfg: StudentConfig, run_dir: RunDir, *, variant: str, force: bool = False,
        rdzv: Rendezvous = SINGLE) -> dict[str, Any]:
    """Train + export ``variant``; returns its manifest record (metrics, plan, timings).

    ``rdzv``: this host as one node of a multi-node job (``cfg.nproc`` processes here); every node runs
    this on the same (shared) run directory, computes the same key, and rank 0 records the stage.
    """
    if cfg.lambda_rank > 0 and cfg.rank_teacher == "intermediate" and cfg.intermediate == variant:
        from recsys.config import ConfigError

        raise ConfigError(f"config key 'student.intermediate': '{variant}' cannot distil from itself; name the "
                          "variant trained before it (student_intermediate)")
    key = input_key(cfg, run_dir, variant=variant)
    stage = stage_name(variant)
    if not force and run_dir.is_fresh(stage, key):
        log.info("student %s: up to date, skipped", variant)
        return run_dir.stage_record(stage)  # type: ignore[return-value]
    _check_batch(cfg)
    if cfg.nproc > 1 or rdzv.multi_node:
        return _launched([Job(variant, cfg, key)], run_dir, rdzv=rdzv)[variant]
    return execute(cfg=cfg, run_dir=run_dir, variant=variant, key=key)


@dataclasses.dataclass(frozen=True)
class Job:
    """One variant to train: its name (folder under student/), config and stage input key."""

    variant: str
    cfg: StudentConfig
    key: str


def run_variants(cfgs: dict[str, StudentConfig], run_dir: RunDir, *, force: bool = False,
                 rdzv: Rendezvous = SINGLE, lanes: int = 1) -> dict[str, dict[str, Any]]:
    """Train + export every stale variant of ``cfgs`` (variant -> config); -> variant -> manifest record.

    The ones that run on several processes share ONE torchrun launch per process count (in ``cfgs`` order);
    1-process ones train in this process, or with ``lanes`` > 1 in that many 1-process launches running at once
    (variants dealt to them round-robin in ``cfgs`` order, each lane's in order; the cores are split between
    them). The exports are those of ``run`` called once per variant.
    """
    out: dict[str, dict[str, Any]] = {}
    for c in cfgs.values():
        _check_batch(c)
    for nproc, names in launch_groups(cfgs):
        # keys just before the group runs: a variant taking an earlier group's carry shift hashes it as recorded now
        group = []
        for v in names:
            c = cfgs[v]
            key = input_key(c, run_dir, variant=v)
            if not force and run_dir.is_fresh(stage_name(v), key):
                log.info("student %s: up to date, skipped", v)
                out[v] = run_dir.stage_record(stage_name(v))  # type: ignore[assignment]
            else:
                group.append(Job(v, c, key))
        if not group:
            continue
        if nproc > 1 or rdzv.multi_node:
            out.update(_launched(group, run_dir, rdzv=rdzv))
        elif lanes > 1 and len(group) > 1:
            out.update(_launched(group, run_dir, rdzv=rdzv, lanes=min(lanes, len(group))))
        else:
            for j in group:
                out[j.variant] = execute(cfg=j.cfg, run_dir=run_dir, variant=j.variant, key=j.key)
    return {v: out[v] for v in cfgs}


def launch_groups(cfgs: dict[str, StudentConfig]) -> list[tuple[int, list[str]]]:
    """The order ``run_variants`` trains ``cfgs`` in: (process count, variants) groups, one launch each, by process
    count in first-seen order. A variant taking the carry shift of another one of ``cfgs`` (``carry_fit_from``) whose
    group would not run after that one's goes to a second wave of groups (the main job's twins, 1 process, already
    follow student_kd's 2-process group)."""
    first = list(dict.fromkeys(c.nproc for c in cfgs.values()))
    wave = {v: int(carries_shift_from(c) and c.carry_fit_from in cfgs
                   and first.index(cfgs[c.carry_fit_from].nproc) >= first.index(c.nproc)) for v, c in cfgs.items()}
    keys = dict.fromkeys((wave[v], c.nproc) for v, c in sorted(cfgs.items(), key=lambda vc: wave[vc[0]]))
    return [(n, [v for v, c in cfgs.items() if (wave[v], c.nproc) == (w, n)]) for w, n in keys]


def _check_batch(cfg: StudentConfig) -> None:
    if cfg.batch_size % cfg.nproc:
        from recsys.config import ConfigError

        raise ConfigError(f"config key 'student.batch_size': {cfg.batch_size} is not divisible by student.nproc="
                          f"{cfg.nproc} (each process takes an equal share of every batch); set a multiple of it")


def _launched(jobs: list[Job], run_dir: RunDir, *, rdzv: Rendezvous, lanes: int = 1) -> dict[str, dict[str, Any]]:
    """Train ``jobs`` (same ``nproc``) in one torchrun launch, or in ``lanes`` launches at once (1-process jobs
    dealt round-robin); -> variant -> the record rank 0 wrote."""
    from recsys.student.launch import launch, launch_lanes
    from recsys.torchrun import WorkersFailed

    before = {j.variant: run_dir.stage_record(stage_name(j.variant)) for j in jobs}
    specs = [(j.variant, j.cfg, j.key) for j in jobs]
    try:
        if lanes > 1:
            launch_lanes(lanes=[specs[i::lanes] for i in range(lanes)], run_dir=run_dir.root)
        else:
            launch(jobs=specs, run_dir=run_dir.root, rdzv=rdzv)
    except WorkersFailed as e:
        # A worker that dies in interpreter teardown (a C++ thread of gloo/fbgemm: "terminate called without
        # an active exception", SIGABRT) after rank 0 recorded the stage has lost nothing: accept the run
        # only if this launch wrote a new record with this key and every recorded output verifies.
        for j in jobs:
            stage = stage_name(j.variant)
            rec = run_dir.stage_record(stage)
            if rec is None or rec == before[j.variant] or rec.get("key") != j.key or not run_dir.is_fresh(stage, j.key):
                raise
        log.warning("student %s: %s, but only after the stage was recorded; its outputs verify, kept",
                    ", ".join(j.variant for j in jobs), e)
    out = {}
    for j in jobs:
        rec = run_dir.stage_record(stage_name(j.variant))
        if rec is None or rec.get("key") != j.key:
            raise RuntimeError(f"student workers finished but {run_dir.layout.manifest} has no record of "
                               f"{stage_name(j.variant)}")
        out[j.variant] = rec
    return out


def execute(*, cfg: StudentConfig, run_dir: RunDir, variant: str, key: str, keep_group: bool = False) -> dict[str, Any]:
    """Body of the stage in one process of a (possibly 1-process) group. Rank 0 writes everything.

    ``keep_group``: leave the process group up afterwards (the worker trains another variant next)."""
    import torch.distributed as dist

    from recsys.student.batches import replay_size
    from recsys.student.dataset import load_data
    from recsys.student.encode import encode_items, encode_users, user_tower
    from recsys.student.export import export_metrics, write_exports
    from recsys.student.train import train

    t0, c0 = time.perf_counter(), _cpu()
    out_dir = run_dir.layout.student(variant)
    data = load_data(cfg=cfg, layout=run_dir.layout, need_teacher=needs_teacher(cfg))
    phases = {"load": time.perf_counter() - t0}
    try:
        trained = train(cfg=cfg, data=data, out_dir=out_dir, run_key=key)
    except BaseException:  # a refused checkpoint or a diverged loss: leave no process group behind
        if dist.is_initialized():
            dist.destroy_process_group()
        raise
    phases["train"] = time.perf_counter() - t0 - sum(phases.values())
    towers = trained.towers
    towers.eval()
    items = encode_items(towers=towers, feats=data.feats, cfg=cfg)
    users_valid = encode_users(towers=towers, feats=data.feats, hist=data.train, cfg=cfg)
    users_test = encode_users(towers=towers, feats=data.feats, hist=data.train_valid, cfg=cfg)
    tower = user_tower(towers=towers, feats=data.feats, cfg=cfg)  # every rank: the tables may be sharded
    phases["encode"] = time.perf_counter() - t0 - sum(phases.values())
    fit, encoded, inherited = None, items, None
    if towers.carry_dim and carries_shift_from(cfg):  # another variant's shift: no fit (the same on every rank)
        from recsys.student.carry_fit import rescaled

        inherited = inherited_shift(cfg, run_dir)
        items = rescaled(items=items, shift=inherited, **_carry_vec(cfg, data))
        log.info("student %s: carry shift %.2f, %s's", variant, inherited, cfg.carry_fit_from)
    elif towers.carry_dim and cfg.carry_count_k > 0 and cfg.carry_fit:  # (the same on every rank)
        items, fit = _fit_carry_shared(cfg=cfg, data=data, items=items, users=users_valid, rank=trained.rank,
                                       world=trained.world)
    # every rank: each ranks a share of the users, rank 0 gets the figures (``recsys.student.scoring``)
    # the valid ranking of these vectors is the best epoch's validation (the same weights, users and targets) when
    # this call validated it over every user and the carry fit kept the trained shift: reused, not ranked again
    phases["carry_fit"] = time.perf_counter() - t0 - sum(phases.values())
    reuse = trained.has_best_ranking and cfg.eval_users == 0 and items is encoded
    info = export_metrics(items=items, users_valid=users_valid, users_test=users_test, tables=data.tables,
                          quantize=cfg.quantize_int8, eval_users=cfg.eval_users,
                          valid_ranking=trained.best_ranking if reuse else None, valid_ranked=reuse,
                          test=cfg.test_metrics)
    phases["export_metrics"] = time.perf_counter() - t0 - sum(phases.values())
    record: dict[str, Any] = {}
    if trained.rank == 0:
        paths, info = write_exports(layout=run_dir.layout, variant=variant, items=items, users_valid=users_valid,
                                    users_test=users_test, tables=data.tables, quantize=cfg.quantize_int8,
                                    tower=tower, eval_users=cfg.eval_users, info=info)
        params = _param_counts(trained)
        examples = {"all": len(data.ex_users), "window": len(data.ex_window), "older": len(data.ex_older),
                    "replay_per_epoch": replay_size(len(data.ex_older), fraction=cfg.replay_fraction),
                    "train_since": cfg.train_since, "replay_fraction": cfg.replay_fraction}
        meta = {"metric": "ip", "dim": int(items.shape[1]), "variant": variant,
                "normalized": not (towers.carry_dim and cfg.carry_count_k > 0), "plan": trained.plan,
                "params": params, "bytes": {**info["bytes"], "tables_f32": params["tables"] * 4,
                                            "dense_f32": params["dense"] * 4},
                "best_epoch": trained.best_epoch, "epochs_run": len(trained.history),
                "train_seconds": round(trained.train_seconds, 2),
                "examples_per_s": _median([h["examples_per_s"] for h in trained.history]),
                "valid": info["valid"], "test": info["test"], "int8": info.get("int8"),
                "valid_slices": info["valid_slices"],
                "items_without_train_events": int((data.feats.train_count == 0).sum()), "examples": examples,
                "carry_fit": fit.as_dict() if fit else
                ({"shift": inherited, "from": cfg.carry_fit_from} if inherited is not None else None),
                "config": dataclasses.asdict(cfg), "versions": versions()}
        paths.append(S.write_meta(layout=run_dir.layout, variant=variant, meta=meta))
        paths.append(S.write_train_log(layout=run_dir.layout, variant=variant,
                                       log={"variant": variant, "epochs": trained.history}))
        seconds = time.perf_counter() - t0
        phases["write"] = seconds - sum(phases.values())
        run_dir.record(stage_name(variant), key=key, config=cfg, outputs=paths, seconds=seconds,
                       plan=trained.plan, valid=info["valid"], test=info["test"], best_epoch=trained.best_epoch,
                       valid_slices=info["valid_slices"], train_seconds=meta["train_seconds"],
                       examples_per_s=meta["examples_per_s"], int8=info.get("int8"), params=params,
                       world_size=trained.world, examples=examples, rank0_cpu_seconds=round(_cpu() - c0, 2),
                       carry_shift=fit.shift if fit else inherited,
                       phase_seconds={k: round(v, 2) for k, v in phases.items()})
        record = run_dir.stage_record(stage_name(variant)) or {}
        test_fig = (f"test ndcg@10 {info['test']['ndcg@10']:.4f} recall@10 {info['test']['recall@10']:.4f}"
                    if info["test"] else "test not ranked (student.test_metrics = false)")
        log.info("student %s: %s (valid ndcg@10 %.4f), %.0fs (%s), plan %s", variant,
                 test_fig, info["valid"]["ndcg@10"], seconds,
                 ", ".join(f"{k} {v:.1f}s" for k, v in phases.items()),
                 {t: p["sharding_type"] for t, p in trained.plan["tables"].items()})
    if dist.is_initialized():
        dist.barrier()
        if not keep_group:
            dist.destroy_process_group()
    return record


def _fit_carry_shared(*, cfg: StudentConfig, data: Any, items: Any, users: Any, rank: int,
                      world: int) -> tuple[Any, Any]:
    """``recsys.student.carry_fit`` on valid against the adapted teacher (the vectors the towers carry), every rank
    ranking a contiguous share of the valid users (``scoring.shared``; numpy's passes are single-threaded: one rank
    alone left the other core idle); rank 0 chooses on the merged rankings and logs; every rank re-scales its own
    copy of the item vectors to the chosen shift (the same array as ``items`` when it kept the trained shift)
    -> (items, the fit on rank 0, else None)."""
    import torch.distributed as dist

    from recsys.student import scoring
    from recsys.student.carry_fit import fit_shift, rescaled, shift_rankings

    vec = _carry_vec(cfg, data)
    shifts, tables = tuple(cfg.carry_fit_shifts), data.tables
    merged = scoring.shared(targets=tables.valid, history=tables.history("valid"), rank_fn=lambda t, h: shift_rankings(
        items=items, users=users, shifts=shifts, n_items=tables.n_items, targets=t, history=h, **vec))
    fit = None
    if rank == 0:
        items, fit = fit_shift(items=items, users=users, shifts=shifts, tables=tables,
                               min_targets=cfg.carry_fit_min_targets, rankings=merged, **vec)
        log.info("student: carry shift %.2f (%s); valid ndcg@10 by shift: %s", fit.shift, fit.reason,
                 ", ".join(f"{r['shift']:g}: {r['all']:.4f}{'' if r['qualifies'] else ' (below the teacher)'}"
                           for r in fit.rows))
    if world > 1:
        box = [fit.shift if fit is not None else None]
        dist.broadcast_object_list(box, src=0)
        if rank != 0:
            items = rescaled(items=items, shift=float(box[0]), **vec)
    return items, fit


def _carry_vec(cfg: StudentConfig, data: Any) -> dict[str, Any]:
    """What ``recsys.student.carry_fit`` needs to know of the encoded item vectors' per-item carry."""
    return {"teacher_dim": data.feats.carry.shape[1], "counts": data.feats.train_count, "carry": cfg.teacher_carry,
            "k": cfg.carry_count_k, "trained_shift": cfg.carry_shift}


def _cpu() -> float:
    """CPU seconds (user + system, every thread) of this process so far."""
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _median(xs: list[float]) -> float:
    return float(sorted(xs)[len(xs) // 2]) if xs else 0.0


def _param_counts(trained: Any) -> dict[str, int]:
    """Global parameter counts: table rows x dims from the configs, dense parameters of the towers."""
    towers = trained.towers
    tables = sum(c.num_embeddings * c.embedding_dim for c in [*towers.tables, *towers.seq_tables])
    dense = sum(p.numel() for n, p in towers.named_parameters() if n.split(".")[0] not in ("ebc", "ec"))
    kd = sum(p.numel() for n, p in trained.dmp.module.named_parameters() if n.startswith(("emb.", "rank.")))
    return {"tables": int(tables), "dense": int(dense), "distillation_heads": int(kd), "total": int(tables + dense)}


def out_dir(run_dir: RunDir, variant: str) -> Path:
    return run_dir.layout.student(variant)
