"""Everything training reads, loaded once from the run directory into numpy; per-step batch sampling.

Inputs are files only: the data stage's tables and the teacher's item embeddings (``Layout.teacher_items``; and,
for top-K ranking distillation, its valid top-K lists, ``Layout.teacher_topk("valid")``). A step's batch holds user rows [next-item examples |
top-K distillation users] and item rows [positives | uniform negatives | teacher top-K candidates].

In-batch ranking distillation needs no extra rows: the teacher's user vector of an example's history
prefix is the recency-weighted mean of the teacher's item vectors (the teacher stage's own pooling,
which reproduces its ``user_emb`` to cosine > 0.997 on Beauty), computed once per run for every
example with ``embedding_bag`` over the frozen teacher table.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from pathlib import Path

import numpy as np
import polars as pl
import torch

from recsys.contracts import problem
from recsys.contracts import teacher as T
from recsys.contracts.layout import Layout
from recsys.data.tables import Tables, load_tables
from recsys.student.batches import Batch, Histories, ItemFeatures, histories, item_features, make_batch, \
    next_item_examples, replay_size, seq_len_of, teacher_prefix_vectors, window_examples
from recsys.student.config import StudentConfig, teacher_is_carried

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class StudentData:
    tables: Tables
    feats: ItemFeatures
    train: Histories  # history for valid targets
    train_valid: Histories  # history for test targets
    ex_users: np.ndarray  # (E,) next-item examples: user
    ex_pos: np.ndarray  # (E,) index of the target in ``train.items`` (history = items before it)
    ex_window: np.ndarray  # example indices trained on every epoch (all, unless ``cfg.train_since`` is set)
    ex_older: np.ndarray  # examples before ``cfg.train_since``: a ``cfg.replay_fraction`` sample per epoch
    log_q: np.ndarray  # (N,) f32 log share of item i among training targets
    teacher: np.ndarray | None  # (N, D) teacher item embedding used for distillation (None without KD)
    topk_items: np.ndarray  # (U, K) i64 teacher top-K at the valid point (-1 padded)
    topk_scores: np.ndarray  # (U, K) f32
    kd_users: np.ndarray  # users with a teacher list
    teacher_ex: np.ndarray | None = None  # (E, D) f16 teacher vector of each example's history prefix
    teacher_scale: float = 0.0  # teacher cosine -> logit: 1 / the teacher adapter's temperature (its metadata)
    rank_items: np.ndarray | None = None  # (N, D') item vectors the in-batch ranking KL reads when they are not
    # ``teacher`` (rank_teacher = "intermediate": the intermediate student's; then teacher_ex and teacher_scale
    # are the intermediate's too)

    @property
    def n_users(self) -> int:
        return self.tables.n_users


def teacher_paths(layout: Layout) -> dict[str, Path]:
    return {"item_emb": layout.teacher_items, "topk_valid": layout.teacher_topk("valid")}


def load_data(*, cfg: StudentConfig, layout: Layout, need_teacher: bool) -> StudentData:
    """Load tables and teacher files. Teacher files are required when text input or any KD is on."""
    tables = load_tables(layout)
    tp = teacher_paths(layout)
    text = emb = tmeta = carry = None
    if need_teacher:
        embs = T.read_items(layout=layout, n_items=tables.n_items)
        tmeta = T.read_meta(layout=layout)  # the pooling and temperature the distillation must match
        for field in ("text_emb", "teacher_emb"):
            if getattr(cfg, field) not in embs:
                raise problem(tp["item_emb"], f"no '{getattr(cfg, field)}' tensor (has {sorted(embs)})",
                              f"set student.{field} to one it has")
        text = embs[cfg.text_emb].astype(np.float32) if cfg.use_text else None
        if cfg.lambda_emb > 0 or cfg.lambda_rank > 0:
            emb = np.ascontiguousarray(embs[cfg.teacher_emb], dtype=np.float32)
        if cfg.teacher_carry > 0:
            carry = embs[cfg.teacher_emb].astype(np.float32)
    feats = item_features(tables.items, tables.train, text=text, carry=carry,
                          carry_last_n=tmeta.history_n if tmeta else 20, carry_decay=tmeta.recency_decay if tmeta else 0.5)
    train = histories(tables.train, n_users=tables.n_users)
    ex_users, ex_pos = next_item_examples(train)
    times = tables.train.sort("user", "pos")["timestamp"].to_numpy()  # aligned with ``train.items``
    ex_window, ex_older = window_examples(times[ex_pos], since=cfg.train_since)
    if len(ex_window) == 0 and len(ex_older):
        log.warning("student: no training example at/after train_since=%s (latest target at %s); training on "
                    "all %d examples", cfg.train_since, int(times[ex_pos].max()), len(ex_older))
        ex_window, ex_older = ex_older, ex_window
    # logQ of what the batches hold: window targets every epoch, older ones replay_fraction of the time
    share = replay_size(len(ex_older), fraction=cfg.replay_fraction) / max(len(ex_older), 1)
    counts = (np.bincount(train.items[ex_pos[ex_window]], minlength=tables.n_items).astype(np.float64)
              + share * np.bincount(train.items[ex_pos[ex_older]], minlength=tables.n_items) + 1.0)
    log_q = np.log(counts / counts.sum()).astype(np.float32)
    k = cfg.rank_k
    top_i = np.full((tables.n_users, k), -1, np.int64)
    top_s = np.zeros((tables.n_users, k), np.float32)
    if need_teacher and cfg.lambda_rank > 0 and cfg.rank_candidates == "topk":
        top = T.read_topk(layout=layout, split="valid", n_users=tables.n_users, n_items=tables.n_items)
        top = top.filter(pl.col("rank") < k)
        top_i[top["user"].to_numpy(), top["rank"].to_numpy()] = top["item"].to_numpy()
        top_s[top["user"].to_numpy(), top["rank"].to_numpy()] = top["score"].to_numpy()
    kd_users = np.flatnonzero((top_i >= 0).any(1))
    teacher_ex = None
    if emb is not None and tmeta is not None and cfg.lambda_rank > 0 and cfg.rank_candidates == "in_batch" \
            and not teacher_is_carried(cfg):  # carried: the objective reads the teacher off the towers' carry
        # once per run (~1 s on Beauty) instead of one embedding_bag per step; f16 halves the memory
        teacher_ex = np.concatenate([
            teacher_prefix_vectors(teacher=emb, starts=train.ptr[ex_users[s:s + 65536]], ends=ex_pos[s:s + 65536],
                                   flat=train.items, last_n=tmeta.history_n,
                                   decay=tmeta.recency_decay).numpy().astype(np.float16)
            for s in range(0, len(ex_users), 65536)]) if len(ex_users) else np.zeros((0, emb.shape[1]), np.float16)
    scale = 0.0 if tmeta is None else 1.0 / tmeta.adapter_temperature
    rank_items = None
    if cfg.rank_teacher == "intermediate" and cfg.lambda_rank > 0:
        if cfg.rank_candidates != "in_batch":
            raise ValueError("student.rank_teacher = 'intermediate' distils the in-batch lists only; set "
                             "student.rank_candidates = 'in_batch'")
        rank_items, teacher_ex, scale = intermediate_targets(layout=layout, variant=cfg.intermediate, train=train,
                                                             ex_users=ex_users, ex_pos=ex_pos, n_items=tables.n_items)
    return StudentData(tables=tables, feats=feats, train=train,
                       train_valid=histories(pl.concat([tables.train.select("user", "item", "pos"),
                                                        tables.valid.select("user", "item", "pos")]),
                                             n_users=tables.n_users),
                       ex_users=ex_users, ex_pos=ex_pos, ex_window=ex_window, ex_older=ex_older, log_q=log_q,
                       teacher=emb, topk_items=top_i, topk_scores=top_s, kd_users=kd_users,
                       teacher_ex=teacher_ex, teacher_scale=scale, rank_items=rank_items)


def intermediate_targets(*, layout: Layout, variant: str, train: Histories, ex_users: np.ndarray,
                         ex_pos: np.ndarray, n_items: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Multi-level distillation: the intermediate student ``variant``'s exported artifacts, read through
    ``recsys.contracts`` -> (its item vectors (N, D) f32, its user vector of every example's history prefix
    (E, D) f16 from its exported numpy user tower, its cosine -> logit scale 1 / its softmax temperature)."""
    from recsys.contracts import student as S
    from recsys.student import user_tower

    meta = S.read_meta(layout=layout, variant=variant)
    items = S.read_item_vectors(layout=layout, variant=variant, n_items=n_items, dim=meta["dim"])
    tower = user_tower.read(layout=layout, variant=variant)
    if tower.dim != meta["dim"] or tower.n_items != n_items:
        raise problem(layout.user_tower(variant), f"user tower of width {tower.dim} over {tower.n_items} items, the "
                      f"intermediate's item vectors are {meta['dim']} wide over {n_items}",
                      f"re-run the student stage for '{variant}' with --force")
    temperature = float(meta.get("config", {}).get("temperature", 0.0))
    if temperature <= 0:
        raise problem(layout.student_meta(variant), "no positive config.temperature",
                      f"re-run the student stage for '{variant}' with --force")
    vecs = np.zeros((len(ex_users), items.shape[1]), np.float16)
    for s in range(0, len(ex_users), 65536):  # chunks keep the histories' lists small
        us, ps = ex_users[s:s + 65536], ex_pos[s:s + 65536]
        vecs[s:s + len(us)] = tower.encode([train.items[train.ptr[u]:p] for u, p in zip(us, ps)])
    log.info("student: ranking distillation reads the intermediate '%s' (%d prefix vectors, dim %d, scale %.2f)",
             variant, len(vecs), items.shape[1], 1.0 / temperature)
    return np.ascontiguousarray(items, dtype=np.float32), vecs, 1.0 / temperature


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
    teacher_users: torch.Tensor | None = None  # (n_pos, D) in-batch KD: teacher vector of each history prefix
    teacher_items: torch.Tensor | None = None  # (B_global, D) in-batch KD: teacher vectors of all positives
    teacher_uniform: torch.Tensor | None = None  # (n_uniform, D) in-batch KD: teacher vectors of the uniform negatives
    n_full: int = 0  # item rows after the uniform ones: this rank's slice of the whole catalogue ("full")


