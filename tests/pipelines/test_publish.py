"""Publishing: versions/, the atomically switched `current` link, pruning, rollback, verified loading."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from recsys.artifacts import ArtifactError
from recsys.publish import store

from pipeline_helpers import fake_candidate, publish_fake, tree_digest


def test_publish_moves_the_work_dir_into_versions_and_points_current_at_it(tmp_path: Path) -> None:
    work = fake_candidate(tmp_path, value=1)
    assert work.root.parent.name == store.WORK and store.current_name(tmp_path) is None
    with store.locked(tmp_path):
        store.publish(tmp_path, work, keep=3)
    assert not work.root.exists()
    assert store.list_versions(tmp_path) == ["0001"] and store.current_name(tmp_path) == "0001"
    link = tmp_path / store.CURRENT
    assert link.is_symlink() and os.readlink(link) == os.path.join(store.VERSIONS, "0001")  # relative
    rd = store.load_current(tmp_path)
    assert rd.root == (tmp_path / "versions" / "0001").resolve()
    assert rd.manifest()["publish"]["version"] == "0001" and rd.manifest()["publish"]["parent"] is None


def test_publish_keeps_only_the_last_n_versions_and_never_reuses_numbers(tmp_path: Path) -> None:
    names = [publish_fake(tmp_path, value=v, keep=2) for v in range(4)]
    assert names == ["0001", "0002", "0003", "0004"]
    assert store.list_versions(tmp_path) == ["0003", "0004"] and store.current_name(tmp_path) == "0004"
    assert publish_fake(tmp_path, value=9, keep=2) == "0005"


def test_switch_replaces_the_link_with_one_rename_and_readers_never_see_it_missing(tmp_path: Path,
                                                                                   monkeypatch) -> None:
    for v in range(2):
        publish_fake(tmp_path, value=v)
    calls = []
    real = os.replace
    monkeypatch.setattr(store.os, "replace", lambda a, b: (calls.append((Path(a).name, Path(b).name)), real(a, b)))
    stop, errors = threading.Event(), []

    def reader() -> None:
        while not stop.is_set():
            try:
                assert store.current_name(tmp_path) in ("0001", "0002")
            except Exception as e:  # noqa: BLE001
                errors.append(e)

    t = threading.Thread(target=reader)
    t.start()
    for i in range(200):
        store.switch(tmp_path, "0001" if i % 2 else "0002")
    stop.set()
    t.join()
    assert not errors
    assert len(calls) == 200 and all(dst == store.CURRENT and src.endswith(".tmp") for src, dst in calls)
    assert not list(tmp_path.glob(".current.*"))  # no temp links left behind


def test_rollback_walks_back_through_published_versions_in_order(tmp_path: Path) -> None:
    for v in range(3):
        publish_fake(tmp_path, value=v)
    before = tree_digest(tmp_path / "versions" / "0002")
    with store.locked(tmp_path):
        assert store.rollback(tmp_path) == ("0003", "0002")
    assert store.current_name(tmp_path) == "0002" and tree_digest(tmp_path / "versions" / "0002") == before
    with store.locked(tmp_path):
        assert store.rollback(tmp_path) == ("0002", "0001")
        with pytest.raises(store.PublishError, match="no version before 0001"):
            store.rollback(tmp_path)
    # a new publish after a rollback builds on the rolled-back-to version; the next rollback returns there
    assert publish_fake(tmp_path, value=7) == "0004"
    with store.locked(tmp_path):
        assert store.rollback(tmp_path) == ("0004", "0001")


def test_rollback_command_is_one_call(tmp_path: Path, capsys) -> None:
    from pipelines.retrain import rollback_main

    for v in range(2):
        publish_fake(tmp_path, value=v)
    assert rollback_main(["-o", str(tmp_path)]) == 0
    assert store.current_name(tmp_path) == "0001"
    assert "0002 -> 0001" in capsys.readouterr().out
    assert rollback_main(["-o", str(tmp_path), "--list"]) == 0
    assert "* 0001" in capsys.readouterr().out


def test_prune_keeps_the_rollback_target_after_a_rollback(tmp_path: Path) -> None:
    for v in range(3):
        publish_fake(tmp_path, value=v, keep=2)
    with store.locked(tmp_path):
        store.rollback(tmp_path)  # 0003 -> 0002
    publish_fake(tmp_path, value=5, keep=2)  # 0004 on top of 0002
    assert store.current_name(tmp_path) == "0004" and "0002" in store.list_versions(tmp_path)
    with store.locked(tmp_path):
        assert store.rollback(tmp_path) == ("0004", "0002")


def _damage(tmp_path: Path, how: str) -> Path:
    publish_fake(tmp_path, value=1)
    f = tmp_path / "current" / "student" / "student_kd" / "item_vectors.npy"
    data = f.read_bytes()
    if how == "truncated":
        f.write_bytes(data[: len(data) // 2])
    elif how == "altered":
        f.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))  # same size, one byte flipped
    else:
        f.unlink()
    return f


@pytest.mark.parametrize("how", ["truncated", "altered", "missing"])
def test_load_current_refuses_a_damaged_artifact_naming_the_file(tmp_path: Path, how: str) -> None:
    _damage(tmp_path, how)
    with pytest.raises(ArtifactError) as e:
        store.load_current(tmp_path)
    msg = str(e.value)
    assert "item_vectors.npy" in msg and "student/student_kd" in msg
    assert ("missing" if how == "missing" else "checksum differs") in msg


def test_rollback_refuses_to_point_current_at_a_damaged_version(tmp_path: Path) -> None:
    _damage(tmp_path, "altered")  # 0001 damaged
    publish_fake(tmp_path, value=2)
    with store.locked(tmp_path), pytest.raises(ArtifactError, match="item_vectors.npy"):
        store.rollback(tmp_path)
    assert store.current_name(tmp_path) == "0002"


def test_load_current_without_any_version_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(store.PublishError, match="recsys retrain"):
        store.load_current(tmp_path)


def test_a_rejected_candidate_moves_aside_and_current_stays(tmp_path: Path) -> None:
    publish_fake(tmp_path, value=1)
    before = tree_digest(tmp_path / "versions" / "0001")
    work = fake_candidate(tmp_path, value=2)
    with store.locked(tmp_path):
        store.reject(tmp_path, work, keep=2, info={"reason": "worse"})
    assert store.current_name(tmp_path) == "0001" and store.list_versions(tmp_path) == ["0001"]
    assert (tmp_path / "rejected" / "0002" / "manifest.json").exists()
    assert tree_digest(tmp_path / "versions" / "0001") == before
    assert [e["action"] for e in store.events(tmp_path)] == ["publish", "refused"]


def test_a_second_writer_is_refused_while_the_lock_is_held(tmp_path: Path) -> None:
    with store.locked(tmp_path), pytest.raises(store.PublishError, match="another retrain"):
        import subprocess
        import sys

        code = ("import sys; from recsys.publish import store\n"
                "try:\n    store.locked(sys.argv[1]).__enter__()\nexcept store.PublishError as e:\n"
                "    print(e); sys.exit(7)")
        r = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True)
        assert r.returncode == 7
        raise store.PublishError(r.stdout)
