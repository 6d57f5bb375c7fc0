"""The pipeline config: one frozen dataclass per stage, composed. TOML tables = these field names."""

from __future__ import annotations

import dataclasses

from recsys.baselines.config import BaselinesConfig
from recsys.data.config import DataConfig
from recsys.eval.config import EvalConfig
from recsys.index.config import IndexConfig
from recsys.rank.config import RankConfig
from recsys.student.config import ABLATION, StudentConfig
from recsys.teacher.config import TeacherConfig



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
    return dataclasses.replace(base, **ABLATION.get(name, {}))  # type: ignore[arg-type]
