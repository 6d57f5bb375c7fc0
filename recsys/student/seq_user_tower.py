"""The sequential user tower (``student.user_tower = "sequential"``) in numpy, for anonymous sessions.

Repeats ``TwoTower.user_tower`` with ``recsys.student.sequence.SequenceEncoder`` in eval mode (no dropout)::

    seq = SequenceEncoder(t_seq[last seq_len items])        (the last real position's output; 0 if empty)
    seq ‖ mean(t_brand[their brands]) ‖ mean(t_cat[their category prefixes]) [‖ 0 for the user-id table]
        -> Linear-ReLU-...-Linear -> L2 norm [-> teacher carry, as in ``recsys.student.user_tower``]

The brand and category bags read the last ``history_len`` items, as the pooled tower's do. Written and read
through ``recsys.contracts.student`` as the same ``user_tower.safetensors`` entry, format ``FORMAT``;
``recsys.student.user_tower.read`` returns this class for it. Tested equal to the torch forward
(tests/student/test_sequence.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from recsys.contracts.errors import problem
from recsys.student.tower_ops import bag_mean, mlp_normalized, with_carry

FORMAT = "recsys-user-tower-seq/1"
BLOCK = ("ln1.weight", "ln1.bias", "qkv.weight", "qkv.bias", "proj.weight", "proj.bias", "ln2.weight", "ln2.bias",
         "ff1.weight", "ff1.bias", "ff2.weight", "ff2.bias")
EPS = 1e-5  # torch.nn.LayerNorm's default


@dataclasses.dataclass(frozen=True)
class SeqUserTower:
    """Weights of a sequential user tower. ``blocks``: one {name in BLOCK: array} per transformer block."""

    t_seq: np.ndarray  # (N, D) the EmbeddingCollection's item table
    pos: np.ndarray  # (seq_len, D) age embeddings, row 0 = the most recent item
    blocks: tuple[dict[str, np.ndarray], ...]
    ln: tuple[np.ndarray, np.ndarray]  # final LayerNorm (weight, bias)
    heads: int
    t_brand: np.ndarray
    t_cat: np.ndarray
    item_brand: np.ndarray  # (N,) i64, -1 = no brand
    cat_ptr: np.ndarray  # (N+1,) i64
    cat_vals: np.ndarray  # (nnz,) i64
    layers: tuple[tuple[np.ndarray, np.ndarray], ...]  # the user MLP [(W (out, in), b (out,))]
    history_len: int
    user_id_dim: int
    carry: np.ndarray | None = None  # (N, Dt) f32 L2-normed teacher item vectors (teacher carry), or None
    teacher_carry: float = 0.0
    carry_last_n: int = 20
    carry_decay: float = 0.5

    @property
    def n_items(self) -> int:
        return int(self.t_seq.shape[0])

    @property
    def seq_len(self) -> int:
        return int(self.pos.shape[0])

    @property
    def dim(self) -> int:
        return int(self.layers[-1][0].shape[0]) + (0 if self.carry is None else int(self.carry.shape[1]))

    def encode(self, histories: Sequence[Sequence[int] | np.ndarray], *, chunk: int = 1024) -> np.ndarray:
        """Item rows per user, oldest first -> (B, d) float32 L2-normalised user vectors. Histories are encoded
        in chunks of similar length (sorted), so a million short prefixes cost little padding."""
        hs = [np.asarray(h, dtype=np.int64) for h in histories]
        for h in hs:
            if h.size and (h.min() < 0 or h.max() >= self.n_items):
                raise ValueError(f"history item rows must be in [0, {self.n_items}); got {h.min()}..{h.max()}")
        d_seq = self.t_seq.shape[1]
        seq = np.zeros((len(hs), d_seq), np.float32)
        order = np.argsort([min(len(h), self.seq_len) for h in hs], kind="stable")
        for s in range(0, len(hs), chunk):
            rows = order[s:s + chunk]
            seq[rows] = self._sequence([hs[r][max(0, len(hs[r]) - self.seq_len):] for r in rows])
        ctx = np.stack([self._context(h) for h in hs]) if hs else np.zeros((0, self._ctx_width()), np.float32)
        x = np.concatenate([seq, ctx], axis=1)
        return with_carry(mlp_normalized(x, self.layers), hs, carry=self.carry, a=self.teacher_carry,
                          last_n=self.carry_last_n, decay=self.carry_decay)

    def _ctx_width(self) -> int:
        return self.t_brand.shape[1] + self.t_cat.shape[1] + self.user_id_dim

    def _context(self, hist: np.ndarray) -> np.ndarray:
        h = hist[max(0, len(hist) - self.history_len):]
        brands = self.item_brand[h]
        brands = brands[brands >= 0]
        cats = np.concatenate([self.cat_vals[self.cat_ptr[i]:self.cat_ptr[i + 1]] for i in h]) if len(h) \
            else np.zeros(0, np.int64)
        parts = [bag_mean(self.t_brand, brands), bag_mean(self.t_cat, cats)]
        if self.user_id_dim > 0:
            parts.append(np.zeros(self.user_id_dim, np.float32))
        return np.concatenate(parts).astype(np.float32)

    def _sequence(self, seqs: list[np.ndarray]) -> np.ndarray:
        """Histories (each <= seq_len items) -> (B, D) last-position outputs, zeros for an empty one."""
        lens = np.array([len(h) for h in seqs], np.int64)
        n = max(1, int(lens.max(initial=0)))
        x = np.zeros((len(seqs), n, self.t_seq.shape[1]), np.float32)
        for r, h in enumerate(seqs):
            x[r, :len(h)] = self.t_seq[h]
        age = np.clip(lens[:, None] - 1 - np.arange(n)[None, :], 0, None)
        h = x + self.pos[age]
        for blk in self.blocks:
            h = h + self._attend(_layer_norm(h, blk["ln1.weight"], blk["ln1.bias"]), blk)
            f = np.maximum(_linear(_layer_norm(h, blk["ln2.weight"], blk["ln2.bias"]), blk["ff1.weight"], blk["ff1.bias"]), 0)
            h = h + _linear(f, blk["ff2.weight"], blk["ff2.bias"])
        h = _layer_norm(h, *self.ln)
        last = h[np.arange(len(seqs)), np.clip(lens - 1, 0, None)]
        return (last * (lens > 0)[:, None]).astype(np.float32)

    def _attend(self, x: np.ndarray, blk: dict[str, np.ndarray]) -> np.ndarray:
        b, n, d = x.shape
        dh = d // self.heads
        qkv = _linear(x, blk["qkv.weight"], blk["qkv.bias"]).reshape(b, n, 3, self.heads, dh).transpose(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # (B, H, L, dh)
        scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(dh)
        scores = np.where(np.triu(np.ones((n, n), bool), k=1), -np.inf, scores)
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        att = scores / scores.sum(-1, keepdims=True)
        out = (att @ v).transpose(0, 2, 1, 3).reshape(b, n, d)
        return _linear(out, blk["proj.weight"], blk["proj.bias"])


def _linear(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(..., in) @ W.T + b as one 2-D matmul (a stacked one is a loop of small ones in numpy)."""
    return (x.reshape(-1, x.shape[-1]) @ w.T + b).reshape(*x.shape[:-1], w.shape[0])


