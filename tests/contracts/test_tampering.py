"""Every artifact a reader loads, damaged every way we could think of: the Python API raises ArtifactError and
`recsys recommend` exits non-zero with one paragraph naming the file (no traceback, no native abort); the
evaluation, the gate and the stages refuse the same files.

One tiny run (synthetic tables, stand-in student and teacher, real index, ranker and baselines) is built once
per module and copied per case."""

from __future__ import annotations

import contextlib
import io
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import tamper_helpers as H
from stand_ins import write_stand_in_run

from pipelines import recommend
from recsys.api import Recommender
from recsys.artifacts import RunDir
from recsys.baselines import stage as baselines_stage
from recsys.baselines.config import BaselinesConfig
from recsys.contracts import ArtifactError
from recsys.contracts.layout import Layout
from recsys.data import stage as data_stage
from recsys.data.config import DataConfig
from recsys.data.tables import load_tables
from recsys.eval import stage as eval_stage
from recsys.eval.config import EvalConfig
from recsys.index import IndexConfig
from recsys.index import stage as index_stage
from recsys.publish.gate import system_vectors
from recsys.rank import RankConfig
from recsys.rank import stage as rank_stage

V = "student_kd"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> RunDir:
    rd = RunDir(tmp_path_factory.mktemp("tamper") / "run")
    data_stage.run(DataConfig(source="synthetic", synthetic_users=120, synthetic_items=60), rd)
    write_stand_in_run(rd.root)
    index_stage.run(IndexConfig(kind="flat", k=30, tradeoff=False), rd)
    baselines_stage.run(BaselinesConfig(als_factors=4, als_iterations=2), rd)
    rank_stage.run(RankConfig(n_estimators=20), rd)
    rec = Recommender.load(rd.root)  # the intact run loads and uses the teacher features and every source
    assert rec.ranker is not None and rec.teacher is not None and len(rec.sources) == 3
    return rd


@pytest.fixture(scope="module")
def user_id(tiny: RunDir) -> str:
    return load_tables(tiny.layout).users["user_id"][0]


def _case(tiny: RunDir, tmp_path: Path, file: Callable[[Layout], Path], damage: Callable[[Path], None],
          recorded: bool) -> tuple[Path, Path]:
    root = Path(shutil.copytree(tiny.root, tmp_path / "run"))
    path = file(Layout(root))
    damage(path)
    if recorded:
        H.rerecord(root, path)
    return root, path


def _assert_refused(root: Path, path: Path, user_id: str) -> None:
    with pytest.raises(ArtifactError) as e:
        Recommender.load(root)
    msg = str(e.value)
    assert str(path) in msg and "\n" not in msg, msg
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = recommend.main(["-o", str(root), user_id])
    printed = err.getvalue().strip()
    assert rc == 2 and printed.startswith("recsys recommend: error: ") and str(path) in printed, (rc, printed)
    assert "\n" not in printed and "Traceback" not in printed, printed


# (file, damage) pairs every serving load must refuse. Raw damage is what a disk, a bad copy or a hand edit
# does; the manifest's digest catches it before any parser runs.
SERVED: dict[str, Callable[[Layout], Path]] = {
    "items": lambda L: L.items, "users": lambda L: L.users, "train": lambda L: L.split("train"),
    "valid": lambda L: L.split("valid"), "test": lambda L: L.split("test"),
    "meta": lambda L: L.student_meta(V), "item_vectors": lambda L: L.item_vectors(V),
    "user_vectors_test": lambda L: L.user_vectors(V, "test"),
    "index_file": lambda L: L.index / "index.faiss", "index_manifest": lambda L: L.index / "manifest.json",
    "ranker": lambda L: L.ranker_model, "teacher_items": lambda L: L.teacher_items,
    "teacher_users": lambda L: L.teacher_users, "topk_valid": lambda L: L.teacher_topk("valid"),
    "topk_test": lambda L: L.teacher_topk("test"),
    "candidates_test": lambda L: L.candidates("test"),  # the ranker's union reads the sources' test lists
    "als_users_test": lambda L: L.als_users("test"), "als_items_test": lambda L: L.als_items("test"),
}


@pytest.mark.parametrize("kind", sorted(H.RAW))
@pytest.mark.parametrize("name", sorted(SERVED))
def test_serving_refuses_raw_damage(tiny: RunDir, user_id: str, tmp_path: Path, name: str, kind: str) -> None:
    root, path = _case(tiny, tmp_path, SERVED[name], H.RAW[kind], recorded=False)
    _assert_refused(root, path, user_id)


