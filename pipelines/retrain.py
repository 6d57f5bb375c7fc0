"""Retrain the published version on new logs: append -> teacher -> student -> gate -> index + ranker -> publish.

    recsys retrain -o ROOT logs=new_week.csv [-c pipelines/configs/retrain_uci.toml] [key=value ...]
    recsys retrain -o ROOT                    first version: builds from data.path (nothing published yet)
    recsys rollback -o ROOT [--to NNNN] [--list]

ROOT holds versions/<NNNN>/ (complete run directories), a `current` symlink switched atomically, work/
(the candidate being built) and rejected/ (candidates the gate refused). The candidate is built in
work/<NNNN>/ and renamed into versions/ only when complete, so a killed retrain never disturbs what is
served; re-running the same command resumes where it stopped (finished steps are skipped) and, once the
version is published, does nothing. Exit codes: 0 published (or nothing to do), 3 refused by the gate.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

from pipelines.common import (UsageError, add_common_args, check_out_dir, command_main, default_config_path, load_config,
                              quiet_third_party, setup_logging, step)
from pipelines.config import RetrainConfig
from recsys.artifacts import RunDir, versions
from recsys.contracts import student as S
from recsys.publish import request, store
from recsys.publish.config import GateConfig, PublishConfig
from recsys.student.config import StudentConfig
from recsys.teacher.config import TeacherConfig

log = logging.getLogger("recsys")
REFUSED = 3


def required_stages(cfg: RetrainConfig) -> tuple[str, ...]:
    return ("data", "teacher", S.stage_of(cfg.variant), "gate", "index", *(("rank",) if cfg.rerank else ()))


def train_end(run: RunDir) -> int:
    """One second after the newest event a version's student trained on (its train split): every later
    event is new to it, including its own valid/test days."""
    from recsys.contracts import tables as T

    return int(T.read(layout=run.layout).train["timestamp"].max()) + 1


def teacher_config(cfg: RetrainConfig, parent: RunDir | None) -> TeacherConfig:
    """With a published version that fitted an adapter: apply that adapter (``teacher.adapter_from``) unless
    ``retrain.refit_adapter``; else ``cfg.teacher`` as given."""
    from recsys.contracts import teacher as T

    if parent is None or cfg.refit_adapter or cfg.teacher.adapter_epochs == 0 or cfg.teacher.adapter_from \
            or not T.has_adapter(parent.layout):
        return cfg.teacher
    return dataclasses.replace(cfg.teacher, adapter_from=str(parent.root))


def student_config(cfg: RetrainConfig, parent: RunDir | None) -> tuple[StudentConfig, bool]:
    """With a published version: warm start from its checkpoint and train incrementally (new window + replay,
    fewer epochs; see ``RetrainConfig``). Without: ``cfg.student`` as given (from scratch on every event)."""
    if parent is None:
        return cfg.student, False
    epochs = cfg.student.epochs if cfg.incremental_epochs <= 0 else min(cfg.student.epochs, cfg.incremental_epochs)
    return dataclasses.replace(cfg.student, init_from=str(parent.layout.student(cfg.variant)),
                               train_since=train_end(parent), replay_fraction=cfg.replay_fraction,
                               epochs=epochs), True


def batch_key(cfg: RetrainConfig) -> str:
    """The new logs' fingerprint (the data stage's) + the config that shapes the model (gate and keep do not)."""
    from recsys.data.stage import input_key

    logs = input_key(dataclasses.replace(cfg.data, path=cfg.logs or cfg.data.path))
    return request.batch_key(logs=logs, config=dataclasses.replace(cfg, publish=PublishConfig(), gate=GateConfig()))


def refreshed_variant(cfg: RetrainConfig) -> str:
    return f"published_{cfg.variant}"


def refresh_published(cfg: RetrainConfig, work: RunDir, parent: RunDir, *, force: bool) -> str:
    """The published model re-applied to the candidate's tables, without training (the gate's ``refreshed``
    baseline): its own config, warm-started from its checkpoint, 0 epochs, exported as ``published_<variant>``.
    (``build`` trains it beside the candidate, in the candidate's worker launch; here it is then up to date.)"""
    from recsys.student import stage as student

    name = refreshed_variant(cfg)
    student.run(refreshed_config(cfg, parent), work, variant=name, force=force)
    return name


def refreshed_config(cfg: RetrainConfig, parent: RunDir) -> StudentConfig:
    """The config of ``refresh_published``: the published student's own, from its checkpoint, 0 epochs."""
    from recsys.config import ConfigError
    from recsys.config import build as build_config

    src = parent.layout.student(cfg.variant)
    meta = S.read_meta(layout=parent.layout, variant=cfg.variant)
    try:
        pub = build_config(StudentConfig, meta["config"], prefix="student.")
    except (ConfigError, KeyError) as e:
        raise ConfigError(f"{parent.layout.student_meta(cfg.variant)}: the published student's config cannot be rebuilt by this version "
                          f"of recsys ({e}); set gate.baseline=as_served to compare with its stored vectors") from e
    return dataclasses.replace(pub, epochs=0, init_from=str(src), train_since=None, quantize_int8=False)


def gate_step(cfg: RetrainConfig, work: RunDir, parent: RunDir | None, *, force: bool) -> dict[str, Any]:
    """The gate stage (``recsys.publish.stage``), after exporting the refreshed baseline it compares with."""
    from recsys.publish import stage as gate

    refreshed = None
    if parent is not None and cfg.gate.baseline == "refreshed":
        refreshed = refresh_published(cfg, work, parent, force=False)  # trained beside the candidate in build
    return gate.run(cfg.gate, work, published=parent, variant=cfg.variant, refreshed=refreshed, force=force)


def build(cfg: RetrainConfig, work: RunDir, parent: RunDir | None, *, force: bool,
          timings: dict[str, float], base: RunDir | None = None) -> dict[str, Any]:
    """Every step up to the gate; then index + ranker when it passed. Returns the gate decision."""
    from recsys.data import append
    from recsys.data import stage as data
    from recsys.student import stage as student
    from recsys.teacher import stage as teacher

    store.pause_point("retrain:data")
    with step("data", timings):
        if parent is None:
            data.run(dataclasses.replace(cfg.data, path=cfg.logs or cfg.data.path), work, force=force,
                     require_text=True)
        else:
            append.run(cfg.data, work, base=base or parent, logs=str(cfg.logs), force=force)
    store.pause_point("retrain:teacher")
    with step("teacher", timings):
        teacher.run(teacher_config(cfg, parent), work, force=force)
    store.pause_point("retrain:student")
    scfg, warm = student_config(cfg, parent)
    work.update_manifest(retrain={**work.manifest().get("retrain", {}), "warm_start": warm,
                                  "student_training": "warm start from the published checkpoint, new window "
                                  "+ replay sample of older examples" if warm else "from scratch on all events",
                                  "train_since": scfg.train_since, "replay_fraction": scfg.replay_fraction,
                                  "epochs": scfg.epochs})
    with step(S.stage_of(cfg.variant), timings):
        jobs = {cfg.variant: scfg}
        if parent is not None and cfg.gate.baseline == "refreshed":  # the gate's baseline, in the same launch
            jobs[refreshed_variant(cfg)] = refreshed_config(cfg, parent)  # (one worker start, not two)
        rec = student.run_variants(jobs, work, force=force)[cfg.variant]
    work.update_manifest(retrain={**work.manifest().get("retrain", {}), "examples": rec.get("examples")})
    if warm:
        log.info("student: incremental, %s", rec.get("examples"))
    store.pause_point("retrain:gate")
    with step("gate", timings):
        decision = gate_step(cfg, work, parent, force=force)
    if not decision["passed"]:
        return decision
    from recsys.index import stage as index

    store.pause_point("retrain:index")
    with step("index", timings):
        index.run(cfg.index, work, vectors=S.stage_of(cfg.variant), force=force)
    if cfg.rerank:
        from recsys.rank import stage as rank

        store.pause_point("retrain:rank")
        with step("rank", timings):
            rep = rank.run(cfg.rank, work, force=force)
        serves = rep["gate"]["served"]  # the rank gate: the re-ranker only if it beat every single retriever on valid
    else:
        serves = "student_kd_ann"
    work.update_manifest(retrain={**work.manifest().get("retrain", {}), "serves": serves})
    return decision


def retrain(cfg: RetrainConfig, root: Path, *, force: bool = False, accept: bool = False) -> tuple[str, dict[str, Any]]:
    """Run one retrain under the root's lock. Returns (outcome, info): outcome is "published", "refused",
    "up_to_date" or "completed" (a publish killed after its rename, finished now)."""
    with store.locked(root):
        cur = store.current_name(root)
        parent = store.load_current(root) if cur else None  # verified: never build on a damaged version
        if parent is not None and not cfg.logs:
            raise UsageError(f"{root} already has version {cur}; pass the new batch: logs=PATH")
        if parent is not None and parent.manifest().get("retrain", {}).get("batch") == batch_key(cfg):
            return "up_to_date", {"version": cur, "current": cur}  # these logs are what is served now
        base, carried = request.data_base(root, parent=parent, carry_refused=cfg.carry_refused)
        if carried:
            log.info("data: appending to refused candidate %s, which holds the refused batches of %s (the gate "
                     "refused their models, not their logs; retrain.carry_refused=false drops them)",
                     base.root.name if base else None, ", ".join(carried))
        key = request.request_key(parent=parent, batch=batch_key(cfg), base=base)
        found = store.find_request(root, key)
        if found and found[0] == store.REJECTED:
            return "refused", store.read_manifest(found[1]).get("rejected", {})
        if found and found[0] == store.VERSIONS:
            name = found[1].name
            if name in [e.get("version") for e in store.events(root) if e.get("action") == "publish"] or name == cur:
                return "up_to_date", {"version": name, "current": cur}
            store.finish_publish(root, name, parent=cur, keep=cfg.publish.keep)
            return "completed", {"version": name}
        if found:
            work = RunDir(found[1])
            log.info("resuming %s", work.root)
        else:
            for gone in store.discard_work(root):
                log.info("discarded abandoned candidate work/%s", gone)
            work = store.new_work(root)
            work.update_manifest(retrain={"request": key, "batch": batch_key(cfg), "parent": cur, "logs": cfg.logs,
                                          "carried": carried,
                                          "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
                                 config=cfg, versions=versions())
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        decision = build(cfg, work, parent, force=force, timings=timings, base=base)
        info = {"gate": decision, "timings": timings, "seconds": round(time.perf_counter() - t0, 2),
                "version": work.root.name, "parent": cur}
        work.update_manifest(timings=timings)
        if not decision["passed"] and not accept:
            store.reject(root, work, keep=cfg.publish.keep_rejected, info=info)
            return "refused", info
        info["accepted_by_hand"] = not decision["passed"]
        store.publish(root, work, keep=cfg.publish.keep, required=required_stages(cfg), info=info)
        return "published", info


def add_arguments(ap: argparse.ArgumentParser) -> None:
    add_common_args(ap, default_out="runs/published")
    ap.add_argument("--accept", action="store_true", help="publish even if the gate refuses (recorded as such)")


def main(argv: list[str] | None = None) -> int:
    return command_main(argv, prog="recsys retrain", doc=__doc__, add=add_arguments, run=run)


def run(args: argparse.Namespace) -> int:
    setup_logging(quiet=args.quiet, verbose=args.verbose)
    quiet_third_party()
    if args.config is None:
        args.config = default_config_path("retrain_default.toml")
    cfg = load_config(RetrainConfig, args)
    if cfg.data.split != "temporal":
        log.warning("data.split=%s: the gate's test window is then not the newest days of the logs", cfg.data.split)
    if cfg.logs:  # say `logs=` when the batch is missing (the loaders' own hint names data.path)
        from recsys.data.loaders.files import resolve_files

        resolve_files(cfg.logs, what="logs=")
    check_out_dir(args.out)
    outcome, info = retrain(cfg, args.out, force=args.force, accept=args.accept)
    gate = info.get("gate") or {}
    if gate.get("drift"):
        dr = gate["drift"]
        print(f"drift vs published {gate.get('published_version')}: top-{dr['k']} changed for "
              f"{dr['changed_share']:.0%} of {dr['users']} users (overlap {dr['overlap']:.0%}), coverage "
              f"{dr['published']['coverage']:.1%} -> {dr['candidate']['coverage']:.1%}, mean log-popularity "
              f"{dr['published']['mean_log_popularity']:.2f} -> {dr['candidate']['mean_log_popularity']:.2f}, "
              f"score KS {dr['score_ks']:.2f}, cold share {dr['published']['cold_share']:.1%} -> "
              f"{dr['candidate']['cold_share']:.1%}; warnings: {'; '.join(dr['warnings']) or 'none'}")
    if outcome == "published":
        print(f"published {info['version']} (previous {info['parent']}): {gate.get('reason')} "
              f"in {info['seconds']:.0f}s -> {args.out / store.CURRENT}")
    elif outcome == "refused":
        print(f"refused by the gate: {gate.get('reason')}; current stays {store.current_name(args.out)} "
              f"(candidate kept in {args.out / store.REJECTED})")
        return REFUSED
    elif outcome == "completed":
        print(f"finished the interrupted publish of {info['version']} -> {args.out / store.CURRENT}")
    else:
        print(f"up to date: these logs are already version {info['version']} (current {info['current']})")
    return 0


ROLLBACK_DOC = "Point `current` back at the previous published version (one rename)."


def add_rollback_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("-o", "--out", type=Path, default=Path("runs/published"), help="published root")
    ap.add_argument("--to", default=None, help="version to point at (default: the one published before current)")
    ap.add_argument("--list", action="store_true", help="list versions and exit")


def rollback_main(argv: list[str] | None = None) -> int:
    return command_main(argv, prog="recsys rollback", doc=ROLLBACK_DOC, add=add_rollback_arguments, run=rollback)


def rollback(args: argparse.Namespace) -> int:
    setup_logging()
    if not args.out.is_dir():
        raise UsageError(f"-o {args.out}: no published root there (nothing was created); give the directory "
                         "`recsys retrain -o` published into")
    if args.list:
        cur = store.current_name(args.out)
        for v in store.list_versions(args.out):
            m = store.read_manifest(store.version_dir(args.out, v)).get("publish", {})
            reason = (m.get("gate") or {}).get("reason", "")
            print(f"{'*' if v == cur else ' '} {v}  {m.get('published_at', '?')}  {reason}")
        return 0
    with store.locked(args.out):
        old, new = store.rollback(args.out, to=args.to)
    print(f"rolled back: current {old} -> {new} ({args.out / store.CURRENT})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
