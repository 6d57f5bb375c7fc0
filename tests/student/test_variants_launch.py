"""One torchrun launch training two variants gives the exports of one launch per variant."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torchrec  # noqa: F401  (a broken install must fail the suite, never skip it)

from recsys.artifacts import RunDir
from recsys.student.config import StudentConfig
from recsys.student.stage import run, run_variants

TINY = {"dim": 16, "item_id_dim": 16, "brand_dim": 8, "category_dim": 8, "mlp": (32,), "batch_size": 64,
        "epochs": 2, "patience": 5, "eval_batch_size": 256, "teacher_carry": 0.0, "nproc": 2}
FILES = ("item_vectors.npy", "user_vectors_valid.npy", "user_vectors_test.npy")


def _copy_run(src: RunDir, dst: Path) -> RunDir:
    shutil.copytree(src.root, dst, ignore=shutil.ignore_patterns("student"))
    return RunDir(dst)


@pytest.mark.slow
def test_one_launch_for_two_variants_equals_two_launches(tiny_run: RunDir, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    cfgs = {"student_kd": StudentConfig(**TINY),
            "student_no_kd": StudentConfig(**{**TINY, "lambda_emb": 0.0, "lambda_rank": 0.0})}
    one, two = _copy_run(tiny_run, tmp_path / "one"), _copy_run(tiny_run, tmp_path / "two")
    import recsys.student.launch as L

    launches: list[list[str]] = []
    real = L.launch
    monkeypatch.setattr(L, "launch", lambda **kw: (launches.append([v for v, _, _ in kw["jobs"]]), real(**kw))[1])
    recs = run_variants(cfgs, one)
    assert launches == [["student_kd", "student_no_kd"]]  # one launch, both variants, in order
    for v, c in cfgs.items():
        run(c, two, variant=v)
    assert launches[1:] == [["student_kd"], ["student_no_kd"]]
    for v in cfgs:
        assert recs[v]["world_size"] == 2 and recs[v]["key"] == json.loads(
            two.layout.manifest.read_text())["stages"][f"student/{v}"]["key"]
        for name in FILES:
            a, b = np.load(one.layout.student(v) / name), np.load(two.layout.student(v) / name)
            np.testing.assert_allclose(a, b, atol=1e-6, err_msg=f"{v}/{name}")
    # the two variants really differ (the comparison above is not of one model with itself)
    assert np.abs(np.load(one.layout.student("student_kd") / FILES[0])
                  - np.load(one.layout.student("student_no_kd") / FILES[0])).max() > 1e-3
    assert run_variants(cfgs, one) == {v: json.loads(one.layout.manifest.read_text())["stages"][f"student/{v}"]
                                       for v in cfgs}  # fresh: skipped, no launch
    assert len(launches) == 3


@pytest.mark.slow
def test_lanes_of_one_process_variants_equal_training_them_in_this_process(tiny_run: RunDir, tmp_path: Path) -> None:
    one = {**TINY, "nproc": 1}
    cfgs = {"student_kd": StudentConfig(**one),
            "student_no_kd": StudentConfig(**{**one, "lambda_emb": 0.0, "lambda_rank": 0.0})}
    lanes, here = _copy_run(tiny_run, tmp_path / "lanes"), _copy_run(tiny_run, tmp_path / "here")
    recs = run_variants(cfgs, lanes, lanes=2)  # two 1-process launches at once, each recording its variant
    run_variants(cfgs, here)  # one after another in this process
    stages = json.loads(lanes.layout.manifest.read_text())["stages"]
    for v in cfgs:
        assert recs[v]["world_size"] == 1 and stages[f"student/{v}"]["key"] == recs[v]["key"]
        for name in FILES:
            np.testing.assert_allclose(np.load(lanes.layout.student(v) / name), np.load(here.layout.student(v) / name),
                                       atol=1e-6, err_msg=f"{v}/{name}")
