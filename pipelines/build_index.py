"""Build a servable retrieval system: data -> teacher -> distilled student -> FAISS index -> ranker.

    python -m pipelines.build_index [-c CONFIG.toml] [-o RUN_DIR] [key=value ...]
    recsys build-index ...

Every stage is skipped when its inputs and config are unchanged, so a killed run resumes where it
stopped and a re-run with nothing new does no work. The result loads with ``recsys.api.Recommender``.
"""

from __future__ import annotations

import argparse
import logging

from pipelines.common import (
    add_common_args,
    command_main,
    load_config,
    open_run,
    quiet_third_party,
    setup_logging,
    step,
)
from pipelines.config import PipelineConfig, ablation_lanes
from recsys.artifacts import RunDir, versions
from recsys.contracts import student as S
from recsys.student.config import StudentConfig

log = logging.getLogger("recsys")


def build(cfg: PipelineConfig, run_dir: RunDir, *, force: bool = False, timings: dict[str, float],
          cpu: dict[str, float] | None = None, variants: dict[str, StudentConfig] | None = None) -> None:
    """The serving path. Heavy stages import lazily so ``--help`` stays instant. ``timings`` / ``cpu``: each
    stage's wall / CPU seconds (``pipelines.common.step``). ``variants``: more student variants (the
    ablation: name -> config) trained at the student step after student_kd, those with the same process
    count in one launch of the workers (``recsys.student.stage.run_variants``)."""
    from recsys.data import stage as data
    from recsys.index import stage as index
    from recsys.student import stage as student
    from recsys.teacher import stage as teacher

    run_dir.update_manifest(config=cfg, versions=versions())
    with step("data", timings, cpu):
        data.run(cfg.data, run_dir, force=force, require_text=True)  # the teacher encodes item text
    with step("teacher", timings, cpu):
        teacher.run(cfg.teacher, run_dir, force=force)
    cfgs = {"student_kd": cfg.student, **(variants or {})}
    with step("student_kd" if len(cfgs) == 1 else "students", timings, cpu):
        recs = student.run_variants(cfgs, run_dir, force=force, lanes=ablation_lanes(cfg))
    if len(cfgs) > 1:
        log.info("── students: %s", ", ".join(f"{v} {float(r.get('seconds', 0)):.0f}s" for v, r in recs.items()))
    with step("index", timings, cpu):
        index.run(cfg.index, run_dir, vectors=S.stage_of("student_kd"), force=force)
    if cfg.rerank:
        from recsys.rank import stage as rank

        if "als" in cfg.rank.sources:  # ALS is one of the ranker's candidate sources
            from recsys.baselines import stage as baselines

            with step("baselines", timings, cpu):
                baselines.run(cfg.baselines, run_dir)

        with step("rank", timings, cpu):
            rank.run(cfg.rank, run_dir, force=force)


def add_arguments(ap: argparse.ArgumentParser, *, default_out: str = "runs/index") -> None:
    add_common_args(ap, default_out=default_out)


def run(args: argparse.Namespace) -> int:
    setup_logging(quiet=args.quiet, verbose=args.verbose)
    quiet_third_party()
    cfg = load_config(PipelineConfig, args)
    with open_run(args.out):
        run_dir = RunDir(args.out)
        timings: dict[str, float] = {}
        cpu: dict[str, float] = {}
        build(cfg, run_dir, force=args.force, timings=timings, cpu=cpu)
        run_dir.update_manifest(timings=timings, cpu_seconds=cpu)
    print(f"index built in {sum(timings.values()):.0f}s -> {run_dir.layout.index} (load with recsys.api.Recommender)")
    return 0


def main(argv: list[str] | None = None) -> int:
    return command_main(argv, prog="recsys build-index", doc=__doc__, add=add_arguments, run=run)


if __name__ == "__main__":
    raise SystemExit(main())
