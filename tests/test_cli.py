"""The `recsys` command: one registry, and misuse answered with one paragraph and exit 2, never a traceback."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines import cli
from recsys.runlock import LOCK_NAME, LockedError, hold


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    rc = cli.main(list(argv))
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return rc, err.strip()


def _one_paragraph(err: str, prog: str) -> str:
    assert err.startswith(f"recsys {prog}: error: "), err
    assert "\n\n" not in err, err
    return err


@pytest.fixture(scope="module")
def served_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tables + stand-in student/teacher files + a flat index: enough for `recsys recommend`."""
    from recsys.artifacts import RunDir
    from recsys.data import stage as data_stage
    from recsys.data.config import DataConfig
    from recsys.index import IndexConfig
    from recsys.index import stage as index_stage
    from stand_ins import write_stand_in_run

    rd = RunDir(tmp_path_factory.mktemp("served") / "run")
    data_stage.run(DataConfig(source="synthetic", synthetic_users=60, synthetic_items=30), rd)
    write_stand_in_run(rd.root)
    index_stage.run(IndexConfig(kind="flat", k=20, tradeoff=False, tune_queries=20), rd)
    return rd.root


# ------------------------------------------------------------------------------------------- the registry
def test_help_lists_every_registered_command(capsys: pytest.CaptureFixture[str]) -> None:
    text = cli.parser().format_help()
    for c in cli.COMMANDS:
        assert f"    {c.name}" in text, c.name
    assert cli.main([]) == 0 and "commands:" in capsys.readouterr().out


def test_every_command_has_its_own_help() -> None:
    ap = cli.parser()
    for c in cli.COMMANDS:
        with pytest.raises(SystemExit) as e:
            ap.parse_args([c.name, "--help"])
        assert e.value.code == 0, c.name


# ---------------------------------------------------------------------------- config ranges at the command
@pytest.mark.parametrize(("override", "key", "bound"), [
    ("student.batch_size=-1", "student.batch_size", ">= 1"),
    ("index.k=-5", "index.k", ">= 1"),
    ("data.cold_item_share=2", "data.cold_item_share", ">= 0 and < 1"),
    ("student.epochs=-1", "student.epochs", ">= 0"),
])
def test_an_out_of_range_setting_is_refused_before_any_work(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                             override: str, key: str, bound: str) -> None:
    rc, err = _run(capsys, "evaluate", "-o", str(tmp_path / "run"), override)
    assert rc == 2
    _one_paragraph(err, "evaluate")
    assert f"config key '{key}'" in err and f"it must be {bound}" in err
    assert not (tmp_path / "run").exists()  # refused at load time: nothing was started


# -------------------------------------------------------------------------------------- the run directory
def test_out_pointing_at_an_existing_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    f = tmp_path / "afile"
    f.write_text("x")
    rc, err = _run(capsys, "prepare", "-o", str(f), "source=synthetic")
    assert rc == 2
    assert _one_paragraph(err, "prepare") == (f"recsys prepare: error: -o {f}: is an existing file, not a directory; "
                                             "give a directory for the run (it is created if missing)")
    assert f.read_text() == "x"


def test_out_on_a_read_only_file_system(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    def read_only(self: Path, *a: object, **k: object) -> None:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))

    monkeypatch.setattr(Path, "mkdir", read_only)  # as on a read-only mount (root ignores chmod)
    rc, err = _run(capsys, "build-index", "-o", str(tmp_path / "ro" / "run"))
    assert rc == 2
    assert _one_paragraph(err, "build-index") == (
        f"recsys build-index: error: -o {tmp_path / 'ro' / 'run'}: cannot write there (the file system is "
        "read-only); give a directory on a writable file system")


