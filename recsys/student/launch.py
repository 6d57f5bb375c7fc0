"""Launch the student stage under torchrun: ``python -m recsys.student.launch --run-dir R --variant V
--nproc 2 [key=value ...]``. ``--nproc 1`` runs in this process (no torchrun).

``StudentConfig()`` is the distilled student. The ablation names zero distillation weights exactly as
``pipelines/config.py`` does (``config.ABLATION``); explicit ``key=value`` overrides win."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

from recsys.artifacts import RunDir, to_jsonable
from recsys.config import build, parse_overrides
from recsys.student.config import ABLATION, StudentConfig

log = logging.getLogger(__name__)

def torchrun_command(*, cfg: StudentConfig, run_dir: Path, variant: str, key: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={cfg.nproc}",
            "-m", "recsys.student.worker", "--run-dir", str(run_dir), "--variant", variant,
            "--config-json", json.dumps(to_jsonable(cfg)), "--key", key]


def launch(*, cfg: StudentConfig, run_dir: Path, variant: str, key: str, timeout_s: float | None = None) -> None:
    """Run ``cfg.nproc`` workers and wait; raise with the workers' exit code if any failed."""
    cmd = torchrun_command(cfg=cfg, run_dir=run_dir, variant=variant, key=key)
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1)
                                                                                      // cfg.nproc)))}
    log.info("student: launching %d workers: %s", cfg.nproc, " ".join(cmd[:8]) + " ...")
    proc = subprocess.run(cmd, env=env, timeout=timeout_s)
    if proc.returncode != 0:
        raise RuntimeError(f"student workers ({cfg.nproc} processes, variant {variant}) failed with exit code "
                           f"{proc.returncode}; their log is above")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--run-dir", required=True)
    ap.add_argument("--variant", default="student_kd",
                    help=f"output name; {sorted(ABLATION)} also zero their distillation weights")
    ap.add_argument("--nproc", type=int, default=None, help="processes (default: StudentConfig.nproc)")
    ap.add_argument("--force", action="store_true")
    ap.add_argument("overrides", nargs="*", help="StudentConfig overrides, e.g. epochs=5 sharding=column_wise")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    from recsys.student.stage import run
    from recsys.student.worker import quiet_libraries

    quiet_libraries()
    base = {**dataclasses.asdict(StudentConfig()), **ABLATION.get(args.variant, {})}
    nproc = {} if args.nproc is None else {"nproc": args.nproc}
    cfg = build(StudentConfig, {**base, **parse_overrides(args.overrides), **nproc})
    rec = run(cfg, RunDir(args.run_dir), variant=args.variant, force=args.force)
    print(json.dumps({"variant": args.variant, "test": rec.get("test"), "seconds": rec.get("seconds")}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
