"""The pipeline config: one frozen dataclass per stage, composed. TOML tables = these field names."""

from __future__ import annotations

import dataclasses

from recsys.baselines.config import BaselinesConfig
from recsys.data.config import DataConfig
from recsys.eval.config import EvalConfig
from recsys.index.config import IndexConfig
from recsys.rank.config import RankConfig
from recsys.student.config import StudentConfig
from recsys.teacher.config import TeacherConfig

# The distillation ablation: names are metrics.json row names; values override [student].
VARIANTS: dict[str, dict[str, float]] = {
    "student_no_kd": {"lambda_emb": 0.0, "lambda_rank": 0.0},
    "student_kd_emb": {"lambda_rank": 0.0},
    "student_kd_rank": {"lambda_emb": 0.0},
    "student_kd": {},
}


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    data: DataConfig = DataConfig()
    baselines: BaselinesConfig = BaselinesConfig()
    teacher: TeacherConfig = TeacherConfig()
    student: StudentConfig = StudentConfig()  # the distilled student (student_kd); lambdas set in configs
    index: IndexConfig = IndexConfig()
    rank: RankConfig = RankConfig()
    eval: EvalConfig = EvalConfig()
    ablation: bool = True  # also train student_no_kd / _kd_emb / _kd_rank for the report
    rerank: bool = True  # train the LightGBM re-ranker on the index's candidates


def student_variant(base: StudentConfig, name: str) -> StudentConfig:
    return dataclasses.replace(base, **VARIANTS[name])  # type: ignore[arg-type]
