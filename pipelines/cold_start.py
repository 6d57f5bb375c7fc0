"""Cold-start check: hold a share of items out of training entirely and measure how well text-only item
vectors find them, against popularity and random ranking.

    recsys cold-start [-o runs/cold_start] [data.cold_item_share=0.1] [key=value ...]

Runs data (with the hold-out) -> teacher -> baselines -> student_kd -> evaluate, then writes
``cold_start.md`` / ``cold_start.json``: Recall/NDCG@K on the test targets that are held-out items.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import time

from pipelines.common import (
    add_common_args,
    command_main,
    load_config,
    open_run,
    quiet_third_party,
    setup_logging,
    step,
)
from pipelines.config import PipelineConfig
from recsys.artifacts import RunDir
from recsys.contracts import report as RP

log = logging.getLogger("recsys")
DEFAULT_COLD_SHARE = 0.1  # share of items with training events held out when the config leaves it off


def add_arguments(ap: argparse.ArgumentParser, *, default_out: str = "runs/cold_start") -> None:
    add_common_args(ap, default_out=default_out)


def main(argv: list[str] | None = None) -> int:
    return command_main(argv, prog="recsys cold-start", doc=__doc__, add=add_arguments, run=run)


def run(args: argparse.Namespace) -> int:
    setup_logging(quiet=args.quiet, verbose=args.verbose)
    quiet_third_party()
    cfg = load_config(PipelineConfig, args)
    if cfg.data.cold_item_share <= 0:  # 0 = off everywhere else; this command exists to hold items out
        log.info("data.cold_item_share is 0 (off) in the config: cold-start holds out %.0f%% of the items "
                 "with training events (set data.cold_item_share=... to choose)", DEFAULT_COLD_SHARE * 100)
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, cold_item_share=DEFAULT_COLD_SHARE))
    cfg = dataclasses.replace(cfg, baselines=dataclasses.replace(cfg.baselines, als=False))
    with open_run(args.out):
        return _run(cfg, RunDir(args.out), force=args.force)


def _run(cfg: PipelineConfig, run_dir: RunDir, *, force: bool) -> int:
    from recsys.baselines import stage as baselines
    from recsys.data import stage as data
    from recsys.eval import stage as evaluation
    from recsys.student import stage as student
    from recsys.teacher import stage as teacher

    t0, timings = time.perf_counter(), {}
    with step("data", timings):
        counts = data.run(cfg.data, run_dir, force=force)
    with step("teacher", timings):
        teacher.run(cfg.teacher, run_dir, force=force)
    with step("baselines", timings):
        baselines.run(cfg.baselines, run_dir)
    with step("student_kd", timings):
        student.run(cfg.student, run_dir, variant="student_kd", force=force)
    with step("evaluate", timings):
        metrics = evaluation.run(dataclasses.replace(cfg.eval, overlap_users=0), run_dir)
    cold = [r for r in metrics["slices"]["popularity"] if r["slice"] == "cold"]
    n_items, targets = counts["items"], (cold[0]["targets"] if cold else 0)
    rows = [{"model": r["model"], **{k: r[k] for k in ("recall@10", "recall@20", "ndcg@10", "ndcg@20")}} for r in cold]
    # random ranking: each target lands in the top K with probability K / (candidates) ~ K / n_items
    rows.append({"model": "random (expected)", "recall@10": 10 / n_items, "recall@20": 20 / n_items,
                 "ndcg@10": float("nan"), "ndcg@20": float("nan")})
    out = {"held_out_items": counts.get("cold_items_held_out"), "cold_test_targets": targets, "rows": rows,
           "timings": timings, "wall_seconds": round(time.perf_counter() - t0, 1)}
    lines = [f"# Cold-start items — {metrics['dataset']}", "",
             f"{counts.get('cold_items_held_out')} items ({cfg.data.cold_item_share:.0%} of those with training "
             f"events) were held out of training entirely; {targets} test targets are among them. Their vectors "
             "come from text only (teacher embedding through the student's projection; no id row was trained).", "",
             "| model | recall@10 | recall@20 | ndcg@10 | ndcg@20 |", "|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['recall@10']:.4f} | {r['recall@20']:.4f} | {r['ndcg@10']:.4f} | {r['ndcg@20']:.4f} |"
              for r in rows]
    RP.write_cold_start(layout=run_dir.layout, result=out, text="\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
