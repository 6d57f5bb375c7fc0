"""Resume after SIGKILL: a run killed after an epoch's checkpoint and resumed ends with the same vectors."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torchrec  # noqa: F401  (a broken install must fail the suite, never skip it)

from recsys.artifacts import RunDir
from recsys.student import checkpoint

ARGS = ["dim=16", "item_id_dim=16", "brand_dim=8", "category_dim=8", "mlp=32", "batch_size=32", "epochs=5",
        "patience=10", "eval_batch_size=256"]


def _cmd(root: Path) -> list[str]:
    return [sys.executable, "-m", "pipelines.cli", "student", "-o", str(root), "--variant", "student_kd_emb",
            "--nproc", "1", *ARGS]


@pytest.mark.slow
def test_resume_after_kill_gives_the_same_vectors(tiny_run: RunDir, tmp_path: Path) -> None:
    full, killed = tmp_path / "full", tmp_path / "killed"
    for d in (full, killed):
        shutil.copytree(tiny_run.root, d, ignore=shutil.ignore_patterns("student"))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(_cmd(full), check=True, env=env, capture_output=True)

    last = killed / "student" / "student_kd_emb" / "ckpt" / "last.rank0.pt"
    proc = subprocess.Popen(_cmd(killed), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if last.exists() and checkpoint.load(last)["meta"]["epoch"] >= 1:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.05)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    epoch_at_kill = checkpoint.load(last)["meta"]["epoch"]
    assert 1 <= epoch_at_kill < 4
    assert not (killed / "student" / "student_kd_emb" / "item_vectors.npy").exists()

    subprocess.run(_cmd(killed), check=True, env=env, capture_output=True)
    for name in ("item_vectors.npy", "user_vectors_valid.npy", "user_vectors_test.npy"):
        a = np.load(full / "student" / "student_kd_emb" / name)
        b = np.load(killed / "student" / "student_kd_emb" / name)
        np.testing.assert_allclose(a, b, atol=1e-5, err_msg=name)
