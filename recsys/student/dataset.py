"""Everything training reads, loaded once from the run directory into numpy; per-step batch sampling.

Inputs are files only: the data stage's tables and the teacher's ``item_emb.safetensors`` and
``topk_valid.parquet``. A step's batch holds user rows [next-item examples | ranking-distillation
users] and item rows [positives | uniform negatives | teacher top-K candidates].
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import polars as pl

from recsys.artifacts import ArtifactError, Layout, read_safetensors
from recsys.data.tables import Tables, load_tables
from recsys.student.batches import Batch, Histories, ItemFeatures, histories, item_features, make_batch, \
    next_item_examples
from recsys.student.config import StudentConfig


@dataclasses.dataclass(frozen=True)
class StudentData:
    tables: Tables
    feats: ItemFeatures
    train: Histories  # history for valid targets
    train_valid: Histories  # history for test targets
    ex_users: np.ndarray  # (E,) next-item examples: user
    ex_pos: np.ndarray  # (E,) index of the target in ``train.items`` (history = items before it)
    log_q: np.ndarray  # (N,) f32 log share of item i among training targets
    teacher: np.ndarray | None  # (N, D) teacher item embedding used for distillation
    topk_items: np.ndarray  # (U, K) i64 teacher top-K at the valid point (-1 padded)
    topk_scores: np.ndarray  # (U, K) f32
    kd_users: np.ndarray  # users with a teacher list

    @property
    def n_users(self) -> int:
        return self.tables.n_users


def teacher_paths(layout: Layout) -> dict[str, Path]:
    d = layout.stage_dir("teacher")
    return {"item_emb": d / "item_emb.safetensors", "topk_valid": d / "topk_valid.parquet"}


def load_data(*, cfg: StudentConfig, layout: Layout, need_teacher: bool) -> StudentData:
    """Load tables and teacher files. Teacher files are required when text input or any KD is on."""
    tables = load_tables(layout)
    tp = teacher_paths(layout)
    emb = None
    if need_teacher:
        embs = read_safetensors(tp["item_emb"])
        if cfg.teacher_emb not in embs:
            raise ArtifactError(f"{tp['item_emb']}: no '{cfg.teacher_emb}' tensor (has {sorted(embs)}); "
                                "set student.teacher_emb to one it has")
        emb = embs[cfg.teacher_emb].astype(np.float32)
    feats = item_features(tables.items, tables.train, text=emb if cfg.use_text else None)
    train = histories(tables.train, n_users=tables.n_users)
    ex_users, ex_pos = next_item_examples(train)
    counts = np.bincount(train.items[ex_pos], minlength=tables.n_items).astype(np.float64) + 1.0
    log_q = np.log(counts / counts.sum()).astype(np.float32)
    k = cfg.rank_k
    top_i = np.full((tables.n_users, k), -1, np.int64)
    top_s = np.zeros((tables.n_users, k), np.float32)
    if need_teacher and cfg.lambda_rank > 0:
        if not tp["topk_valid"].exists():
            raise ArtifactError(f"{tp['topk_valid']}: missing; run the teacher stage (ranking distillation needs it)")
        top = pl.read_parquet(tp["topk_valid"]).filter(pl.col("rank") < k)
        top_i[top["user"].to_numpy(), top["rank"].to_numpy()] = top["item"].to_numpy()
        top_s[top["user"].to_numpy(), top["rank"].to_numpy()] = top["score"].to_numpy()
    kd_users = np.flatnonzero((top_i >= 0).any(1))
    return StudentData(tables=tables, feats=feats, train=train,
                       train_valid=histories(pl.concat([tables.train.select("user", "item", "pos"),
                                                        tables.valid.select("user", "item", "pos")]),
                                             n_users=tables.n_users),
                       ex_users=ex_users, ex_pos=ex_pos, log_q=log_q, teacher=emb, topk_items=top_i,
                       topk_scores=top_s, kd_users=kd_users)


@dataclasses.dataclass(frozen=True)
class StepBatch:
    """One rank's share of a training step (numpy side already turned into tensors)."""

    batch: Batch
    n_pos: int  # rows 0..n_pos of users and items are (history -> next item) pairs
    n_uniform: int  # item rows after the positives: uniform negatives
    n_kd: int  # user rows after the examples, each with K item rows at the end
    log_q: np.ndarray  # (n_pos,) log expected count of each positive in a global batch
    uniform_log_q: float
    teacher_pos: np.ndarray | None  # (n_pos, D) teacher vectors of the positives
    topk_scores: np.ndarray  # (n_kd, K)
    topk_mask: np.ndarray  # (n_kd, K) bool


def step_batch(*, data: StudentData, cfg: StudentConfig, idx: np.ndarray, rng: np.random.Generator,
               rank: int, world: int) -> StepBatch:
    """Rank ``rank``'s slice of the global step ``idx`` (example indices). Every rank draws the same
    random numbers (same ``rng`` state) and keeps its own slice, so the step is the same for any world."""
    b = len(idx)
    keep = (rng.random(b) >= cfg.id_dropout).astype(np.float32)
    n_uni = cfg.n_uniform_negatives if cfg.negatives == "mixed" else 0
    uni = rng.integers(0, data.feats.n_items, n_uni)
    n_kd = cfg.rank_users_per_step if cfg.lambda_rank > 0 and len(data.kd_users) else 0
    kd = data.kd_users[rng.integers(0, len(data.kd_users), n_kd)] if n_kd else np.zeros(0, np.int64)
    mine = slice(rank * b // world, (rank + 1) * b // world)
    uni = uni[rank * n_uni // world:(rank + 1) * n_uni // world]
    kd = kd[rank * n_kd // world:(rank + 1) * n_kd // world]
    idx, keep = idx[mine], keep[mine]
    users, pos = data.ex_users[idx], data.ex_pos[idx]
    pos_items = data.train.items[pos]
    cand = data.topk_items[kd]  # (R, K)
    mask = cand >= 0
    all_users = np.concatenate([users, kd])
    starts = np.concatenate([data.train.ptr[users], data.train.ptr[kd]])
    ends = np.concatenate([pos, data.train.ptr[kd + 1]])
    items = np.concatenate([pos_items, uni, np.where(mask, cand, 0).ravel()])
    keep_all = np.concatenate([keep, np.ones(len(uni) + cand.size, np.float32)])
    keep_all[len(pos_items):] = (data.feats.train_count[items[len(pos_items):]] > 0)
    batch = make_batch(feats=data.feats, users=all_users, starts=starts, ends=ends, flat=data.train.items,
                       items=items, keep_id=keep_all, history_len=cfg.history_len, recent_len=cfg.recent_len,
                       user_ids=cfg.user_id_dim > 0)
    return StepBatch(batch=batch, n_pos=len(idx), n_uniform=len(uni), n_kd=len(kd),
                     log_q=data.log_q[pos_items] + math.log(b),
                     uniform_log_q=math.log(max(n_uni, 1) / data.feats.n_items),
                     teacher_pos=None if data.teacher is None else data.teacher[pos_items],
                     topk_scores=data.topk_scores[kd], topk_mask=mask)
