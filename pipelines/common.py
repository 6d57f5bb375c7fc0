"""Shared plumbing for pipeline scripts: arguments, config loading, logging, stage timing."""

from __future__ import annotations

import argparse
import contextlib
import errno
import logging
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from recsys import config as C

T = TypeVar("T")
log = logging.getLogger("recsys")
USAGE_EXIT = 2  # the input, the config or the run directory is wrong: the message says what to do
BUG_EXIT = 1  # anything else: a short message and where the traceback went
DEBUG_ENV = "RECSYS_DEBUG"


class UsageError(RuntimeError):
    """The command was given something it cannot use (an option, an id, a directory); one paragraph."""


def _user_error_types() -> tuple[type[BaseException], ...]:
    """The project's own error types: their messages are written for the user (file, key, what to do)."""
    from recsys.contracts import StageError  # ArtifactError included
    from recsys.data.errors import DataError
    from recsys.publish.store import PublishError
    from recsys.runlock import LockedError

    return (UsageError, C.ConfigError, StageError, DataError, PublishError, LockedError)


def _paragraph(e: BaseException) -> str:
    if isinstance(e, OSError) and e.filename is not None:
        text = f"{e.filename}: {e.strerror or e}"
    else:
        text = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)
    return text.strip()


def run_guarded(run: Callable[[argparse.Namespace], int], args: argparse.Namespace, *, prog: str) -> int:
    """Run a command body: the project's errors become one paragraph and exit 2, file-system errors name the
    file and exit 2, anything unexpected a short message pointing at the saved traceback (or, with
    ``--debug`` / ``RECSYS_DEBUG=1``, the traceback itself)."""
    debug = bool(getattr(args, "debug", False)) or os.environ.get(DEBUG_ENV) == "1"
    try:
        return int(run(args) or 0)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # the one place where any error is turned into a message
        if debug:
            raise
        if isinstance(e, (*_user_error_types(), OSError)):
            print(f"{prog}: error: {_paragraph(e)}", file=sys.stderr)
            return USAGE_EXIT
        from recsys.torchrun import WorkersFailed

        if isinstance(e, WorkersFailed):  # the workers' own log (above) says why
            print(f"{prog}: error: {_paragraph(e)}", file=sys.stderr)
            return BUG_EXIT
        fd, path = tempfile.mkstemp(prefix=f"{prog.replace(' ', '-')}-", suffix=".traceback.txt")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write("".join(traceback.format_exception(e)))
        first = (str(e).strip().splitlines() or [""])[0][:300]
        print(f"{prog}: unexpected {type(e).__name__}: {first}. This is a bug or a case recsys does not handle "
              f"yet; the traceback is in {path} (re-run with --debug to see it here).", file=sys.stderr)
        return BUG_EXIT


