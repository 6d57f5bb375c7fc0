"""Run a stage's worker module under torchrun, on one host or as one node of a multi-node job.

Shared by the student and the teacher stages (each has its own worker module). One host:
``torchrun --standalone --nproc_per_node=N -m <worker> ...``. Several hosts: the same worker line on every
host with a c10d rendezvous instead of ``--standalone`` (``Rendezvous``): ``--nnodes=N`` or elastic
``MIN:MAX``, ``--rdzv-endpoint=host:port`` (the c10d store runs inside the torchrun agent of that host),
``--rdzv-id`` (the same on every host, new for each job) and optionally ``--node-rank``.

The workers cannot outlive the launching process: torchrun's agent runs in our process group with a
parent-death signal, every worker gets one too and watches our pid (``recsys.lifeline``), and SIGINT /
SIGTERM sent to us are forwarded to the agent, which stops the workers before it exits.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from types import FrameType
from typing import Any

from recsys.config import ConfigError
from recsys.lifeline import LAUNCHER_ENV, die_with_parent

log = logging.getLogger(__name__)
STOP_GRACE_S = 20.0  # after a forwarded signal: how long torchrun gets to stop the workers before SIGKILL
NNODES = re.compile(r"(\d+)(?::(\d+))?")
ENDPOINT = re.compile(r"[A-Za-z0-9_.\-\[\]:]+:\d+")


class WorkersFailed(RuntimeError):
    """The torchrun workers exited non-zero; their error (one paragraph per failed worker) is in the log above."""


@dataclasses.dataclass(frozen=True)
class Rendezvous:
    """How this host joins the job. The default (``nnodes="1"``) is one host, ``--standalone``."""

    nnodes: str = "1"  # "N" hosts, or "MIN:MAX" (elastic: starts once MIN have joined, admits up to MAX)
    node_rank: int | None = None  # this host's rank; None lets the c10d rendezvous assign one
    endpoint: str | None = None  # "host:port" every host can reach; the agent on that host runs the store
    rdzv_id: str | None = None  # job id: the same on every host, new for each job

    def __post_init__(self) -> None:
        m = NNODES.fullmatch(str(self.nnodes))
        if not m or int(m.group(1)) < 1 or (m.group(2) and int(m.group(2)) < int(m.group(1))):
            raise ConfigError(f"--nnodes {self.nnodes!r}: give a number of hosts (4) or an elastic range MIN:MAX "
                              "(2:4) with 1 <= MIN <= MAX")
        if not self.multi_node:
            return
        if not self.endpoint or not ENDPOINT.fullmatch(self.endpoint):
            raise ConfigError(f"--rdzv-endpoint {self.endpoint!r}: a multi-node job (--nnodes {self.nnodes}) needs "
                              "host:port of one host every other host can reach (e.g. host0.cluster:29500)")
        if not self.rdzv_id:
            raise ConfigError("--rdzv-id: a multi-node job needs a job id, the same on every host and new for each "
                              "job (e.g. recsys-big-001)")
        if self.node_rank is not None and not 0 <= self.node_rank < self.max_nodes:
            raise ConfigError(f"--node-rank {self.node_rank}: must be in 0..{self.max_nodes - 1} for --nnodes "
                              f"{self.nnodes}")

    @property
    def max_nodes(self) -> int:
        m = NNODES.fullmatch(str(self.nnodes))
        assert m is not None
        return int(m.group(2) or m.group(1))

    @property
    def multi_node(self) -> bool:
        return self.max_nodes > 1

    def torchrun_args(self, *, nproc: int) -> list[str]:
        """The launcher flags of ``python -m torch.distributed.run`` for ``nproc`` processes on this host."""
        if not self.multi_node:
            return ["--standalone", f"--nproc_per_node={nproc}"]
        out = [f"--nnodes={self.nnodes}", f"--nproc_per_node={nproc}", "--rdzv-backend=c10d",
               f"--rdzv-endpoint={self.endpoint}", f"--rdzv-id={self.rdzv_id}"]
        if self.node_rank is not None:
            out.append(f"--node-rank={self.node_rank}")
        return out


SINGLE = Rendezvous()


def command(*, module: str, args: Sequence[str], nproc: int, rdzv: Rendezvous = SINGLE) -> list[str]:
    """``python -m torch.distributed.run <launcher flags> -m <module> <args>``."""
    return [sys.executable, "-m", "torch.distributed.run", *rdzv.torchrun_args(nproc=nproc), "-m", module,
            *args]


def _agent_preexec() -> None:
    die_with_parent(signal.SIGTERM)  # SIGTERM, not KILL: torchrun's agent then stops its workers itself


@contextlib.contextmanager
def forward_signals(*procs: subprocess.Popen[Any]) -> Iterator[None]:
    """While the agents run, SIGINT/SIGTERM to us go to them too; then we stop as those signals would."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        for proc in procs:
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


def stop(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def launch(*, cmd: list[str], nproc: int, what: str, detail: str = "", timeout_s: float | None = None) -> None:
    """Run the torchrun ``cmd`` (from ``command``) and wait; raise ``WorkersFailed`` if any worker failed.

    Interrupted (SIGINT/SIGTERM, a timeout, any exception here), the workers are stopped before this returns.
    """
    launch_many(launches=[(cmd, nproc, detail)], what=what, timeout_s=timeout_s)


def launch_many(*, launches: Sequence[tuple[list[str], int, str]], what: str, timeout_s: float | None = None) -> None:
    """Run several torchrun commands at once, ``(cmd, nproc, detail)`` each, and wait for all; raise
    ``WorkersFailed`` naming every launch that failed. The cores are shared: each worker gets
    ``cores // (all workers)`` OpenMP threads unless ``OMP_NUM_THREADS`` is set. One that fails does not stop the
    others (their work is recorded as it finishes); interrupted, every launch is stopped before this returns."""
    total = sum(n for _, n, _ in launches)
    threads = os.environ.get("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // max(1, total))))
    env = {**os.environ, "OMP_NUM_THREADS": threads, LAUNCHER_ENV: str(os.getpid())}
    procs = []
    try:
        for cmd, nproc, _ in launches:
            log.info("%s: launching %d workers on this host: %s", what, nproc, " ".join(cmd[:10]) + " ...")
            procs.append(subprocess.Popen(cmd, env=env, preexec_fn=_agent_preexec))  # noqa: PLW1509 - prctl only
        with forward_signals(*procs):
            deadline = None if timeout_s is None else time.monotonic() + timeout_s
            rcs = [p.wait(timeout=None if deadline is None else max(0.0, deadline - time.monotonic()))
                   for p in procs]
    finally:
        for p in procs:
            stop(p)
    failed = [(rc, nproc, detail) for rc, (_, nproc, detail) in zip(rcs, launches) if rc != 0]
    if failed:
        raise WorkersFailed("; ".join(f"{what} workers ({nproc} processes{', ' + d if d else ''}) failed with exit "
                                      f"code {rc}" for rc, nproc, d in failed) + "; their log is above")