# Valid-looking files with other content (not re-recorded): still caught by the digest.
CONTENT = {
    "users shuffled ids": (SERVED["users"], lambda p: H.shuffle_column(p, "user")),
    "items shuffled ids": (SERVED["items"], lambda p: H.shuffle_column(p, "item")),
    "valid split emptied": (SERVED["valid"], H.empty_table),
    "teacher rows permuted": (SERVED["teacher_items"], H.permute_safetensor_rows),
    "user vector NaN row": (SERVED["user_vectors_test"], H.nan_row),
    "item vectors one row short": (SERVED["item_vectors"], H.drop_row),
}


@pytest.mark.parametrize("case", sorted(CONTENT))
def test_serving_refuses_altered_content(tiny: RunDir, user_id: str, tmp_path: Path, case: str) -> None:
    file, damage = CONTENT[case]
    root, path = _case(tiny, tmp_path, file, damage, recorded=False)
    _assert_refused(root, path, user_id)


# A writer bug: wrong content whose digest the manifest holds. The structural checks catch these.
RECORDED = {
    "users duplicate id": (SERVED["users"], lambda p: H.duplicate_id(p, "user"), "not a permutation"),
    "items duplicate id": (SERVED["items"], lambda p: H.duplicate_id(p, "item"), "not a permutation"),
    "test item out of range": (SERVED["test"], lambda p: H.id_out_of_range(p, "item", 60), "outside 0..59"),
    "user vector NaN row": (SERVED["user_vectors_test"], H.nan_row, "NaN or infinite"),
    "user vectors one row short": (SERVED["user_vectors_test"], H.drop_row, "rows, expected 120"),
    "user vectors integer": (SERVED["user_vectors_test"], H.wrong_dtype, "dtype int64"),
    "item vectors one row short": (SERVED["item_vectors"], H.drop_row, "rows, expected 60"),
    "teacher items NaN": (SERVED["teacher_items"], H.nan_safetensor, "NaN or infinite"),
    "teacher users NaN": (SERVED["teacher_users"], H.nan_safetensor, "NaN or infinite"),
    "ranker truncated": (SERVED["ranker"], H.truncate, "not a complete LightGBM text model"),
    "ranker empty": (SERVED["ranker"], H.empty, "not a complete LightGBM text model"),
    "meta not JSON": (SERVED["meta"], H.bad_json, "not valid JSON"),
    "index manifest field missing": (SERVED["index_manifest"], lambda p: H.drop_json_field(p, "index_sha256"),
                                     "missing"),
    "index file truncated": (SERVED["index_file"], H.truncate, "checksum differs"),
    "topk item out of range": (SERVED["topk_test"], lambda p: H.id_out_of_range(p, "item", 60), "outside 0..59"),
}


@pytest.mark.parametrize("case", sorted(RECORDED))
def test_serving_refuses_recorded_but_inconsistent_files(tiny: RunDir, user_id: str, tmp_path: Path,
                                                         case: str) -> None:
    file, damage, what = RECORDED[case]
    root, path = _case(tiny, tmp_path, file, damage, recorded=True)
    _assert_refused(root, path, user_id)
    with pytest.raises(ArtifactError, match=what):
        Recommender.load(root)


