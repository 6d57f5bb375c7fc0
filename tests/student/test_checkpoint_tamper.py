"""Damaged checkpoints are refused, naming the file, on resume and on warm start; a non-finite loss stops
training with a clear error and exports nothing."""

from __future__ import annotations

import argparse
import dataclasses
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from pipelines.common import run_guarded
from recsys.artifacts import RunDir
from recsys.contracts import ArtifactError
from recsys.student import checkpoint
from recsys.student import stage as student
from recsys.student.config import StudentConfig

TINY = StudentConfig(dim=16, item_id_dim=16, brand_dim=8, category_dim=8, mlp=(32,), batch_size=32, epochs=2,
                     patience=5, eval_batch_size=256, nproc=1, use_text=False, lambda_emb=0.0, lambda_rank=0.0,
                     quantize_int8=False)


@pytest.fixture(scope="module")
def trained(tiny_run: RunDir, tmp_path_factory: pytest.TempPathFactory) -> RunDir:
    rd = RunDir(shutil.copytree(tiny_run.root, tmp_path_factory.mktemp("ckpt") / "run"))
    student.run(TINY, rd, variant="v")
    return rd


def _copy(rd: RunDir, dst: Path) -> RunDir:
    return RunDir(shutil.copytree(rd.root, dst))


def _damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "flip":
        mid = len(data) // 2
        path.write_bytes(data[:mid] + bytes(b ^ 0xFF for b in data[mid:mid + 16]) + data[mid + 16:])
    else:
        path.write_bytes(data[: len(data) // 2])


def test_intact_checkpoints_load(trained: RunDir) -> None:
    blob = checkpoint.load(trained.layout.checkpoint("v", kind="last", rank=0))
    assert blob["meta"]["epoch"] == TINY.epochs - 1 and blob["model"]


def _printed(body: Callable[[], object], capsys: pytest.CaptureFixture[str]) -> str:
    """What a `recsys` command prints when ``body`` fails (its top-level handler), after checking exit 2: the
    last line of stderr (log lines of the stage may come before it, when an earlier test configured logging)."""
    capsys.readouterr()
    assert run_guarded(lambda _args: body(), argparse.Namespace(), prog="recsys student") == 2  # type: ignore[arg-type]
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return err.strip().splitlines()[-1]


@pytest.mark.parametrize("how", ["flip", "truncate"])
def test_resume_refuses_a_damaged_checkpoint_naming_it(trained: RunDir, tmp_path: Path, how: str,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    rd = _copy(trained, tmp_path / "run")
    last = rd.layout.checkpoint("v", kind="last", rank=0)
    _damage(last, how)
    with pytest.raises(ArtifactError, match=r"last\.rank0\.pt: .*(digest mismatch|not a recsys checkpoint)"):
        student.run(TINY, rd, variant="v", force=True)  # force: not skipped as fresh, so it resumes
    msg = _printed(lambda: student.run(TINY, rd, variant="v", force=True), capsys)  # what `recsys` prints
    assert msg.startswith("recsys student: error: ") and str(last) in msg and "\n" not in msg and "delete" in msg


@pytest.mark.parametrize("which", ["best", "last"])
def test_warm_start_refuses_a_damaged_checkpoint_naming_it(trained: RunDir, tmp_path: Path, which: str) -> None:
    parent = _copy(trained, tmp_path / "parent")
    bad = parent.layout.checkpoint("v", kind=which, rank=0)  # type: ignore[arg-type]
    _damage(bad, "flip")
    child = _copy(trained, tmp_path / "child")
    shutil.rmtree(child.layout.student("v"))
    cfg = dataclasses.replace(TINY, init_from=str(parent.layout.student("v")), epochs=1)
    with pytest.raises(ArtifactError, match=rf"{which}\.rank0\.pt: checkpoint digest mismatch"):
        student.run(cfg, child, variant="v")
    assert not child.layout.item_vectors("v").exists()


def test_warm_start_from_intact_checkpoints_trains(trained: RunDir, tmp_path: Path) -> None:
    child = _copy(trained, tmp_path / "child")
    shutil.rmtree(child.layout.student("v"))
    cfg = dataclasses.replace(TINY, init_from=str(trained.layout.student("v")), epochs=1)
    rec = student.run(cfg, child, variant="v")
    assert rec["test"]["ndcg@10"] >= 0 and child.layout.item_vectors("v").exists()


def test_a_non_finite_loss_stops_training_and_exports_nothing(tiny_run: RunDir, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    from recsys.student import train as train_mod

    rd = _copy(tiny_run, tmp_path / "run")
    real = train_mod.to_numpy_losses
    calls = {"n": 0}

    def nan_on_third_step(losses):  # noqa: ANN001, ANN202
        calls["n"] += 1
        out = real(losses)
        return {**out, "total": float("nan")} if calls["n"] >= 3 else out

    monkeypatch.setattr(train_mod, "to_numpy_losses", nan_on_third_step)
    msg = _printed(lambda: student.run(TINY, rd, variant="v"), capsys)
    assert msg.startswith("recsys student: error: ") and "diverged" in msg and "not finite" in msg and "\n" not in msg
    assert not rd.layout.item_vectors("v").exists() and rd.stage_record("student/v") is None


def test_the_export_refuses_non_finite_vectors(tiny_run: RunDir, tmp_path: Path) -> None:
    import numpy as np

    from recsys.contracts import student as S

    rd = _copy(tiny_run, tmp_path / "run")
    items = np.ones((4, 3), np.float32)
    users = np.ones((5, 3), np.float32)
    users[2, 1] = np.nan
    with pytest.raises(ArtifactError, match=r"user_vectors_valid\.npy: 1 row\(s\) hold NaN"):
        S.write_vectors(layout=rd.layout, variant="v", items=items, users_valid=users, users_test=users)
    assert not rd.layout.user_vectors("v", "valid").exists()


def test_torchrun_workers_refuse_a_damaged_checkpoint_with_one_line(trained: RunDir, tmp_path: Path,
                                                                    capfd: pytest.CaptureFixture[str]) -> None:
    """With nproc=2 the refusal happens in a worker: it prints the paragraph, the launcher fails cleanly."""
    rd = _copy(trained, tmp_path / "run")
    last = rd.layout.checkpoint("v", kind="last", rank=0)
    _damage(last, "flip")

    def body() -> int:
        student.run(dataclasses.replace(TINY, nproc=2), rd, variant="v", force=True)
        return 0

    assert run_guarded(lambda _args: body(), argparse.Namespace(), prog="recsys student") == 1  # WorkersFailed
    err = capfd.readouterr().err
    lines = [line.split("]:", 1)[1] if line.startswith("[rank") else line for line in err.splitlines()]
    assert any(line.startswith("error: ") and str(last) in line for line in lines), err[-3000:]  # the worker's
    assert "recsys student: error: student workers (2 processes, variant v) failed" in err, err[-3000:]  # launcher