def add_debug_arg(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--debug", action="store_true", help="let unexpected errors raise with their traceback")


def command_main(argv: list[str] | None, *, prog: str, doc: str | None, add: Callable[..., None],
                 run: Callable[[argparse.Namespace], int], **options: Any) -> int:
    """``main(argv)`` of a pipeline module: the same parser and error handling as ``recsys <command>``."""
    ap = argparse.ArgumentParser(prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    add(ap, **options)
    add_debug_arg(ap)
    return run_guarded(run, ap.parse_args(argv), prog=prog)


def check_out_dir(path: Path, *, option: str = "-o") -> Path:
    """``path`` is (or can be made) a writable directory, else ``UsageError`` naming it and what to do."""
    if path.exists() and not path.is_dir():
        raise UsageError(f"{option} {path}: is an existing file, not a directory; give a directory for the run "
                         "(it is created if missing)")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        why = {errno.EROFS: "the file system is read-only", errno.EACCES: "permission denied",
               errno.ENOTDIR: "a parent of it is a file", errno.ENOSPC: "no space left"}.get(e.errno, e.strerror)
        raise UsageError(f"{option} {path}: cannot write there ({why}); give a directory on a writable file "
                         "system") from None
    return path


@contextlib.contextmanager
def open_run(path: Path, *, what: str = "another recsys run") -> Iterator[Path]:
    """Check ``-o`` and hold its lock for the command: a second run on a directory a live one holds is refused
    with the holder's pid; the lock of a dead process is taken over."""
    from recsys.runlock import hold

    check_out_dir(path)
    with hold(path, what=what):
        yield path


def add_rendezvous_args(ap: argparse.ArgumentParser) -> None:
    """``--nnodes/--node-rank/--rdzv-endpoint/--rdzv-id``: run a stage as one node of a multi-node torchrun job."""
    g = ap.add_argument_group("multi-node (the same command on every host, on a run directory they all mount)")
    g.add_argument("--nnodes", default="1", help="hosts in the job: N, or MIN:MAX (elastic; starts once MIN have "
                   "joined). Default 1 (this host alone)")
    g.add_argument("--node-rank", type=int, default=None,
                   help="this host's rank (0..N-1); node 0 holds the run-directory lock. Default: assigned by the "
                        "rendezvous, and no host takes the lock")
    g.add_argument("--rdzv-endpoint", default=None, help="host:port of the c10d rendezvous store, reachable from "
                   "every host (the torchrun agent on that host serves it)")
    g.add_argument("--rdzv-id", default=None, help="job id: the same on every host, new for each job")


def rendezvous(args: argparse.Namespace) -> Any:
    """The ``recsys.torchrun.Rendezvous`` of ``add_rendezvous_args``'s flags (ConfigError names a bad one)."""
    from recsys.torchrun import Rendezvous

    return Rendezvous(nnodes=str(args.nnodes), node_rank=args.node_rank, endpoint=args.rdzv_endpoint,
                      rdzv_id=args.rdzv_id)


@contextlib.contextmanager
def open_node_run(path: Path, *, rdzv: Any) -> Iterator[Path]:
    """``open_run`` for one node of a job: one host alone, or node 0 of several, holds the run-dir lock; the
    other nodes only check the directory (they write nothing but through rank 0)."""
    if not rdzv.multi_node or rdzv.node_rank == 0:
        with open_run(path):
            yield path
        return
    check_out_dir(path)
    log.info("node %s of a %s-node job: not taking %s/.lock (node 0 holds it)",
             "?" if rdzv.node_rank is None else rdzv.node_rank, rdzv.nnodes, path)
    yield path


def add_common_args(ap: argparse.ArgumentParser, *, default_out: str) -> None:
    """Overrides, -c, -o, --force, -q, -v: what every command over a run directory takes."""
    ap.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                    help="config overrides, e.g. student.epochs=3 data.source=table data.path=logs.csv")
    ap.add_argument("-c", "--config", type=Path, default=None,
                    help="TOML config (see pipelines/configs/); overrides apply on top")
    ap.add_argument("-o", "--out", type=Path, default=Path(default_out), help=f"run directory (default {default_out})")
    ap.add_argument("--force", action="store_true", help="re-run every stage even when its inputs are unchanged")
    ap.add_argument("-q", "--quiet", action="store_true", help="only warnings and the final summary")
    ap.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def add_stage_args(ap: argparse.ArgumentParser, *, config: str, example: str, holds: str) -> None:
    """What a one-stage command (``recsys teacher`` / ``recsys student``) takes: ``config`` overrides, the run
    directory (which ``holds`` the stage's inputs), --nproc, --force, -q, -v and the multi-node flags."""
    ap.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help=f"{config} overrides, e.g. {example}")
    ap.add_argument("-o", "--out", "--run-dir", dest="out", type=Path, required=True,
                    help=f"run directory holding {holds}")
    ap.add_argument("--nproc", type=int, default=None, help=f"processes on this host (default: {config}.nproc)")
    ap.add_argument("--force", action="store_true", help="run even when inputs and config are unchanged")
    ap.add_argument("-q", "--quiet", action="store_true", help="only warnings and the final summary")
    ap.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    add_rendezvous_args(ap)


class _CurrentStderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at emit time, not the stream it was created with (which a test
    harness or a redirect may have closed since: "--- Logging error ---")."""

    @property
    def stream(self):  # type: ignore[no-untyped-def]  # noqa: ANN201
        return sys.stderr

    @stream.setter
    def stream(self, value: object) -> None:
        pass


def setup_logging(*, quiet: bool = False, verbose: bool = False) -> None:
    """Our loggers (``recsys.*``) at INFO; third-party libraries only at WARNING (fbgemm, for one, logs
    every shared object it loads at INFO on the root logger)."""
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    handler = _CurrentStderr()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname).1s %(message)s", datefmt="%H:%M:%S"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler], force=True)
    logging.getLogger("recsys").setLevel(level)


def load_config(cls: type[T], args: argparse.Namespace) -> T:
    """``cls`` from ``-c`` and the overrides; raises ``ConfigError`` naming the key."""
    return C.load(cls, path=args.config, overrides=list(args.overrides))


def default_config_path(name: str) -> Path:
    return Path(str(resources.files("pipelines") / "configs" / name))


def cpu_seconds() -> float:
    """User + system CPU seconds of this process (every thread) and of its finished children (torchrun's
    agent and workers once waited for): on a shared machine the honest cost of a stage, where wall time is not."""
    import resource

    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


@contextlib.contextmanager
def step(name: str, timings: dict[str, float], cpu: dict[str, float] | None = None) -> Iterator[None]:
    """Time the block as stage ``name``: wall seconds into ``timings``, CPU seconds (``cpu_seconds``) into
    ``cpu`` when given; a stage that runs twice (the baselines, before the ranker and again before the
    evaluation) adds both."""
    log.info("── %s", name)
    t0, c0 = time.perf_counter(), cpu_seconds()
    try:
        yield
    finally:
        wall, used = time.perf_counter() - t0, cpu_seconds() - c0
        timings[name] = round(timings.get(name, 0.0) + wall, 2)
        if cpu is not None:
            cpu[name] = round(cpu.get(name, 0.0) + used, 2)
        log.info("── %s done in %.1fs%s", name, wall, f" ({used:.1f} CPU s)" if cpu is not None else "")
        release_memory()


def release_memory() -> None:
    """Hand the heap a finished stage freed back to the OS (glibc ``malloc_trim``; elsewhere a no-op): the next
    stage's workers start while this process waits, and the job's peak is the sum of the tree. After the cold
    teacher stage (the text encoder's activations, tokenizer buffers) glibc otherwise keeps it mapped."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def quiet_third_party() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    for name in ("httpx", "urllib3", "filelock", "matplotlib", "PIL"):
        logging.getLogger(name).setLevel(logging.WARNING)
