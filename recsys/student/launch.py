"""Launch the student stage's workers under torchrun and wait for them (``recsys.student.stage`` calls it
when ``cfg.nproc > 1`` or the job spans several hosts; ``recsys student`` is its command line).

Process handling (lifeline, signal forwarding, multi-node rendezvous) is ``recsys.torchrun``'s.
"""

from __future__ import annotations

import json
from pathlib import Path

from recsys.artifacts import to_jsonable
from recsys.student.config import StudentConfig
from recsys.torchrun import SINGLE, Rendezvous, WorkersFailed, command
from recsys.torchrun import forward_signals as _forward_signals  # noqa: F401 - the lifeline tests use it
from recsys.torchrun import launch as _launch

__all__ = ["WorkersFailed", "launch", "torchrun_command"]
WORKER = "recsys.student.worker"


def torchrun_command(*, cfg: StudentConfig, run_dir: Path, variant: str, key: str,
                     rdzv: Rendezvous = SINGLE) -> list[str]:
    return command(module=WORKER, nproc=cfg.nproc, rdzv=rdzv,
                   args=["--run-dir", str(run_dir), "--variant", variant,
                         "--config-json", json.dumps(to_jsonable(cfg)), "--key", key])


def launch(*, cfg: StudentConfig, run_dir: Path, variant: str, key: str, rdzv: Rendezvous = SINGLE,
           timeout_s: float | None = None) -> None:
    """Run ``cfg.nproc`` workers on this host (one node of ``rdzv``) and wait; raise ``WorkersFailed`` with
    their exit code if any failed."""
    cmd = torchrun_command(cfg=cfg, run_dir=run_dir, variant=variant, key=key, rdzv=rdzv)
    _launch(cmd=cmd, nproc=cfg.nproc, what="student", detail=f"variant {variant}", timeout_s=timeout_s)
