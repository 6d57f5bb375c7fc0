"""Launch the student stage's workers under torchrun and wait for them (``recsys.student.stage`` calls it
when ``cfg.nproc > 1``; ``recsys student`` is its command line).

The workers cannot outlive this process: torchrun's agent runs in our process group with a parent-death
signal, every worker gets one too and watches our pid (``recsys.student.lifeline``), and SIGINT / SIGTERM
sent to this process are forwarded to the agent, which stops the workers before it exits.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

from recsys.artifacts import to_jsonable
from recsys.student.config import StudentConfig
from recsys.student.lifeline import LAUNCHER_ENV, die_with_parent

log = logging.getLogger(__name__)
STOP_GRACE_S = 20.0  # after a forwarded signal: how long torchrun gets to stop the workers before SIGKILL


class WorkersFailed(RuntimeError):
    """The torchrun workers exited non-zero; their error (one paragraph per failed worker) is in the log above."""


def torchrun_command(*, cfg: StudentConfig, run_dir: Path, variant: str, key: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={cfg.nproc}",
            "-m", "recsys.student.worker", "--run-dir", str(run_dir), "--variant", variant,
            "--config-json", json.dumps(to_jsonable(cfg)), "--key", key]


def _agent_preexec() -> None:
    die_with_parent(signal.SIGTERM)  # SIGTERM, not KILL: torchrun's agent then stops its workers itself


@contextlib.contextmanager
def _forward_signals(proc: subprocess.Popen[Any]) -> Iterator[None]:
    """While the agent runs, SIGINT/SIGTERM to us go to it too; then we stop as those signals would."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signum)
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise SystemExit(128 + signum)

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _stop(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def launch(*, cfg: StudentConfig, run_dir: Path, variant: str, key: str, timeout_s: float | None = None) -> None:
    """Run ``cfg.nproc`` workers and wait; raise ``WorkersFailed`` with their exit code if any failed.

    Interrupted (SIGINT/SIGTERM, a timeout, any exception here), the workers are stopped before this returns.
    """
    cmd = torchrun_command(cfg=cfg, run_dir=run_dir, variant=variant, key=key)
    threads = os.environ.get("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // cfg.nproc)))
    env = {**os.environ, "OMP_NUM_THREADS": threads, LAUNCHER_ENV: str(os.getpid())}
    log.info("student: launching %d workers: %s", cfg.nproc, " ".join(cmd[:8]) + " ...")
    proc = subprocess.Popen(cmd, env=env, preexec_fn=_agent_preexec)  # noqa: PLW1509 - prctl only
    try:
        with _forward_signals(proc):
            rc = proc.wait(timeout=timeout_s)
    finally:
        _stop(proc)
    if rc != 0:
        raise WorkersFailed(f"student workers ({cfg.nproc} processes, variant {variant}) failed with exit code "
                            f"{rc}; their log is above")
