"""Preflight checks of the installation: versions, torch/fbgemm/torchrec together, CUDA, faiss-GPU."""

from __future__ import annotations

import argparse

from pipelines.common import command_main


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--brief", action="store_true", help="print only failures and the verdict")


def run(args: argparse.Namespace) -> int:
    from recsys.doctor import main

    return main(brief=args.brief)


def main(argv: list[str] | None = None) -> int:
    return command_main(argv, prog="recsys doctor", doc=__doc__, add=add_arguments, run=run)
