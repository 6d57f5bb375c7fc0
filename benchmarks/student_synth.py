"""Synthetic student batches at catalogue sizes the embedded samples cannot reach (millions of rows).

Item and user ids are drawn from a bounded Zipf law (exponent ``s`` over popularity ranks, ranks scattered
over the table by a fixed permutation, so hot rows are not neighbours); history lengths are lognormal with
a given mean (long tail, capped). Batches are built by the product's own ``recsys.student.batches.make_batch``
and wrapped as the product's ``StepBatch``, so the TorchRec side runs ``StudentObjective`` unchanged.
The plain PyTorch side reads the same batches as per-table (values, offsets) tensors (``plain_inputs``).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np


@dataclasses.dataclass(frozen=True)
class SynthSizes:
    n_items: int
    n_users: int
    n_brands: int = 10_000
    n_cats: int = 1_000  # leaf categories; each item also carries its top-level parent (leaf // 50)
    zipf_s: float = 0.95  # the data benchmark's item skew
    hist_mean: float = 20.0  # mean history length before the cap
    hist_sigma: float = 1.0  # lognormal shape: median ~12, p99 ~ 6x the median
    hist_cap: int = 200  # = StudentConfig.history_len in the synthetic runs


class Zipf:
    """Bounded Zipf over ranks 0..n-1 (P(r) ~ (r + 1)^-s), inverse-CDF of the continuous law; ids = perm[rank]."""

    def __init__(self, *, n: int, s: float, seed: int) -> None:
        self.n, self.s = n, s
        self.perm = np.random.default_rng(seed).permutation(n)
        self._z = (n + 1) ** (1 - s) - 1

    def ranks(self, rng: np.random.Generator, size: int) -> np.ndarray:
        x = (1 + rng.random(size) * self._z) ** (1 / (1 - self.s))
        return np.minimum(x.astype(np.int64) - 1, self.n - 1)

    def log_p(self, ranks: np.ndarray) -> np.ndarray:
        """log P(rank) of the continuous law's unit bins (what ``ranks`` draws)."""
        e = 1 - self.s
        return np.log(((ranks + 2.0) ** e - (ranks + 1.0) ** e) / self._z).astype(np.float32)


def features(sizes: SynthSizes, *, seed: int = 0):
    """The product's ``ItemFeatures`` for a synthetic catalogue: a brand per item (10% unknown) and a
    two-level category path (top-level parent, leaf)."""
    from recsys.student.batches import ItemFeatures

    rng = np.random.default_rng(seed)
    n = sizes.n_items
    brand = rng.integers(0, sizes.n_brands, n)
    brand[rng.random(n) < 0.1] = -1
    leaf = rng.integers(0, sizes.n_cats, n)
    n_top = -(-sizes.n_cats // 50)
    vals = np.empty(2 * n, np.int64)
    vals[0::2], vals[1::2] = leaf // 50, n_top + leaf
    return ItemFeatures(n_items=n, brand=brand, n_brands=sizes.n_brands, cat_ptr=np.arange(0, 2 * n + 1, 2),
                        cat_vals=vals, n_cats=n_top + sizes.n_cats, text=None,
                        train_count=np.zeros(0, np.int64))  # train_count: read only by the product's sampler


def steps(*, feats, sizes: SynthSizes, cfg, n: int, rank: int = 0, world: int = 1, seed: int = 0) -> list:
    """``n`` steps of a global batch ``cfg.batch_size``; rank ``rank`` keeps its slice (every rank draws the
    same numbers, as ``recsys.student.dataset.step_batch`` does). -> list of the product's ``StepBatch``."""
    from recsys.student.batches import make_batch
    from recsys.student.dataset import StepBatch

    items, users = Zipf(n=sizes.n_items, s=sizes.zipf_s, seed=seed + 1), Zipf(n=sizes.n_users, s=sizes.zipf_s,
                                                                             seed=seed + 2)
    rng = np.random.default_rng(seed + 3)
    b = cfg.batch_size
    mine = slice(rank * b // world, (rank + 1) * b // world)
    mu = math.log(sizes.hist_mean) - sizes.hist_sigma ** 2 / 2
    out = []
    for _ in range(n):
        lens = np.clip(rng.lognormal(mu, sizes.hist_sigma, b).astype(np.int64), 1, sizes.hist_cap)
        flat = items.perm[items.ranks(rng, int(lens.sum()))]
        pos_rank = items.ranks(rng, b)
        u = users.perm[users.ranks(rng, b)]
        ends = np.cumsum(lens)
        starts = ends - lens
        batch = make_batch(feats=feats, users=u[mine], starts=starts[mine], ends=ends[mine], flat=flat,
                           items=items.perm[pos_rank[mine]], history_len=cfg.history_len,
                           recent_len=cfg.recent_len, user_ids=cfg.user_id_dim > 0)
        out.append(StepBatch(batch=batch, n_pos=len(u[mine]), n_uniform=0, n_kd=0,
                             log_q=items.log_p(pos_rank[mine]) + math.log(b), uniform_log_q=0.0,
                             teacher_pos=None, topk_scores=np.zeros((0, 1), np.float32),
                             topk_mask=np.zeros((0, 1), bool)))
    return out


def plain_inputs(step, *, tables: dict[str, tuple[str, ...]]) -> dict:
    """One step's KJT as what a plain ``nn.EmbeddingBag`` model reads: per table, the bags of all its features
    concatenated (user features over the user rows, item features over the item rows) -> {table: (values,
    offsets, [(feature, n_bags)])}: one lookup per table, as TorchRec groups them."""
    import torch

    from recsys.student.batches import USER_KEYS

    kjt, n = step.batch.kjt, step.batch.n_user_rows
    jts = kjt.to_dict()
    out = {}
    for table, feats in tables.items():
        vals, lens, parts = [], [], []
        for f in feats:
            jt = jts[f]
            ln, off = jt.lengths(), jt.offsets()
            lo, hi = (0, n) if f in USER_KEYS else (n, len(ln))
            vals.append(jt.values()[off[lo]:off[hi]])
            lens.append(ln[lo:hi])
            parts.append((f, hi - lo))
        lengths = torch.cat(lens)
        offsets = torch.cat([torch.zeros(1, dtype=torch.int64), torch.cumsum(lengths, 0)[:-1]])
        out[table] = (torch.cat(vals), offsets, parts)
    return out
