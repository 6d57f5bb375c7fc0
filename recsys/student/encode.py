"""Encode every item and every user with the (possibly sharded) towers, split across ranks.

Sharded tables need every rank in every lookup, so each rank encodes an equal, padded slice of the
rows and the slices are all-gathered: every rank ends with the full (N, d) matrix.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.distributed as dist
from torchrec.sparse.jagged_tensor import KeyedJaggedTensor

from recsys.student import carry
from recsys.student.batches import ITEM_KEYS, USER_KEYS, Histories, ItemFeatures, make_batch, seq_len_of
from recsys.student.config import StudentConfig
from recsys.student.seq_user_tower import SeqUserTower
from recsys.student.towers import SEQ_KEY, TwoTower
from recsys.student.user_tower import UserTower


def _rows_of_rank(n: int) -> tuple[np.ndarray, int]:
    world = dist.get_world_size() if dist.is_initialized() else 1
    rank = dist.get_rank() if dist.is_initialized() else 0
    per = -(-n // world)
    rows = np.arange(rank * per, (rank + 1) * per)
    return np.where(rows < n, rows, 0), per


def _gather_rows(local: torch.Tensor, n: int) -> np.ndarray:
    if dist.is_initialized() and dist.get_world_size() > 1:
        parts = [torch.empty_like(local) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, local.contiguous())
        local = torch.cat(parts)
    return local[:n].numpy().astype(np.float32)


@torch.no_grad()
def encode_items(*, towers: TwoTower, feats: ItemFeatures, cfg: StudentConfig) -> np.ndarray:
    """(N_items, d) item vectors; items with no training event use text/brand/category only (id dropped); with
    ``cfg.carry_count_k > 0`` each item's carried parts are scaled by its training count (``recsys.student.carry``)."""
    rows, per = _rows_of_rank(feats.n_items)
    out = []
    empty = np.zeros(0, np.int64)
    for s in range(0, per, cfg.eval_batch_size):
        it = rows[s:s + cfg.eval_batch_size]
        keep = (feats.train_count[it] > 0).astype(np.float32)
        scale = carry.item_scales(counts=feats.train_count[it], carry=cfg.teacher_carry, k=cfg.carry_count_k,
                                  shift=cfg.carry_shift) if towers.carry_dim and cfg.carry_count_k > 0 else None
        batch = make_batch(feats=feats, users=empty, starts=empty, ends=empty, flat=empty, items=it, keep_id=keep,
                           carry_scale=scale)
        out.append(towers(batch)[1])
    return _gather_rows(torch.cat(out), feats.n_items)


@torch.no_grad()
def encode_users(*, towers: TwoTower, feats: ItemFeatures, hist: Histories, cfg: StudentConfig) -> np.ndarray:
    """(N_users, d) user vectors from each user's full history ``hist``."""
    n = len(hist.ptr) - 1
    rows, per = _rows_of_rank(n)
    out = []
    empty = np.zeros(0, np.int64)
    for s in range(0, per, cfg.eval_batch_size):
        us = rows[s:s + cfg.eval_batch_size]
        batch = make_batch(feats=feats, users=us, starts=hist.ptr[us], ends=hist.ptr[us + 1], flat=hist.items,
                           items=empty, history_len=cfg.history_len, recent_len=cfg.recent_len,
                           user_ids=cfg.user_id_dim > 0, seq_len=seq_len_of(cfg))
        out.append(towers(batch)[0])
    return _gather_rows(torch.cat(out), n)


