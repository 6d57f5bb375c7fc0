"""Multi-level distillation: the served student's ranking KL reads the intermediate student's exported vectors."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from recsys.artifacts import RunDir
from recsys.student.config import StudentConfig

TINY = {"dim": 16, "item_id_dim": 16, "brand_dim": 8, "category_dim": 8, "mlp": (32,), "batch_size": 64,
        "epochs": 1, "patience": 5, "eval_batch_size": 256, "teacher_carry": 0.0, "nproc": 1}


def test_the_served_students_loss_reads_the_intermediates_vectors(tiny_run: RunDir, tmp_path: Path) -> None:
    from recsys.contracts import student as S
    from recsys.student import user_tower
    from recsys.student.dataset import load_data, step_batch
    from recsys.student.stage import run

    shutil.copytree(tiny_run.root, tmp_path / "ml", ignore=shutil.ignore_patterns("student"))
    rd = RunDir(tmp_path / "ml")
    run(StudentConfig(user_tower="sequential", seq_len=8, seq_layers=1, temperature=0.1, **TINY), rd,
        variant="student_intermediate")
    cfg = StudentConfig(rank_teacher="intermediate", **TINY)
    data = load_data(cfg=cfg, layout=rd.layout, need_teacher=True)
    items = S.read_item_vectors(layout=rd.layout, variant="student_intermediate", n_items=data.feats.n_items)
    np.testing.assert_array_equal(data.rank_items, items)
    assert data.teacher_scale == pytest.approx(10.0)  # 1 / the intermediate's temperature, not the teacher's
    tower = user_tower.read(layout=rd.layout, variant="student_intermediate")
    e = [0, 5, len(data.ex_users) - 1]
    prefixes = [data.train.items[data.train.ptr[data.ex_users[i]]:data.ex_pos[i]] for i in e]
    np.testing.assert_allclose(data.teacher_ex[e].astype(np.float32), tower.encode(prefixes), atol=2e-3)
    idx = np.arange(16)
    step = step_batch(data=data, cfg=cfg, idx=idx, rng=np.random.default_rng(0), rank=0, world=1)
    np.testing.assert_array_equal(step.teacher_items.numpy(), items[data.train.items[data.ex_pos[idx]]])
    np.testing.assert_array_equal(step.teacher_users.numpy(), data.teacher_ex[idx].astype(np.float32))
    assert data.teacher is not None and data.teacher.shape[1] != items.shape[1] or \
        not np.allclose(data.teacher[:3], items[:3])  # really other vectors than the teacher's

    rec = run(cfg, rd, variant="student_kd_ml")  # trains and exports, the key names the intermediate's files
    assert rec["valid"]["ndcg@10"] > 0
    with pytest.raises(Exception, match="cannot distil from itself"):
        run(StudentConfig(rank_teacher="intermediate", intermediate="student_kd_ml", **TINY), rd,
            variant="student_kd_ml")


def test_the_pipeline_trains_the_intermediate_before_the_student_that_reads_it() -> None:
    from pipelines.config import PipelineConfig, student_variant
    from recsys.student.config import MULTILEVEL

    assert list(MULTILEVEL) == ["student_intermediate", "student_kd_ml"]  # evaluate() trains them in this order
    base = PipelineConfig().student
    inter, ml = (student_variant(base, n) for n in MULTILEVEL)
    assert inter.user_tower == "sequential" and inter.rank_teacher == "teacher"
    assert ml.user_tower == "pooled" and ml.rank_teacher == "intermediate" and ml.intermediate == "student_intermediate"
    assert not PipelineConfig().multilevel  # off by default: it did not win on valid (README)
