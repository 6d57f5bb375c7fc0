"""A killed run leaves no training running, a live run's directory is refused to a second run, and the
re-run resumes to the metrics an uninterrupted run reaches (2 torchrun workers on tiny data)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from recsys.artifacts import RunDir
from recsys.student import checkpoint

ARGS = ["dim=16", "item_id_dim=16", "brand_dim=8", "category_dim=8", "mlp=32", "batch_size=32", "epochs=4",
        "patience=10", "eval_batch_size=256", "sharding=table_wise"]
VARIANT = "student_kd_emb"


def _cmd(root: Path) -> list[str]:
    return [sys.executable, "-m", "pipelines.cli", "student", "-o", str(root), "--variant", VARIANT, "--nproc", "2",
            "-q", *ARGS]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def _training_processes(root: Path) -> list[int]:
    """Pids whose command line names this run directory (torchrun's agent and its workers)."""
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(root) in cmd and ("recsys.student.worker" in cmd or "torch.distributed.run" in cmd):
            pids.append(int(d.name))
    return pids


def _test_metrics(root: Path) -> dict[str, float]:
    return json.loads((root / "student" / VARIANT / "meta.json").read_text())["test"]


def test_kill_the_process_group_mid_student_then_rerun_resumes(tiny_run: RunDir, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    full, killed = tmp_path / "full", tmp_path / "killed"
    for d in (full, killed):
        shutil.copytree(tiny_run.root, d, ignore=shutil.ignore_patterns("student"))
    subprocess.run(_cmd(full), check=True, env=_env(), capture_output=True)

    last = killed / "student" / VARIANT / "ckpt" / "last.rank0.pt"
    lasts = [last, last.with_name("last.rank1.pt")]

    def saved_epoch() -> int | None:  # the epoch both ranks' last checkpoints hold, None while they differ
        epochs = {checkpoint.load(p)["meta"]["epoch"] if p.exists() else None for p in lasts}
        return epochs.pop() if len(epochs) == 1 else None

    log = open(tmp_path / "killed.log", "w")  # a file, not a pipe: a full pipe would block the child
    proc = subprocess.Popen(_cmd(killed), env=_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 240
    training: list[int] = []
    while time.time() < deadline and proc.poll() is None:
        if (saved_epoch() or 0) >= 1:
            training = _training_processes(killed)
            os.killpg(proc.pid, signal.SIGSTOP)  # freeze everything mid-epoch: the run cannot finish under the checks
            for pid in training:
                os.kill(pid, signal.SIGSTOP)
            if (saved_epoch() or 0) >= 1:  # still a whole epoch on both ranks once frozen (not between saves)
                break
            for pid in training:
                os.kill(pid, signal.SIGCONT)
            os.killpg(proc.pid, signal.SIGCONT)
            training = []
        time.sleep(0.05)
    assert proc.poll() is None, f"the run ended before it could be killed:\n{(tmp_path / 'killed.log').read_text()}"
    assert len(training) == 3  # torchrun's agent + 2 workers (in sessions of their own)

    # a second run on the directory the live one holds is refused, naming the holder's pid
    from pipelines.cli import main

    assert main(["student", "-o", str(killed), "--variant", VARIANT, "--nproc", "2", *ARGS]) == 2
    err = capsys.readouterr().err
    assert f"recsys student: error: {killed} is in use: another recsys run holds {killed / '.lock'} (pid {proc.pid}" \
        in err, err

    os.killpg(proc.pid, signal.SIGKILL)  # what Ctrl-C escalation, a scheduler timeout or an OOM kill does
    proc.wait(timeout=30)
    gone_by = time.time() + 10
    while _training_processes(killed) and time.time() < gone_by:
        time.sleep(0.1)
    assert _training_processes(killed) == [], "torchrun workers outlived the killed run"
    assert not (killed / "student" / VARIANT / "item_vectors.npy").exists()
    epoch_at_kill = checkpoint.load(last)["meta"]["epoch"]
    assert 1 <= epoch_at_kill < 4

    again = subprocess.run(_cmd(killed), env=_env(), capture_output=True, text=True)  # the stale lock is taken over
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"resumed from {last} after epoch {epoch_at_kill}" in again.stderr, again.stderr[-3000:]
    assert "Successfully loaded" not in again.stderr and "Successfully loaded" not in again.stdout  # fbgemm quiet
    a, b = _test_metrics(full), _test_metrics(killed)
    assert a.keys() == b.keys()
    for k in a:
        assert abs(a[k] - b[k]) < 1e-6, (k, a[k], b[k])
