"""Train one student variant on a run directory that already has its tables (and teacher files).

    recsys student -o RUN_DIR [--variant student_kd] [--nproc 2] [--force] [key=value ...]
    recsys student -o /shared/run --nproc 8 --nnodes 4 --node-rank R --rdzv-endpoint host0:29500 --rdzv-id job1

``key=value`` are StudentConfig fields (``epochs=5 sharding=column_wise``, with or without ``student.``).
The ablation names (student_no_kd, student_kd_emb, student_kd_rank) also zero their distillation weights,
as in ``recsys evaluate``; explicit overrides win. ``--nproc 1`` trains in this process (no torchrun);
more launches torchrun workers, which stop when this command is stopped. With ``--nnodes`` > 1 this host is
one node of a multi-node job: run the same command on every host (same run directory on a shared file system,
same ``--rdzv-endpoint`` and ``--rdzv-id``); every node computes the same stage key from the shared files, and
rank 0 writes the exports and records the stage.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re

from pipelines.common import (UsageError, add_stage_args, command_main, open_node_run, rendezvous,
                              setup_logging)
from recsys.config import build, parse_overrides
from recsys.student.config import ABLATION, MULTILEVEL, StudentConfig, variant_overrides

VARIANT = re.compile(r"[A-Za-z0-9_.-]+")


def add_arguments(ap: argparse.ArgumentParser) -> None:
    add_stage_args(ap, config="StudentConfig", example="epochs=5", holds="tables/ (and teacher/)")
    ap.add_argument("--variant", default="student_kd",
                    help=f"output name under student/; {sorted(ABLATION)} also zero their distillation weights, "
                    f"{sorted(MULTILEVEL)} set the multi-level distillation's fields")


def config(args: argparse.Namespace) -> StudentConfig:
    if not VARIANT.fullmatch(args.variant) or args.variant.startswith("."):
        raise UsageError(f"--variant {args.variant!r}: a variant is a plain name (letters, digits, _ . -), the "
                         "folder it is written to under student/")
    base = {**dataclasses.asdict(StudentConfig()), **variant_overrides(args.variant)}
    given = parse_overrides([o.removeprefix("student.") for o in args.overrides])
    nproc = {} if args.nproc is None else {"nproc": args.nproc}
    return build(StudentConfig, {**base, **given, **nproc}, prefix="student.")


def run(args: argparse.Namespace) -> int:
    setup_logging(quiet=args.quiet, verbose=args.verbose)
    cfg = config(args)
    rdzv = rendezvous(args)
    from recsys.artifacts import RunDir
    from recsys.student.stage import run as train_variant

    with open_node_run(args.out, rdzv=rdzv):
        rec = train_variant(cfg, RunDir(args.out), variant=args.variant, force=args.force, rdzv=rdzv)
    print(json.dumps({"variant": args.variant, "test": rec.get("test"), "valid_slices": rec.get("valid_slices"),
                      "seconds": rec.get("seconds")}, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    return command_main(argv, prog="recsys student", doc=__doc__, add=add_arguments, run=run)


if __name__ == "__main__":
    raise SystemExit(main())
