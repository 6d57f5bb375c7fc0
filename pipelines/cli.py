"""The ``recsys`` command: one registry of sub-commands (argparse sub-parsers), thin over the pipelines.

Every command module has ``add_arguments(parser)`` and ``run(args) -> exit code``; ``recsys --help`` is
generated from ``COMMANDS``. Errors of the project's own types (config, data, artifacts, locks, usage)
print one paragraph and exit 2; anything unexpected prints a short message naming the saved traceback
(``--debug`` raises it instead). See ``pipelines.common.run_guarded``.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import sys
from typing import Any

from pipelines.common import add_debug_arg, run_guarded

DESCRIPTION = """\
Two-tower retrieval and ranking for e-commerce. Data flows one way through a run directory:

  logs -> tables/ (polars: validate, quarantine, id-map, split)
       -> teacher/ (HF text model: item + user embeddings, top-K scores, domain adapter; cached)
       -> student/ (TorchRec two-tower, sharded tables under DMP, distilled on the teacher)
       -> index/   (FAISS: flat / IVF / IVF-PQ / fast-scan PQ / HNSW, CPU or GPU; exact below 200k items)
       -> rank/    (LightGBM LambdaRank re-ranker)
       -> report  (metrics JSON, markdown report, plots)
"""
EPILOG = """\
Run `recsys <command> --help` for its options. Config: -c file.toml plus key=value overrides,
e.g. `recsys evaluate student.epochs=5 data.split=temporal`. Examples: pipelines/configs/.
Exit codes: 0 done, 2 a problem with the input, config or run directory (the message says what to do),
3 retrain refused by the gate, 1 an unexpected error (traceback saved; --debug shows it).
"""


@dataclasses.dataclass(frozen=True)
class Command:
    name: str
    module: str  # pipelines module with add_arguments(ap, **options) and run(args)
    help: str
    add: str = "add_arguments"
    run: str = "run"
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    doc: str | None = None  # attribute of the module holding the description (default: its docstring)


COMMANDS: tuple[Command, ...] = (
    Command("demo", "pipelines.evaluate", "the main job on the embedded Amazon Beauty data -> runs/demo "
            "(= evaluate -o runs/demo)", options={"default_out": "runs/demo"}),
    Command("evaluate", "pipelines.evaluate", "build everything, train the distillation ablation, evaluate all "
            "systems, write the report"),
    Command("build-index", "pipelines.build_index", "data -> teacher -> student -> index -> ranker (the serving "
            "path only)"),
    Command("prepare", "pipelines.prepare", "load + validate + split logs only; prints read = kept + quarantined"),
    Command("teacher", "pipelines.teacher", "embed a run's items and users with the text teacher (torchrun "
            "when --nproc > 1)"),
    Command("student", "pipelines.student", "train one student variant on a run's tables (torchrun when "
            "--nproc > 1)"),
    Command("tune", "pipelines.tune", "budgeted Optuna search over the student's knobs, scored on valid "
            "NDCG@10 -> the best config (TOML), trials table, plot (resumable)"),
    Command("retrain", "pipelines.retrain", "retrain a published version on new logs; gated, atomically "
            "published"),
    Command("rollback", "pipelines.retrain", "point `current` back at the previous published version",
            add="add_rollback_arguments", run="rollback", doc="ROLLBACK_DOC"),
    Command("retrain-demo", "pipelines.retrain_demo", "weekly retrains on UCI Online Retail and Beauty: "
            "incremental vs published vs from scratch"),
    Command("cold-start", "pipelines.cold_start", "hold items out of training; how well do text-only vectors "
            "find them"),
    Command("recommend", "pipelines.recommend", "top-K items for users from a run directory "
            "(recsys.api.Recommender)"),
    Command("serve", "pipelines.serve", "HTTP service over a published version: API keys, /metrics, hot reload "
            "when `current` moves"),
    Command("doctor", "pipelines.doctor", "preflight: versions, torch/fbgemm/torchrec together, CUDA, faiss-GPU"),
    Command("plan", "pipelines.plan", "dry-run the TorchRec sharding planner for N GPUs (e.g. --items "
            "100000000 --gpus 8 64)"),
)


def _wide(prog: str) -> argparse.HelpFormatter:
    return argparse.RawDescriptionHelpFormatter(prog, width=110, max_help_position=18)


def parser() -> argparse.ArgumentParser:
    """The whole command line; each sub-parser is filled by its module's ``add_arguments``."""
    from recsys import __version__

    ap = argparse.ArgumentParser(prog="recsys", description=DESCRIPTION, epilog=EPILOG, formatter_class=_wide)
    ap.add_argument("-V", "--version", action="version", version=f"recsys {__version__}")
    sub = ap.add_subparsers(title="commands", metavar="<command>", dest="command")
    for c in COMMANDS:
        mod = importlib.import_module(c.module)
        p = sub.add_parser(c.name, help=c.help, description=getattr(mod, c.doc) if c.doc else mod.__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        getattr(mod, c.add)(p, **c.options)
        add_debug_arg(p)
        p.set_defaults(_run=getattr(mod, c.run))
    return ap


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = parser()
    if not argv or argv[0] == "help":
        ap.print_help()
        return 0
    args = ap.parse_args(argv)
    if args.command is None:
        ap.print_help()
        return 0
    return run_guarded(args._run, args, prog=f"recsys {args.command}")


if __name__ == "__main__":
    raise SystemExit(main())
