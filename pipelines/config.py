"""The pipeline config: one frozen dataclass per stage, composed. TOML tables = these field names."""

from __future__ import annotations

import dataclasses
import os

from recsys.baselines.config import BaselinesConfig
from recsys.config import ranged
from recsys.data.config import DataConfig
from recsys.eval.config import EvalConfig
from recsys.index.config import IndexConfig
from recsys.publish.config import GateConfig, PublishConfig
from recsys.rank.config import RankConfig
from recsys.student.config import ABLATION, PruneConfig, StudentConfig, variant_overrides
from recsys.teacher.config import TeacherConfig


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    data: DataConfig = DataConfig()
    baselines: BaselinesConfig = BaselinesConfig()
    teacher: TeacherConfig = TeacherConfig()
    # the distilled student (student_kd); its export ranks no test split (``test_metrics``): the evaluate stage ranks
    # test for every row. ``student.test_metrics=true`` adds each variant's own test figures to its meta
    student: StudentConfig = StudentConfig(test_metrics=False)
    index: IndexConfig = IndexConfig()
    rank: RankConfig = RankConfig()
    eval: EvalConfig = EvalConfig()
    prune: PruneConfig = PruneConfig()  # the pruned student_kd: a report row beside int8, never served
    ablation: bool = True  # also train student_no_kd / _kd_emb / _kd_rank for the report
    # processes of each ablation variant (0 = student.nproc). student_kd, the served student, always trains on
    # student.nproc (2) processes, sharded under DMP; the three ablation twins default to 1 process each, run
    # ``ablation_lanes`` at a time (one launch per lane, the cores split between them). At Beauty size the 2-process
    # run is bound by its per-step gloo all-to-all and all-gathers: in one 1-thread process student_kd_rank trained
    # at 7.8 s an epoch while student_kd_emb ran beside it, against 7.7 s on both cores in 2 processes (Intel Xeon,
    # 2 cores, 2026-12-01; bench_student, Beauty: TorchRec 1 process on 1 thread 38.6k examples/s, 2 processes on 2
    # cores 31.0k). Before (2026-12-01 earlier): ablation_nproc 0, every variant in one 2-process launch. 1 process
    # changes the tables' initialisation like another seed (valid NDCG@10 within the seeds' spread)
    ablation_nproc: int = ranged(1, ge=0)
    ablation_lanes: int = ranged(0, ge=0)  # 1-process ablation variants trained at once; 0 = one per core (capped
    # by the variants). 1 trains them one after another in this process, no launch
    rerank: bool = True  # train the LightGBM re-ranker on the index's candidates
    multilevel: bool = False  # also train student_intermediate (the sequential student, distilled from the
    # teacher) and student_kd_ml (student_kd whose ranking KL reads the intermediate's vectors): two more rows.
    # Off by default: two more student trainings (the sequential one ~5x slower per example), and student_kd_ml
    # did not beat student_kd on valid NDCG@10 (Beauty 0.0734 vs 0.0752, Toys 0.0731 vs 0.0768; README)


def ablation_lanes(cfg: PipelineConfig) -> int:
    """How many 1-process ablation variants train at once (``ablation_lanes``; 0 = the cores)."""
    return cfg.ablation_lanes or (os.cpu_count() or 1)


def student_variant(base: StudentConfig, name: str) -> StudentConfig:
    return dataclasses.replace(base, **variant_overrides(name))  # type: ignore[arg-type]


def ablation_variants(cfg: PipelineConfig) -> dict[str, StudentConfig]:
    """The ablation's variants (name -> config) on ``cfg.ablation_nproc`` processes each (0: student.nproc). With
    the carry fit on, each takes student_kd's shift (``student.carry_fit_from``) instead of fitting its own."""
    nproc = cfg.ablation_nproc or cfg.student.nproc
    src = "student_kd" if cfg.student.carry_fit else cfg.student.carry_fit_from
    return {name: dataclasses.replace(student_variant(cfg.student, name), nproc=nproc, carry_fit_from=src)
            for name in ABLATION}


@dataclasses.dataclass(frozen=True)
class RetrainConfig:
    """What `recsys retrain` reads. TOML tables = these field names (see pipelines/configs/retrain_*.toml)."""

    logs: str | None = None  # the new batch (file, folder or glob, read with data.source's loader)
    variant: str = "student_kd"  # the student variant that is served
    rerank: bool = True
    # Incremental student (when a version is published): warm start from its checkpoint (weights and optimizer
    # states), then train on the new window (every example whose target that student never trained on: its
    # valid/test days + the new batch) plus a fresh uniform sample of replay_fraction of the older examples
    # each epoch, for at most incremental_epochs epochs (0 = student.epochs, early stopping as usual). The
    # first version trains from scratch on everything.
    replay_fraction: float = ranged(0.5, ge=0, le=1)  # an epoch costs ~1/2 of a full one on a weekly batch.
    # Chained over 4 Beauty weeks, 0.2 drifted to -7 % NDCG@10 [-13 %, -1 %] vs full retrains (pooled test
    # users); 0.5 stayed at +1 % [-6 %, +8 %]
    carry_refused: bool = True  # the gate refuses a model, not the logs: a refused batch's events stay, and
    # the next retrain appends to the newest refused candidate's tables (built on the same published version)
    incremental_epochs: int = ranged(0, ge=0)  # a cap of 2 cost ~10 % test NDCG@10 on Beauty week 2 (0.0767
    # vs 0.0849 with student.epochs=5 and early stopping): the window + replay already makes each epoch cheap
    refit_adapter: bool = False  # False: an incremental retrain applies the published version's teacher adapter
    # (``teacher.adapter_from``) instead of fitting it again, which was ~1 min of a ~1.5 min UCI weekly retrain; the
    # first version (and any retrain with this true, or when the published version has no adapter) fits it
    # Defaults = the dataclasses'; the recommended values (temporal split, distillation lambdas) are in
    # pipelines/configs/retrain_default.toml, which is read when no -c is given.
    data: DataConfig = DataConfig()
    teacher: TeacherConfig = TeacherConfig()
    student: StudentConfig = StudentConfig()
    index: IndexConfig = IndexConfig()
    rank: RankConfig = RankConfig()
    gate: GateConfig = GateConfig()
    publish: PublishConfig = PublishConfig()
