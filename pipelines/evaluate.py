"""The main job: build everything, train the distillation ablation, evaluate every system, write the report.

    python -m pipelines.evaluate [-c CONFIG.toml] [-o RUN_DIR] [key=value ...]
    recsys evaluate ...            (recsys demo = this, on the embedded Beauty data, into runs/demo)

Rows in metrics.json: most_popular, als, teacher_raw, teacher_adapted, student_no_kd, student_kd_emb,
student_kd_rank, student_kd, student_kd_int8, student_kd_pruned, student_kd_ann [, student_intermediate,
student_kd_ml with ``multilevel = true``], union_rerank — all on the same
split (leave-one-out by default), full ranking, each user's history excluded. ``served`` names the row the
rank gate chose (the re-ranked union only when it beat every single retriever on valid).
"""

from __future__ import annotations

import argparse
import json
import logging
import time

from pipelines.build_index import build
from pipelines.common import (add_common_args, command_main, cpu_seconds, load_config, open_run, quiet_third_party,
                              setup_logging, step)
from pipelines.config import PipelineConfig, ablation_variants, student_variant
from recsys.artifacts import RunDir
from recsys.student.config import MULTILEVEL

log = logging.getLogger("recsys")


def evaluate(cfg: PipelineConfig, run_dir: RunDir, *, force: bool = False) -> dict:
    from recsys.baselines import stage as baselines
    from recsys.eval import stage as evaluation
    from recsys.student import prune_stage
    from recsys.student import stage as student

    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    cpu: dict[str, float] = {}
    c0 = cpu_seconds()
    build(cfg, run_dir, force=force, timings=timings, cpu=cpu, variants=ablation_variants(cfg) if cfg.ablation else None)
    with step("baselines", timings, cpu):
        baselines.run(cfg.baselines, run_dir)
    if cfg.prune.enabled and cfg.student.user_tower != "pooled":
        log.warning("prune: skipped, student_kd has the sequential user tower (no pruned twin); "
                    "prune.enabled=false silences this")
    elif cfg.prune.enabled:
        with step("prune", timings, cpu):
            prune_stage.run(cfg.prune, run_dir, variant="student_kd", force=force)
    if cfg.multilevel:  # in order: the intermediate first, then the student that reads its vectors
        for name in MULTILEVEL:
            with step(name, timings, cpu):
                student.run(student_variant(cfg.student, name), run_dir, variant=name, force=force)
    with step("evaluate", timings, cpu):
        metrics = evaluation.run(cfg.eval, run_dir)
    run_dir.update_manifest(timings=timings, wall_seconds=round(time.perf_counter() - t0, 1), cpu_seconds=cpu,
                            cpu_seconds_total=round(cpu_seconds() - c0, 1))
    return metrics


def summary_lines(metrics: dict) -> list[str]:
    lines = [f"{'model':<24} {'recall@10':>9} {'ndcg@10':>9} {'recall@20':>9} {'ndcg@20':>9}"]
    for r in metrics["rows"]:
        lines.append(f"{r['model']:<24} {r.get('recall@10', 0):>9.4f} {r.get('ndcg@10', 0):>9.4f} "
                     f"{r.get('recall@20', 0):>9.4f} {r.get('ndcg@20', 0):>9.4f}")
    return lines


def add_arguments(ap: argparse.ArgumentParser, *, default_out: str = "runs/eval") -> None:
    add_common_args(ap, default_out=default_out)
    ap.add_argument("--json", action="store_true", help="print the metrics rows as JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    setup_logging(quiet=args.quiet, verbose=args.verbose)
    quiet_third_party()
    cfg = load_config(PipelineConfig, args)
    t0 = time.perf_counter()
    with open_run(args.out):
        run_dir = RunDir(args.out)
        metrics = evaluate(cfg, run_dir, force=args.force)
    if args.json:
        print(json.dumps(metrics["rows"], indent=2))
    else:
        print(f"\n{metrics['dataset']} — {metrics['protocol']}")
        print("\n".join(summary_lines(metrics)))
    print(f"\ndone in {time.perf_counter() - t0:.0f}s -> {run_dir.layout.report_md}, {run_dir.layout.metrics}")
    return 0


def main(argv: list[str] | None = None, *, default_out: str = "runs/eval", prog: str = "recsys evaluate") -> int:
    return command_main(argv, prog=prog, doc=__doc__, add=add_arguments, run=run, default_out=default_out)


if __name__ == "__main__":
    raise SystemExit(main())