def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    m = x.mean(-1, keepdims=True)
    v = ((x - m) ** 2).mean(-1, keepdims=True)
    return (x - m) / np.sqrt(v + EPS) * w + b


def to_tensors(tower: SeqUserTower) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    tensors = {"t_seq": tower.t_seq, "pos": tower.pos, "ln.weight": tower.ln[0], "ln.bias": tower.ln[1],
               "t_brand": tower.t_brand, "t_cat": tower.t_cat, "item_brand": tower.item_brand,
               "cat_ptr": tower.cat_ptr, "cat_vals": tower.cat_vals}
    for i, blk in enumerate(tower.blocks):
        for k in BLOCK:
            tensors[f"block.{i}.{k}"] = blk[k]
    for j, (w, b) in enumerate(tower.layers):
        tensors[f"mlp.{j}.weight"], tensors[f"mlp.{j}.bias"] = w, b
    meta = {"format": FORMAT, "history_len": str(tower.history_len), "user_id_dim": str(tower.user_id_dim),
            "layers": str(len(tower.layers)), "blocks": str(len(tower.blocks)), "heads": str(tower.heads),
            "teacher_carry": repr(tower.teacher_carry), "carry_last_n": str(tower.carry_last_n),
            "carry_decay": repr(tower.carry_decay)}
    if tower.carry is not None:
        tensors["carry"] = tower.carry
    return tensors, meta