def test_a_directory_held_by_a_live_process_is_refused_naming_its_pid(capsys: pytest.CaptureFixture[str],
                                                                       tmp_path: Path) -> None:
    run = tmp_path / "run"
    code = ("import sys, time\nfrom recsys.runlock import hold\nwith hold(sys.argv[1]):\n"
            "    print('held', flush=True)\n    time.sleep(60)\n")
    holder = subprocess.Popen([sys.executable, "-c", code, str(run)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        rc, err = _run(capsys, "prepare", "-o", str(run), "source=synthetic")
        assert rc == 2
        _one_paragraph(err, "prepare")
        assert f"{run} is in use: another recsys run holds {run / LOCK_NAME} (pid {holder.pid}" in err
        assert not (run / "tables").exists()
    finally:
        holder.kill()
        holder.wait()


def test_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": int(dead.stdout), "command": "recsys evaluate"}))
    with hold(tmp_path):
        assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
        code = "import sys\nfrom recsys.runlock import hold\nwith hold(sys.argv[1]): pass\n"
        other = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True)
        assert other.returncode != 0 and f"(pid {os.getpid()}" in other.stderr
    with hold(tmp_path):  # released on exit: the next holder gets it
        pass
    with pytest.raises(LockedError, match=rf"pid {os.getpid()}"), hold(tmp_path), hold(tmp_path):
        pass


# ---------------------------------------------------------------------------------------- retrain / rollback
def test_retrain_with_a_missing_batch_names_the_logs_option(capsys: pytest.CaptureFixture[str],
                                                            tmp_path: Path) -> None:
    missing = tmp_path / "week_9.csv"
    rc, err = _run(capsys, "retrain", "-o", str(tmp_path / "root"), f"logs={missing}", "data.source=table")
    assert rc == 2
    _one_paragraph(err, "retrain")
    assert f"{missing}: file or folder does not exist. Check logs= " in err and "data.path" not in err
    assert not (tmp_path / "root").exists()


def test_rollback_list_on_a_missing_root_creates_nothing(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    root = tmp_path / "nothing" / "here"
    for argv in (["rollback", "-o", str(root), "--list"], ["rollback", "-o", str(root)]):
        rc, err = _run(capsys, *argv)
        assert rc == 2
        assert _one_paragraph(err, "rollback").startswith(f"recsys rollback: error: -o {root}: no published root")
    assert not (tmp_path / "nothing").exists()


# ------------------------------------------------------------------------------------------------ recommend
def test_recommend_similar_with_an_unknown_item(capsys: pytest.CaptureFixture[str], served_run: Path) -> None:
    rc, err = _run(capsys, "recommend", "-o", str(served_run), "--similar", "no-such-item")
    assert rc == 2
    assert _one_paragraph(err, "recommend") == (
        f"recsys recommend: error: --similar: 1 unknown item id(s): ['no-such-item']; give item ids of the run's "
        f"catalogue ({served_run})")


def test_recommend_similar_with_a_known_item_works(capsys: pytest.CaptureFixture[str], served_run: Path) -> None:
    import polars as pl

    item = pl.read_parquet(served_run / "tables" / "items.parquet")["item_id"][0]
    assert cli.main(["recommend", "-o", str(served_run), "--similar", item, "-k", "3"]) == 0
    assert "similar_item_id" in capsys.readouterr().out


@pytest.mark.parametrize("variant", ["../../x", "../run", "/etc", ".", "student_nope"])
def test_recommend_variant_must_be_one_the_run_holds(capsys: pytest.CaptureFixture[str], served_run: Path,
                                                     variant: str) -> None:
    outside = served_run.parent / "student" / "run"  # what "../run" would reach: a plausible-looking variant
    (outside / "meta.json").parent.mkdir(parents=True, exist_ok=True)
    (outside / "meta.json").write_text("{}")
    rc, err = _run(capsys, "recommend", "-o", str(served_run), "--variant", variant, "--similar", "x")
    assert rc == 2
    assert _one_paragraph(err, "recommend") == (
        f"recsys recommend: error: cannot load {served_run}: {served_run}: '{variant}' is not a student variant "
        "of this run (it has: student_kd); pass one of those names.")


# --------------------------------------------------------------------------------------------- unexpected
def test_an_unexpected_error_is_a_short_message_and_a_saved_traceback(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import pipelines.prepare

    def boom(args: object) -> int:
        return {}["no such key"]  # type: ignore[return-value]

    monkeypatch.setattr(pipelines.prepare, "run", boom)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    rc, err = _run(capsys, "prepare", "-o", str(tmp_path / "run"))
    assert rc == 1
    assert err.startswith("recsys prepare: unexpected KeyError: 'no such key'. This is a bug"), err
    saved = list(tmp_path.glob("recsys-prepare-*.traceback.txt"))
    assert len(saved) == 1 and str(saved[0]) in err and "re-run with --debug" in err
    assert "Traceback (most recent call last)" in saved[0].read_text() and "boom" in saved[0].read_text()
    with pytest.raises(KeyError):
        cli.main(["prepare", "-o", str(tmp_path / "run"), "--debug"])


# ------------------------------------------------------------------------------------- third-party logging
def _worker_logging(quiet: bool) -> str:
    code = ("import logging\nlogging.basicConfig(level=logging.INFO)\n"
            + ("from recsys.student.worker import quiet_libraries\nquiet_libraries()\n" if quiet else "")
            + "import torchrec, fbgemm_gpu\nlogging.getLogger('recsys.student.train').info('ours at INFO')\n")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stderr


def test_worker_logging_silences_fbgemm_and_torchrec_info_but_keeps_ours() -> None:
    assert "Successfully loaded" in _worker_logging(quiet=False)  # what the workers printed ~112 times a run
    err = _worker_logging(quiet=True)
    assert "Successfully loaded" not in err and "ours at INFO" in err
    assert all(line.startswith(("INFO:recsys", "WARNING", "ERROR")) for line in err.splitlines() if line), err


def test_a_batch_the_processes_cannot_share_is_refused_before_launch(capsys: pytest.CaptureFixture[str],
                                                                     served_run: Path) -> None:
    rc, err = _run(capsys, "student", "-o", str(served_run), "--nproc", "2", "batch_size=33")
    assert rc == 2
    assert _one_paragraph(err, "student") == (
        "recsys student: error: config key 'student.batch_size': 33 is not divisible by student.nproc=2 (each "
        "process takes an equal share of every batch); set a multiple of it")
    assert not (served_run / "student" / "student_kd" / "ckpt").exists()
