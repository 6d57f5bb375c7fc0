"""Launch the teacher stage's encoding workers under torchrun (``recsys.teacher.stage`` calls it when
``cfg.nproc > 1`` or the job spans several hosts); the workers run ``recsys.teacher.distributed.execute``."""

from __future__ import annotations

import json
from pathlib import Path

from recsys.artifacts import to_jsonable
from recsys.teacher.config import TeacherConfig
from recsys.torchrun import SINGLE, Rendezvous, command
from recsys.torchrun import launch as _launch

WORKER = "recsys.teacher.worker"


def torchrun_command(*, cfg: TeacherConfig, run_dir: Path, key: str, eval_splits: tuple[str, ...],
                     rdzv: Rendezvous = SINGLE) -> list[str]:
    return command(module=WORKER, nproc=cfg.nproc, rdzv=rdzv,
                   args=["--run-dir", str(run_dir), "--config-json", json.dumps(to_jsonable(cfg)), "--key", key,
                         "--eval-splits", ",".join(eval_splits)])


def launch(*, cfg: TeacherConfig, run_dir: Path, key: str, eval_splits: tuple[str, ...],
           rdzv: Rendezvous = SINGLE, timeout_s: float | None = None) -> None:
    cmd = torchrun_command(cfg=cfg, run_dir=run_dir, key=key, eval_splits=eval_splits, rdzv=rdzv)
    _launch(cmd=cmd, nproc=cfg.nproc, what="teacher", timeout_s=timeout_s)
