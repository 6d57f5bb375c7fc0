"""The pipeline config: one frozen dataclass per stage, composed. TOML tables = these field names."""

from __future__ import annotations

import dataclasses

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
    student: StudentConfig = StudentConfig()  # the distilled student (student_kd); lambdas set in configs
    index: IndexConfig = IndexConfig()
    rank: RankConfig = RankConfig()
    eval: EvalConfig = EvalConfig()
    prune: PruneConfig = PruneConfig()  # the pruned student_kd: a report row beside int8, never served
    ablation: bool = True  # also train student_no_kd / _kd_emb / _kd_rank for the report
    # processes of each ablation variant; 0 = student.nproc (2), so the four variants train in ONE 2-process
    # launch (recsys.student.stage.run_variants: one torchrun start and torchrec import instead of four) and
    # every row matches the previous release's. 1 trains the ablation in this process, no launch at all. Two
    # 1-thread ranks are the better use of 2 cores: 1.52x the examples/s of one 2-thread process at 0.94 of its
    # per-CPU-second rate (benchmarks/README.md, student, load 17.9), and on a shared machine (load ~19,
    # 2026-12-01) Beauty's student_no_kd for 2 epochs took 44 CPU s / 306 s in two processes against over 123
    # CPU s / 1239 s in one, killed in its 2nd epoch (its threads wait for each other at every op); the
    # shards' own initialisation also moves the metrics like another seed
    ablation_nproc: int = ranged(0, ge=0)
    rerank: bool = True  # train the LightGBM re-ranker on the index's candidates
    multilevel: bool = False  # also train student_intermediate (the sequential student, distilled from the
    # teacher) and student_kd_ml (student_kd whose ranking KL reads the intermediate's vectors): two more rows.
    # Off by default: two more student trainings (the sequential one ~5x slower per example), and student_kd_ml
    # did not beat student_kd on valid NDCG@10 (Beauty 0.0734 vs 0.0752, Toys 0.0731 vs 0.0768; README)


def student_variant(base: StudentConfig, name: str) -> StudentConfig:
    return dataclasses.replace(base, **variant_overrides(name))  # type: ignore[arg-type]


def ablation_variants(cfg: PipelineConfig) -> dict[str, StudentConfig]:
    """The ablation's variants (name -> config) on ``cfg.ablation_nproc`` processes each (0: student.nproc)."""
    nproc = cfg.ablation_nproc or cfg.student.nproc
    return {name: dataclasses.replace(student_variant(cfg.student, name), nproc=nproc) for name in ABLATION}


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
