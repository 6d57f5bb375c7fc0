"""Launch the student stage's workers under torchrun and wait for them (``recsys.student.stage`` calls it
when ``cfg.nproc > 1`` or the job spans several hosts; ``recsys student`` is its command line).

One launch trains one or several variants (``jobs``, same ``nproc``), one after another in the same workers and
process group: torchrun's start, the torchrec import and the rendezvous are paid once. ``launch_lanes`` runs
several such launches at once (the ablation's 1-process lanes, one per core).
Process handling (lifeline, signal forwarding, multi-node rendezvous) is ``recsys.torchrun``'s.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

from recsys.artifacts import to_jsonable
from recsys.student.config import StudentConfig
from recsys.torchrun import SINGLE, Rendezvous, WorkersFailed, command, launch_many
from recsys.torchrun import forward_signals as _forward_signals  # noqa: F401 - the lifeline tests use it
from recsys.torchrun import launch as _launch

__all__ = ["WorkersFailed", "launch", "launch_lanes", "torchrun_command"]
WORKER = "recsys.student.worker"
Jobs = Sequence[tuple[str, StudentConfig, str]]  # (variant, config, stage key), trained in this order


def _worker_args(jobs: Jobs, run_dir: Path) -> tuple[int, list[str]]:
    nproc = {cfg.nproc for _, cfg, _ in jobs}
    if len(nproc) != 1:
        raise ValueError(f"one launch runs one process count; these jobs ask for {sorted(nproc)}")
    blob = [{"variant": v, "config": to_jsonable(cfg), "key": key} for v, cfg, key in jobs]
    return nproc.pop(), ["--run-dir", str(run_dir), "--jobs-json", json.dumps(blob)]


def torchrun_command(*, jobs: Jobs, run_dir: Path, rdzv: Rendezvous = SINGLE) -> list[str]:
    nproc, args = _worker_args(jobs, run_dir)
    return command(module=WORKER, nproc=nproc, rdzv=rdzv, args=args)


def lane_command(*, jobs: Jobs, run_dir: Path) -> list[str]:
    """A lane's command: 1-process jobs run the worker itself, which starts its own 1-rank group (no torchrun
    agent: ~290 MB of RSS less per lane); more processes go through torchrun."""
    nproc, args = _worker_args(jobs, run_dir)
    return [sys.executable, "-m", WORKER, *args] if nproc == 1 else command(module=WORKER, nproc=nproc, args=args)


def launch(*, jobs: Jobs, run_dir: Path, rdzv: Rendezvous = SINGLE, timeout_s: float | None = None) -> None:
    """Run ``nproc`` workers on this host (one node of ``rdzv``) that train every job, and wait; raise
    ``WorkersFailed`` with their exit code if any failed."""
    cmd = torchrun_command(jobs=jobs, run_dir=run_dir, rdzv=rdzv)
    nproc = jobs[0][1].nproc
    _launch(cmd=cmd, nproc=nproc, what="student", detail=_detail(jobs), timeout_s=timeout_s)


def launch_lanes(*, lanes: Sequence[Jobs], run_dir: Path, timeout_s: float | None = None) -> None:
    """Run one launch per lane (each trains its jobs in order) all at once on this host, and wait for all; the
    cores are split between their workers. Raise ``WorkersFailed`` naming the lanes that failed."""
    launch_many(launches=[(lane_command(jobs=jobs, run_dir=run_dir), jobs[0][1].nproc, _detail(jobs))
                          for jobs in lanes], what="student", timeout_s=timeout_s)


def _detail(jobs: Jobs) -> str:
    return "variant " + ", ".join(v for v, _, _ in jobs)
