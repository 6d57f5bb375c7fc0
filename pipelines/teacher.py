"""Run the teacher stage on a run directory that already has its tables.

    recsys teacher -o RUN_DIR [--nproc 2] [--force] [key=value ...]
    recsys teacher -o /shared/run --nproc 8 --nnodes 4 --node-rank R --rdzv-endpoint host0:29500 --rdzv-id job1 \\
        cache_dir=/shared/run/teacher_cache

``key=value`` are TeacherConfig fields (``batch_size=128 user_mode=text``, with or without ``teacher.``).
``--nproc 1`` encodes in this process; more launches torchrun workers that each encode a share of the texts
(balanced by tokens) into the embedding cache, after which rank 0 writes the teacher files. With ``--nnodes``
> 1 this host is one node of a multi-node job: the same command on every host, with the run directory and
``cache_dir`` on a file system they all mount.
"""

from __future__ import annotations

import argparse
import json

from pipelines.common import add_stage_args, command_main, open_node_run, rendezvous, setup_logging
from recsys.config import build, parse_overrides
from recsys.teacher.config import TeacherConfig


def add_arguments(ap: argparse.ArgumentParser) -> None:
    add_stage_args(ap, config="TeacherConfig", example="batch_size=128", holds="tables/")


def config(args: argparse.Namespace) -> TeacherConfig:
    given = parse_overrides([o.removeprefix("teacher.") for o in args.overrides])
    nproc = {} if args.nproc is None else {"nproc": args.nproc}
    return build(TeacherConfig, {**given, **nproc}, prefix="teacher.")


def run(args: argparse.Namespace) -> int:
    setup_logging(quiet=args.quiet, verbose=args.verbose)
    cfg = config(args)
    rdzv = rendezvous(args)
    from recsys.artifacts import RunDir
    from recsys.teacher.stage import run as run_teacher

    with open_node_run(args.out, rdzv=rdzv):
        stats = run_teacher(cfg, RunDir(args.out), force=args.force, rdzv=rdzv)
    print(json.dumps({k: stats.get(k) for k in ("items", "users", "encoded_new", "from_cache", "seconds")}, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    return command_main(argv, prog="recsys teacher", doc=__doc__, add=add_arguments, run=run)


if __name__ == "__main__":
    raise SystemExit(main())