@pytest.mark.parametrize("case", ["ranker truncated", "user vector NaN row"])
def test_the_command_exits_cleanly_in_its_own_process(tiny: RunDir, user_id: str, tmp_path: Path, case: str) -> None:
    """No native abort (LightGBM exits 134 on a truncated model it parses) and no traceback: one error line."""
    file, damage, _ = RECORDED[case]
    root, path = _case(tiny, tmp_path, file, damage, recorded=True)
    p = subprocess.run([sys.executable, "-m", "pipelines.cli", "recommend", "-o", str(root), user_id],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert p.returncode == 2, (p.returncode, p.stderr[-2000:])
    assert "Traceback" not in p.stderr and str(path) in p.stderr.strip().splitlines()[-1], p.stderr[-2000:]


def test_the_intact_copy_still_serves(tiny: RunDir, user_id: str, tmp_path: Path) -> None:
    root = Path(shutil.copytree(tiny.root, tmp_path / "run"))
    assert recommend.main(["-o", str(root), user_id, "-k", "3"]) == 0
    assert Recommender.load(root).recommend([user_id], k=3).height == 3


# Readers other than serving: the evaluation, the gate, the rank and index stages.
EVAL = {
    "popularity flipped": (lambda L: L.popularity("test"), H.flip, False),
    "als users one row short": (lambda L: L.als_users("test"), H.drop_row, True),
    "als items deleted": (lambda L: L.als_items("test"), H.delete, False),
    "candidates item out of range": (lambda L: L.candidates("test"), lambda p: H.id_out_of_range(p, "item", 60),
                                     True),
    "reranked truncated": (lambda L: L.reranked("test"), H.truncate, False),
    "teacher users NaN": (lambda L: L.teacher_users, H.nan_safetensor, True),
    "user vectors NaN": (lambda L: L.user_vectors(V, "test"), H.nan_row, True),
}


@pytest.mark.parametrize("case", sorted(EVAL))
def test_the_evaluation_refuses_damaged_files(tiny: RunDir, tmp_path: Path, case: str) -> None:
    file, damage, recorded = EVAL[case]
    root, path = _case(tiny, tmp_path, file, damage, recorded=recorded)
    with pytest.raises(ArtifactError) as e:
        eval_stage.run(EvalConfig(plots=False, overlap_users=0), RunDir(root))
    assert str(path) in str(e.value)
    assert not (root / "metrics.json").exists()


@pytest.mark.parametrize("case", ["users flipped", "user vectors NaN", "item vectors short"])
def test_the_gate_refuses_damaged_files(tiny: RunDir, tmp_path: Path, case: str) -> None:
    file, damage, recorded = {"users flipped": (SERVED["users"], H.flip, False),
                              "user vectors NaN": (SERVED["user_vectors_test"], H.nan_row, True),
                              "item vectors short": (SERVED["item_vectors"], H.drop_row, True)}[case]
    root, path = _case(tiny, tmp_path, file, damage, recorded=recorded)
    with pytest.raises(ArtifactError) as e:
        system_vectors(root, variant=V, tables=load_tables(tiny.layout))
    assert str(path) in str(e.value)


def test_the_rank_stage_refuses_damaged_candidates(tiny: RunDir, tmp_path: Path) -> None:
    root, path = _case(tiny, tmp_path, lambda L: L.candidates("valid"), H.flip, recorded=False)
    with pytest.raises(ArtifactError, match="candidates_valid.parquet: sha256 differs"):
        rank_stage.run(RankConfig(n_estimators=20), RunDir(root), force=True)


def test_the_index_stage_refuses_nan_user_vectors(tiny: RunDir, tmp_path: Path) -> None:
    root, path = _case(tiny, tmp_path, lambda L: L.user_vectors(V, "valid"), H.nan_row, recorded=True)
    with pytest.raises(ArtifactError, match="user_vectors_valid.npy: 1 row"):
        index_stage.run(IndexConfig(kind="flat", k=30, tradeoff=False), RunDir(root), force=True)


def test_an_unrecorded_file_is_refused(tiny: RunDir, user_id: str, tmp_path: Path) -> None:
    """A file no stage recorded cannot be verified, so it is not trusted either."""
    root = Path(shutil.copytree(tiny.root, tmp_path / "run"))
    H.rerecord  # noqa: B018 - (documentation: the other direction of rerecord)
    import json

    m = json.loads((root / "manifest.json").read_text())
    for rec in m["stages"].values():
        rec.get("outputs", {}).pop("rank/model.txt", None)
    (root / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ArtifactError, match="not recorded"):
        Recommender.load(root)


@pytest.mark.parametrize("which", ["interactions", "quarantine"])
def test_the_append_step_refuses_damaged_published_tables(tiny: RunDir, tmp_path: Path, which: str) -> None:
    """`recsys retrain` appends a batch to the published tables: they are read through the contract too."""
    from recsys.contracts import tables as T

    root, path = _case(tiny, tmp_path, lambda L: getattr(L, which), H.flip, recorded=False)
    lay = Layout(root)
    with pytest.raises(ArtifactError) as e:
        if which == "interactions":
            T.read_interactions(layout=lay, n_users=120, n_items=60)
        else:
            T.read_quarantine(layout=lay)
    assert str(path) in str(e.value) and "sha256 differs" in str(e.value)


def test_a_damaged_teacher_file_stops_the_student_before_training(tiny: RunDir, tmp_path: Path) -> None:
    from recsys.student.config import StudentConfig
    from recsys.student.dataset import load_data

    root, path = _case(tiny, tmp_path, lambda L: L.teacher_topk("valid"), H.truncate, recorded=False)
    with pytest.raises(ArtifactError, match="topk_valid.parquet: sha256 differs"):
        load_data(cfg=StudentConfig(rank_candidates="topk"), layout=Layout(root), need_teacher=True)
    root2, _ = _case(tiny, tmp_path / "b", lambda L: L.teacher_items, H.nan_safetensor, recorded=True)
    with pytest.raises(ArtifactError, match="NaN or infinite"):
        load_data(cfg=StudentConfig(), layout=Layout(root2), need_teacher=True)
