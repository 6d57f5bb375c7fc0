"""Faults: SIGKILL during a publish or a retrain step, and nothing user-supplied is ever unpickled."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from pipeline_helpers import (
    SINGLE_THREAD, assert_same_model, copy_root, publish_fake, run_until_paused, sigkill, single_thread, tree_digest,
)

import recsys
from recsys.publish import store

HELPERS = str(Path(__file__).parent)


def _publish_code(root: Path, *, keep: int) -> str:
    return (f"import sys; sys.path.insert(0, {HELPERS!r})\n"
            f"from pathlib import Path\nfrom pipeline_helpers import publish_fake\n"
            f"publish_fake(Path({str(root)!r}), value=2, keep={keep})\n")


@pytest.mark.parametrize("point", ["publish:before_rename", "publish:before_switch", "publish:before_prune"])
def test_sigkill_during_publish_leaves_the_previous_version_loadable_and_unchanged(tmp_path: Path,
                                                                                   point: str) -> None:
    root = tmp_path / "root"
    publish_fake(root, value=1)
    before = tree_digest(root / "versions" / "0001")
    sigkill(run_until_paused(_publish_code(root, keep=3), pause_at=point, tmp=tmp_path))
    switched = point == "publish:before_prune"
    assert store.current_name(root) == ("0002" if switched else "0001")
    assert store.load_current(root).root.name == store.current_name(root)  # whatever is current verifies
    assert tree_digest(root / "versions" / "0001") == before
    if switched:  # the new version is live; the previous one is still there to roll back to
        with store.locked(root):
            assert store.rollback(root) == ("0002", "0001")
    # the store stays usable: the lock died with the process and the next publish goes through
    assert publish_fake(root, value=3) == "0003"
    assert store.current_name(root) == "0003"


def test_sigkill_while_pruning_never_leaves_half_a_version_in_versions(tmp_path: Path) -> None:
    root = tmp_path / "root"
    publish_fake(root, value=1)
    sigkill(run_until_paused(_publish_code(root, keep=1), pause_at="prune:renamed", tmp=tmp_path))
    assert store.list_versions(root) == ["0002"] and store.load_current(root).root.name == "0002"
    with store.locked(root):  # the next writer clears the trash
        assert not (root / store.TRASH).exists()


def _retrain_code(root: Path, logs: Path, overrides: list[str]) -> str:
    return (SINGLE_THREAD + "from pipelines.retrain import main\n"
            f"main({['-q', '-o', str(root), f'logs={logs}', *overrides]!r})\n")


@pytest.mark.parametrize("point", ["retrain:teacher", "mid-student", "publish:before_switch"])
def test_sigkill_during_a_retrain_step_resumes_to_the_same_result(shop: dict, published_root: Path,
                                                                  incremented_root: Path, tmp_path: Path,
                                                                  point: str) -> None:
    from pipelines.retrain import main

    single_thread()
    logs, ov, ref = shop["batches"][0], shop["overrides"], incremented_root
    root = copy_root(published_root, tmp_path / "killed")
    code = _retrain_code(root, logs, ov)
    if point == "mid-student":  # let it run into the student step, kill after its first epoch checkpoint
        proc = run_until_paused(code, pause_at="retrain:student", tmp=tmp_path, env={store.PAUSE_S_ENV: "0"})
        ckpt = root / "work" / "0002" / "student" / "student_kd" / "ckpt" / "last.rank0.pt"
        t0 = time.time()
        while not ckpt.exists() and proc.poll() is None and time.time() - t0 < 120:
            time.sleep(0.01)
        sigkill(proc)
        assert ckpt.exists() and "student/student_kd" not in store.read_manifest(ckpt.parents[3])["stages"]
    else:
        sigkill(run_until_paused(code, pause_at=point, tmp=tmp_path))
    assert store.current_name(root) == "0001" and store.load_current(root).root.name == "0001"
    work = root / ("versions" if point == "publish:before_switch" else "work") / "0002"
    done_before = store.read_manifest(work).get("stages", {})
    assert main(["-q", "-o", str(root), f"logs={logs}", *ov]) == 0
    assert store.current_name(root) == "0002"
    after = store.read_manifest(root / "versions" / "0002")["stages"]
    for stage, rec in done_before.items():  # finished steps were not redone
        assert after[stage]["finished_at"] == rec["finished_at"], stage
    assert_same_model(root / "versions" / "0002", ref / "versions" / "0002")


# --------------------------------------------------------------------------- no unpickling
def _calls(text: str, name: str) -> list[str]:
    """The argument text of every ``name(...)`` call (balanced parentheses)."""
    out = []
    for m in re.finditer(re.escape(name) + r"\(", text):
        depth, i = 1, m.end()
        while depth and i < len(text):
            depth += {"(": 1, ")": -1}.get(text[i], 0)
            i += 1
        out.append(text[m.end():i - 1])
    return out


def test_nothing_user_supplied_is_unpickled() -> None:
    pkg = Path(recsys.__file__).parent
    files = sorted(pkg.rglob("*.py")) + sorted((pkg.parent / "pipelines").rglob("*.py"))
    assert len(files) > 10
    bad = []
    for f in files:
        text = f.read_text(encoding="utf-8")
        if re.search(r"^\s*(import|from)\s+(c?pickle|dill|cloudpickle|joblib|shelve|marshal)\b", text, re.M):
            bad.append(f"{f}: imports a pickle-like module")
        if re.search(r"allow_pickle\s*=\s*True|read_pickle|pickle\.loads?\(", text):
            bad.append(f"{f}: unpickles")
        for args in _calls(text, "torch.load"):
            if not re.search(r"weights_only\s*=\s*True", args):
                bad.append(f"{f}: torch.load({args.strip()}) without weights_only=True")
    assert not bad, "\n".join(bad)