def from_tensors(t: dict[str, np.ndarray], meta: dict[str, str], *, path: Path) -> SeqUserTower:
    """Rebuild and check a sequential tower (widths chain, ids in range)."""
    fix = "re-run the student stage with --force to re-export it"
    if meta.get("format") != FORMAT:
        raise problem(path, f"not a {FORMAT} file (format {meta.get('format')!r})", fix)
    f32 = np.float32
    try:
        layers = tuple((t[f"mlp.{j}.weight"].astype(f32), t[f"mlp.{j}.bias"].astype(f32))
                       for j in range(int(meta["layers"])))
        blocks = tuple({k: t[f"block.{i}.{k}"].astype(f32) for k in BLOCK} for i in range(int(meta["blocks"])))
        tower = SeqUserTower(t_seq=t["t_seq"].astype(f32), pos=t["pos"].astype(f32), blocks=blocks,
                             ln=(t["ln.weight"].astype(f32), t["ln.bias"].astype(f32)), heads=int(meta["heads"]),
                             t_brand=t["t_brand"], t_cat=t["t_cat"], item_brand=t["item_brand"],
                             cat_ptr=t["cat_ptr"], cat_vals=t["cat_vals"], layers=layers,
                             history_len=int(meta["history_len"]), user_id_dim=int(meta["user_id_dim"]),
                             carry=t.get("carry"), teacher_carry=float(meta.get("teacher_carry", "0")),
                             carry_last_n=int(meta.get("carry_last_n", "20")),
                             carry_decay=float(meta.get("carry_decay", "0.5")))
    except (KeyError, ValueError) as e:
        raise problem(path, f"missing or unreadable entry {e}", fix) from None
    d = tower.t_seq.shape[1]
    dims = [d + tower._ctx_width()] + [w.shape[0] for w, _ in layers]
    bad = [j for j, (w, b) in enumerate(layers) if w.shape != (dims[j + 1], dims[j]) or b.shape != (dims[j + 1],)]
    shapes_ok = tower.pos.ndim == 2 and tower.pos.shape[1] == d and tower.heads > 0 and d % tower.heads == 0 \
        and all(b["qkv.weight"].shape == (3 * d, d) and b["ff2.weight"].shape == (d, 2 * d) for b in blocks)
    n_items = tower.n_items
    if not layers or bad or not shapes_ok or tower.item_brand.shape != (n_items,) \
            or tower.cat_ptr.shape != (n_items + 1,) or tower.item_brand.max(initial=-1) >= tower.t_brand.shape[0] \
            or (tower.cat_vals.size and (tower.cat_vals.max() >= tower.t_cat.shape[0] or tower.cat_vals.min() < 0)) \
            or tower.cat_ptr[-1] != tower.cat_vals.size \
            or (tower.carry is not None and (tower.carry.ndim != 2 or tower.carry.shape[0] != n_items)) \
            or not 0.0 <= tower.teacher_carry < 1.0 or (tower.teacher_carry > 0) != (tower.carry is not None):
        raise problem(path, f"inconsistent shapes (MLP layers {bad or 'none'} off, {n_items} item rows)", fix)
    return tower
