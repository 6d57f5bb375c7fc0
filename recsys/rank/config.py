"""Config of the rank stage: LightGBM LambdaRank over the union of every retriever's candidates, gated."""

from __future__ import annotations

import dataclasses
from typing import Literal

from recsys.config import ranged

TeacherSpace = Literal["auto", "adapted", "raw", "none"]
SourceName = Literal["student", "teacher", "als"]


@dataclasses.dataclass(frozen=True)
class RankConfig:
    """Defaults are LightGBM's lambdarank defaults made smaller: a few thousand queries of ~100 candidates
    each overfit 31-leaf trees quickly, so fewer leaves, more data per leaf and early stopping."""

    candidates: str = "index"  # run-dir folder holding the student's candidates_{valid,test}.parquet
    student_variant: str = "student_kd"  # the student whose ANN list and exact scores the ranker reads
    sources: tuple[SourceName, ...] = ("student", "teacher", "als")  # retrievers whose top-K lists are
    # unioned: the student is good on head items, the text teacher on tail and cold ones, ALS on
    # co-purchases; the ranker sees every candidate with every source's score and rank
    depth: int = ranged(50, ge=1)  # top-K per source. The ranker only reorders the top of the list
    # (NDCG@10/20); 50 from each of three sources is ~125 distinct candidates per user on Beauty and Toys
    teacher_space: TeacherSpace = "auto"  # kept for old configs; the union always reads the adapted teacher
    recent_days: float = ranged(30.0, gt=0)  # window of the "recent popularity" feature, before the
    # prediction point
    num_leaves: int = ranged(15, ge=2)
    learning_rate: float = ranged(0.05, gt=0)
    n_estimators: int = ranged(300, ge=1)
    min_data_in_leaf: int = ranged(20, ge=1)
    feature_fraction: float = ranged(0.9, gt=0, le=1)
    lambdarank_truncation_level: int = ranged(20, ge=1)  # NDCG is optimised for the top of the list
    eval_at: int = ranged(10, ge=1)
    early_stopping_rounds: int = ranged(30, ge=1)
    min_rounds: int = ranged(50, ge=1)  # early stopping looks for the best round from this one on: a ~800-query
    # holdout's NDCG@10 can peak by chance in the first rounds and then sit lower for early_stopping_rounds (Beauty,
    # seed 0, after a float-rounding change of the student: 0.2401 at round 6, a 6-round ranker, served test NDCG@10
    # 0.0703; other seeds and the previous students peak at 132-293 rounds, 0.0724 served)
    # LightGBM threads for fitting and scoring (0 = its default, every core; the trees are the same either way:
    # histograms built column-wise, in row order). 0 on an idle 2-core box: the Beauty rank stage 40.3 s vs 54.6 s
    # with 1. Set 1 on a shared box, where the OpenMP team spins waiting for a core: one thread fitted the Toys
    # ranker in 5.7 CPU s instead of 37 (38 s wall instead of 104 at load 8)
    num_threads: int = ranged(0, ge=0)
    single_thread_rows: int = ranged(100_000, ge=0)  # with num_threads = 0, a fit or scoring of fewer candidate
    # rows than this runs on one thread: starting and syncing the OpenMP team costs more than the work (a UCI
    # weekly retrain's ranker, ~5k rows: 1.4-1.6 s on one thread vs 4.4-7.9 s on two, load 3; Beauty's ~650k rows
    # keep every core). Same trees either way
    holdout_fraction: float = ranged(0.15, ge=0, lt=1)  # training queries held out for early stopping
    # (0 = none)
    gate_fraction: float = ranged(0.25, ge=0, lt=1)  # valid users never trained on, where the ranker meets
    # each single retriever (~5k users on Beauty and Toys)
    gate_margin: float = ranged(0.02, ge=0)  # the ranker is served only if it is >= 2 % (relative) above the
    # best single retriever on the gate users (about the paired noise of ~5k users' NDCG@10); otherwise
    # that retriever's list is served
    gate_metric: str = "ndcg@10"
    refit: bool = True  # after the gate, refit on every valid user with the rounds early stopping chose
    # 0 = every valid user's candidates train the ranker. N > 0: a seeded sample of N users' (at 1M users x
    # 100+ candidates the features of every list would be 100M+ rows; LambdaRank saturates far sooner)
    train_users: int = ranged(0, ge=0)
    # 0 = the test candidates' features in one frame. N > 0: built and re-ranked N users at a time (memory
    # bounded by N x candidates rows; each block re-reads the history aggregates, so keep N in the 100k's)
    block_users: int = ranged(0, ge=0)
    seed: int = ranged(0, ge=0)
