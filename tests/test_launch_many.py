"""``recsys.torchrun.launch_many`` runs its commands at once and names the ones that failed; the run manifest
takes records from several processes at once without losing any."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from recsys.artifacts import RunDir
from recsys.torchrun import WorkersFailed, launch_many


def _py(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_commands_run_at_once_and_failures_are_named(tmp_path: Path) -> None:
    stamp = "import os, sys, time; open(sys.argv[1], 'a').write(f'{time.time()} {os.environ[\"OMP_NUM_THREADS\"]}\\n'); time.sleep(1.0)"
    t0 = time.monotonic()
    launch_many(launches=[([*_py(stamp), str(tmp_path / f"{i}.txt")], 1, f"lane {i}") for i in range(2)], what="test")
    assert time.monotonic() - t0 < 1.9  # two 1-second commands, not one after the other
    starts = [float((tmp_path / f"{i}.txt").read_text().split()[0]) for i in range(2)]
    assert abs(starts[0] - starts[1]) < 0.9
    with pytest.raises(WorkersFailed, match=r"lane b\) failed with exit code 3") as e:
        launch_many(launches=[(_py("pass"), 1, "lane a"), (_py("import sys; sys.exit(3)"), 1, "lane b")], what="test")
    assert "lane a" not in str(e.value)


def test_parallel_records_all_land_in_the_manifest(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    (run.root / "out.txt").write_text("x")
    code = ("import sys; from recsys.artifacts import RunDir; r = RunDir(sys.argv[1]); p = r.root / 'out.txt'\n"
            "for i in range(40): r.record(f'{sys.argv[2]}/{i}', key='k', config={}, outputs=[p], seconds=0.0)")
    procs = [subprocess.Popen([*_py(code), str(run.root), name]) for name in ("a", "b", "c")]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
    stages = json.loads(run.layout.manifest.read_text())["stages"]
    assert len(stages) == 120 and all(run.is_fresh(s, "k") for s in ("a/0", "b/39", "c/17"))