@torch.no_grad()
def user_tower(*, towers: TwoTower, feats: ItemFeatures, cfg: StudentConfig) -> UserTower | SeqUserTower:
    """The user tower's weights for the numpy forward (``recsys.student.user_tower``).

    The history tables may be sharded (any plan), so their rows are read through the EBC itself: row r of
    each table is the mean of a one-id bag ``[r]`` — a lookup every rank takes part in, then all-gathered.
    """
    sizes = {"hist_item": feats.n_items, "hist_brand": feats.n_brands, "hist_cat": feats.n_cats}
    rows, per = _rows_of_rank(max(sizes.values()))
    keys = ("hist_item", "hist_brand", "hist_cat")
    out: dict[str, list[torch.Tensor]] = {k: [] for k in keys}
    for s in range(0, per, cfg.eval_batch_size):
        r = rows[s:s + cfg.eval_batch_size]
        lengths, values = [], []
        for key in (*USER_KEYS, *ITEM_KEYS):
            if key in sizes:
                lengths.append(np.ones(len(r), np.int64))
                values.append(np.where(r < sizes[key], r, 0).astype(np.int64))
            else:
                lengths.append(np.zeros(len(r), np.int64))
        kjt = KeyedJaggedTensor(keys=list(USER_KEYS + ITEM_KEYS), values=torch.from_numpy(np.concatenate(values)),
                                lengths=torch.from_numpy(np.concatenate(lengths)))
        pooled = towers.ebc(kjt).to_dict()
        for k in keys:
            out[k].append(pooled[k])
    tabs = {k: _gather_rows(torch.cat(v).float().cpu(), sizes[k]) for k, v in out.items()}
    linears = [m for m in towers.user_mlp if isinstance(m, torch.nn.Linear)]
    layers = tuple((m.weight.detach().float().cpu().numpy().copy(), m.bias.detach().float().cpu().numpy().copy())
                   for m in linears)
    if towers.seq is not None:
        return _seq_tower(towers=towers, feats=feats, cfg=cfg, tabs=tabs, layers=layers)
    return UserTower(t_item=tabs["hist_item"], t_brand=tabs["hist_brand"], t_cat=tabs["hist_cat"],
                     item_brand=feats.brand.astype(np.int64), cat_ptr=feats.cat_ptr.astype(np.int64),
                     cat_vals=feats.cat_vals.astype(np.int64), layers=layers, history_len=cfg.history_len,
                     recent_len=cfg.recent_len, user_id_dim=cfg.user_id_dim,
                     carry=feats.carry.astype(np.float32) if towers.carry_dim and feats.carry is not None else None,
                     teacher_carry=cfg.teacher_carry if towers.carry_dim else 0.0, carry_last_n=feats.carry_last_n,
                     carry_decay=feats.carry_decay)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().float().cpu().numpy().copy()


def _seq_tower(*, towers: TwoTower, feats: ItemFeatures, cfg: StudentConfig, tabs: dict[str, np.ndarray],
               layers: tuple[tuple[np.ndarray, np.ndarray], ...]) -> SeqUserTower:
    """The sequential tower's weights: the EC's item table read through the EC itself (one-item sequences, every
    rank takes part, as for the EBC above), the encoder's dense weights (replicated on every rank)."""
    assert towers.ec is not None and towers.seq is not None
    rows, per = _rows_of_rank(feats.n_items)
    parts = []
    for s in range(0, per, cfg.eval_batch_size):
        r = rows[s:s + cfg.eval_batch_size]
        kjt = KeyedJaggedTensor(keys=[SEQ_KEY], values=torch.from_numpy(r.astype(np.int64)),
                                lengths=torch.ones(len(r), dtype=torch.int64))
        parts.append(towers.ec(kjt)[SEQ_KEY].values())
    t_seq = _gather_rows(torch.cat(parts).float().cpu(), feats.n_items)
    enc = towers.seq
    blocks = tuple({k: _np(v) for k, v in blk.state_dict().items()} for blk in enc.blocks)
    return SeqUserTower(t_seq=t_seq, pos=_np(enc.pos.weight), blocks=blocks, ln=(_np(enc.ln.weight), _np(enc.ln.bias)),
                        heads=cfg.seq_heads, t_brand=tabs["hist_brand"], t_cat=tabs["hist_cat"],
                        item_brand=feats.brand.astype(np.int64), cat_ptr=feats.cat_ptr.astype(np.int64),
                        cat_vals=feats.cat_vals.astype(np.int64), layers=layers, history_len=cfg.history_len,
                        user_id_dim=cfg.user_id_dim,
                        carry=feats.carry.astype(np.float32) if towers.carry_dim and feats.carry is not None else None,
                        teacher_carry=cfg.teacher_carry if towers.carry_dim else 0.0, carry_last_n=feats.carry_last_n,
                        carry_decay=feats.carry_decay)