def full_slice(n_items: int, *, rank: int, world: int) -> np.ndarray:
    """This rank's equal share of the catalogue for the full softmax: rows ``rank*per .. (rank+1)*per`` of
    ``0..n_items-1`` padded with item 0 (``per = ceil(n / world)``); ``full_catalogue`` undoes the padding."""
    per = -(-n_items // world)
    rows = np.arange(rank * per, (rank + 1) * per)
    return np.where(rows < n_items, rows, 0).astype(np.int64)


def step_batch(*, data: StudentData, cfg: StudentConfig, idx: np.ndarray, rng: np.random.Generator,
               rank: int, world: int) -> StepBatch:
    """Rank ``rank``'s slice of the global step ``idx`` (example indices). Every rank draws the same
    random numbers (same ``rng`` state) and keeps its own slice, so the step is the same for any world."""
    b = len(idx)
    keep = (rng.random(b) >= cfg.id_dropout).astype(np.float32)
    n_uni = cfg.n_uniform_negatives if cfg.negatives == "mixed" else 0
    uni = rng.integers(0, data.feats.n_items, n_uni)
    topk_kd = cfg.lambda_rank > 0 and cfg.rank_candidates == "topk"
    n_kd = cfg.rank_users_per_step if topk_kd and len(data.kd_users) else 0
    kd = data.kd_users[rng.integers(0, len(data.kd_users), n_kd)] if n_kd else np.zeros(0, np.int64)
    mine = slice(rank * b // world, (rank + 1) * b // world)
    uni = uni[rank * n_uni // world:(rank + 1) * n_uni // world]
    kd = kd[rank * n_kd // world:(rank + 1) * n_kd // world]
    t_items = None
    t_users = None
    rank_items = data.teacher if data.rank_items is None else data.rank_items
    if data.teacher_ex is not None and rank_items is not None:
        t_items = torch.from_numpy(rank_items[data.train.items[data.ex_pos[idx]]])  # global batch, global order
        t_users = torch.from_numpy(data.teacher_ex[idx[mine]].astype(np.float32))
    idx, keep = idx[mine], keep[mine]
    users, pos = data.ex_users[idx], data.ex_pos[idx]
    pos_items = data.train.items[pos]
    cand = data.topk_items[kd]  # (R, K)
    mask = cand >= 0
    all_users = np.concatenate([users, kd])
    starts = np.concatenate([data.train.ptr[users], data.train.ptr[kd]])
    ends = np.concatenate([pos, data.train.ptr[kd + 1]])
    full = full_slice(data.feats.n_items, rank=rank, world=world) if cfg.negatives == "full" else np.zeros(0, np.int64)
    items = np.concatenate([pos_items, uni, full, np.where(mask, cand, 0).ravel()])
    keep_all = np.concatenate([keep, np.ones(len(uni) + len(full) + cand.size, np.float32)])
    keep_all[len(pos_items):] = (data.feats.train_count[items[len(pos_items):]] > 0)
    batch = make_batch(feats=data.feats, users=all_users, starts=starts, ends=ends, flat=data.train.items,
                       items=items, keep_id=keep_all, history_len=cfg.history_len, recent_len=cfg.recent_len,
                       user_ids=cfg.user_id_dim > 0, seq_len=seq_len_of(cfg))
    return StepBatch(batch=batch, n_pos=len(idx), n_uniform=len(uni), n_kd=len(kd), n_full=len(full),
                     log_q=data.log_q[pos_items] + math.log(b),
                     uniform_log_q=math.log(max(n_uni, 1) / data.feats.n_items),
                     teacher_pos=None if data.teacher is None or cfg.lambda_emb <= 0 else data.teacher[pos_items],
                     topk_scores=data.topk_scores[kd], topk_mask=mask,
                     teacher_users=t_users, teacher_items=t_items,
                     teacher_uniform=None if t_items is None or not len(uni)
                     else torch.from_numpy(rank_items[uni]))
