"""An ablation twin takes the served student's carry shift (``student.carry_fit_from``) instead of fitting its own."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torchrec  # noqa: F401  (a broken install must fail the suite, never skip it)

from recsys.artifacts import RunDir
from recsys.config import ConfigError
from recsys.student.config import StudentConfig
from recsys.student.stage import run, run_variants

TINY = {"dim": 8, "item_id_dim": 8, "brand_dim": 4, "category_dim": 4, "mlp": (16,), "batch_size": 32,
        "epochs": 1, "patience": 5, "eval_batch_size": 256, "nproc": 1, "teacher_carry": 0.5, "carry_count_k": 2.0,
        "carry_shift": 0.75, "carry_fit_shifts": (0.25,), "carry_fit_min_targets": 1}  # one candidate: 0.25 chosen


def _copy_run(src: RunDir, dst: Path) -> RunDir:
    shutil.copytree(src.root, dst, ignore=shutil.ignore_patterns("student"))
    return RunDir(dst)


def test_a_twin_takes_its_sources_shift_and_is_fresh_on_a_rerun(tiny_run: RunDir, tmp_path: Path) -> None:
    rd = _copy_run(tiny_run, tmp_path / "run")
    twin = StudentConfig(**{**TINY, "lambda_emb": 0.0, "carry_fit_from": "src", "carry_fit_shifts": (0.0,)})
    cfgs = {"src": StudentConfig(**TINY), "twin": twin}
    recs = run_variants(cfgs, rd)
    assert recs["src"]["carry_shift"] == 0.25  # its own fit
    assert recs["twin"]["carry_shift"] == 0.25  # the source's, not its own candidates' (0.0)
    meta = json.loads((rd.layout.student("twin") / "meta.json").read_text())
    assert meta["carry_fit"] == {"shift": 0.25, "from": "src"}
    again = run_variants(cfgs, rd)  # every key the same: nothing trained again
    assert again == recs


def test_a_twin_without_its_source_says_which_key_to_change(tiny_run: RunDir, tmp_path: Path) -> None:
    rd = _copy_run(tiny_run, tmp_path / "alone")
    with pytest.raises(ConfigError, match=r"student\.carry_fit_from.*'src' has no carry shift"):
        run(StudentConfig(**{**TINY, "carry_fit_from": "src"}), rd, variant="twin")


def test_twins_train_after_their_source_and_the_main_jobs_lanes_stay_one_group() -> None:
    from recsys.student.stage import launch_groups

    carry = {"teacher_carry": 0.5, "carry_count_k": 10.0}
    main = {"student_kd": StudentConfig(nproc=2, **carry),
            "student_no_kd": StudentConfig(nproc=1, teacher_carry=0.0, carry_fit_from="student_kd"),
            "student_kd_emb": StudentConfig(nproc=1, carry_fit_from="student_kd", **carry),
            "student_kd_rank": StudentConfig(nproc=1, carry_fit_from="student_kd", **carry)}
    assert launch_groups(main) == [(2, ["student_kd"]), (1, ["student_no_kd", "student_kd_emb", "student_kd_rank"])]
    same = {"twin": StudentConfig(nproc=1, carry_fit_from="src", **carry), "src": StudentConfig(nproc=1, **carry),
            "other": StudentConfig(nproc=1, **carry)}
    assert launch_groups(same) == [(1, ["src", "other"]), (1, ["twin"])]


def test_the_main_jobs_twins_take_student_kds_shift_unless_the_fit_is_off() -> None:
    from pipelines.config import PipelineConfig, ablation_variants
    from recsys.config import load

    assert {c.carry_fit_from for c in ablation_variants(PipelineConfig()).values()} == {"student_kd"}
    off = load(PipelineConfig, overrides=["student.carry_fit=false"])
    assert {c.carry_fit_from for c in ablation_variants(off).values()} == {""}
