"""Shared plumbing for pipeline scripts: arguments, config loading, logging, stage timing."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import time
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import TypeVar

from recsys import config as C

T = TypeVar("T")
log = logging.getLogger("recsys")


def add_common_args(ap: argparse.ArgumentParser, *, default_out: str) -> None:
    ap.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                    help="config overrides, e.g. student.epochs=3 data.source=table data.path=logs.csv")
    ap.add_argument("-c", "--config", type=Path, default=None,
                    help="TOML config (see pipelines/configs/); overrides apply on top")
    ap.add_argument("-o", "--out", type=Path, default=Path(default_out), help=f"run directory (default {default_out})")
    ap.add_argument("--force", action="store_true", help="re-run every stage even when its inputs are unchanged")
    ap.add_argument("-q", "--quiet", action="store_true", help="only warnings and the final summary")
    ap.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def setup_logging(*, quiet: bool = False, verbose: bool = False) -> None:
    """Our loggers (``recsys.*``) at INFO; third-party libraries only at WARNING (fbgemm, for one, logs
    every shared object it loads at INFO on the root logger)."""
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname).1s %(message)s", datefmt="%H:%M:%S",
                        stream=sys.stderr, force=True)
    logging.getLogger("recsys").setLevel(level)


def load_config(cls: type[T], args: argparse.Namespace) -> T:
    try:
        return C.load(cls, path=args.config, overrides=list(args.overrides))
    except C.ConfigError as e:
        raise SystemExit(f"error: {e}") from None


def default_config_path(name: str) -> Path:
    return Path(str(resources.files("pipelines") / "configs" / name))


@contextlib.contextmanager
def step(name: str, timings: dict[str, float]) -> Iterator[None]:
    log.info("── %s", name)
    t0 = time.perf_counter()
    try:
        yield
    finally:
        timings[name] = round(time.perf_counter() - t0, 2)
        log.info("── %s done in %.1fs", name, timings[name])


def quiet_third_party() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    for name in ("httpx", "urllib3", "filelock", "matplotlib", "PIL"):
        logging.getLogger(name).setLevel(logging.WARNING)


@contextlib.contextmanager
def clean_errors() -> Iterator[None]:
    """A stage's one-paragraph error (a damaged artifact, a diverged training) ends the command with
    ``error: <paragraph>`` and exit status 1, not a traceback."""
    from recsys.contracts import StageError

    try:
        yield
    except StageError as e:
        raise SystemExit(f"error: {e}") from None
