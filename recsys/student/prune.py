"""Post-training pruning of the student: magnitude masks on the dense layers, rare item-id rows dropped.

Dense layers (both tower MLPs and the text projection; weights, not biases): the ``round(s * n)`` smallest-|w|
entries are set to zero, per layer (``scope = "layer"``: every matrix loses the same share) or over all of them
at once (``"global"``: one threshold, so wide, redundant layers lose more). Ties are broken by position (a stable
sort), so the mask keeps exactly ``n - round(s * n)`` entries (Han et al., "Learning both Weights and Connections
for Efficient Neural Networks", 2015; no fine-tune here).

Item-id rows: an item with fewer than ``min_item_count`` training events loses its id row. Its item vector is then
the tower with the id path off (``keep_id = 0``: brand, category, text and the teacher carry) — what ID dropout
trained the tower to produce and what a cold item already gets — rather than a shared bucket row, which the tower
never saw in training and which would give every rare item the same id offset. In a user's history the dropped
items leave the two item-id bags (mean over the kept ones) and stay in the brand, category and teacher bags.

Stored compactly (``to_tensors``): kept id rows + their row numbers (the id map), each pruned matrix as a packed
bit mask (1 bit per entry) + its kept values in row-major order, plus biases and the small brand/category tables.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np

from recsys.student.item_tower import ItemTower, Layer
from recsys.student.user_tower import UserTower

Scope = Literal["layer", "global"]
FORMAT = "recsys-pruned-student/1"


def magnitude_mask(w: np.ndarray, *, sparsity: float) -> np.ndarray:
    """Boolean mask of ``w``'s shape keeping exactly ``size - round(sparsity * size)`` largest-|w| entries
    (equal magnitudes: the earlier position wins)."""
    return global_masks([w], sparsity=sparsity)[0]


def global_masks(ws: list[np.ndarray], *, sparsity: float) -> list[np.ndarray]:
    """One magnitude threshold over all of ``ws``: masks keeping the ``n - round(sparsity * n)`` largest |w|."""
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
    flat = np.concatenate([np.abs(w).ravel() for w in ws]) if ws else np.zeros(0)
    keep = flat.size - round(sparsity * flat.size)
    mask = np.zeros(flat.size, bool)
    mask[np.argsort(-flat, kind="stable")[:keep]] = True
    out, at = [], 0
    for w in ws:
        out.append(mask[at:at + w.size].reshape(w.shape))
        at += w.size
    return out


def dense_masks(ws: list[np.ndarray], *, sparsity: float, scope: Scope) -> list[np.ndarray]:
    if scope == "global":
        return global_masks(ws, sparsity=sparsity)
    return [magnitude_mask(w, sparsity=sparsity) for w in ws]


def kept_rows(train_count: np.ndarray, *, min_count: int) -> np.ndarray:
    """(N,) bool: items whose id row survives (at least ``min_count`` training events; 0 keeps every row)."""
    return np.asarray(train_count) >= min_count


@dataclasses.dataclass(frozen=True)
class PrunedStudent:
    """A pruned student's weights (dense matrices hold their zeros in memory; ``to_tensors`` stores them sparse)."""

    id_rows: np.ndarray  # (K,) i64 item rows with an id vector, ascending
    t_item: np.ndarray  # (K, d_id) f32: row j = item id_rows[j]
    t_brand: np.ndarray
    t_cat: np.ndarray
    item_brand: np.ndarray  # (N,) i64
    cat_ptr: np.ndarray
    cat_vals: np.ndarray
    keep_id: np.ndarray  # (N,) bool: the item tower uses the id path (kept row and training events)
    user_layers: tuple[Layer, ...]
    item_layers: tuple[Layer, ...]
    text_proj: Layer | None
    history_len: int
    recent_len: int
    user_id_dim: int
    teacher_carry: float = 0.0
    carry_last_n: int = 20
    carry_decay: float = 0.5

    @property
    def n_items(self) -> int:
        return int(self.item_brand.shape[0])

    def matrices(self) -> dict[str, Layer]:
        out = {f"user_mlp.{j}": lay for j, lay in enumerate(self.user_layers)}
        out |= {f"item_mlp.{j}": lay for j, lay in enumerate(self.item_layers)}
        if self.text_proj is not None:
            out["text_proj"] = self.text_proj
        return out

    def full_table(self) -> np.ndarray:
        """(N, d_id) item-id table with zero rows where the id was dropped (never read: masks skip them)."""
        t = np.zeros((self.n_items, self.t_item.shape[1]), np.float32)
        t[self.id_rows] = self.t_item
        return t

    def towers(self, *, text: np.ndarray | None, carry: np.ndarray | None,
               carry_scale: np.ndarray | None = None) -> tuple[UserTower, ItemTower]:
        """The numpy towers of this student; ``text`` (N, D) and ``carry`` (N, Dt) are the teacher inputs,
        ``carry_scale`` (N, 2) the per-item carry scales of the item side (``recsys.student.carry``; None = off)."""
        table = self.full_table()
        kept = np.zeros(self.n_items, bool)
        kept[self.id_rows] = True
        user = UserTower(t_item=table, t_brand=self.t_brand, t_cat=self.t_cat, item_brand=self.item_brand,
                         cat_ptr=self.cat_ptr, cat_vals=self.cat_vals, layers=self.user_layers,
                         history_len=self.history_len, recent_len=self.recent_len, user_id_dim=self.user_id_dim,
                         carry=carry if self.teacher_carry > 0 else None, teacher_carry=self.teacher_carry,
                         carry_last_n=self.carry_last_n, carry_decay=self.carry_decay, id_kept=kept)
        item = ItemTower(t_item=table, t_brand=self.t_brand, t_cat=self.t_cat, item_brand=self.item_brand,
                         cat_ptr=self.cat_ptr, cat_vals=self.cat_vals, layers=self.item_layers,
                         text_proj=self.text_proj, text=text if self.text_proj is not None else None,
                         carry=carry if self.teacher_carry > 0 else None, teacher_carry=self.teacher_carry,
                         carry_scale=carry_scale if self.teacher_carry > 0 else None)
        return user, item


def prune(*, user: UserTower, item_layers: tuple[Layer, ...], text_proj: Layer | None, train_count: np.ndarray,
          sparsity: float, scope: Scope, min_count: int) -> PrunedStudent:
    """The trained towers (``user`` holds the shared tables and the user MLP) -> their pruned student."""
    layers = list(user.layers) + list(item_layers) + ([text_proj] if text_proj is not None else [])
    masks = dense_masks([w for w, _ in layers], sparsity=sparsity, scope=scope)
    pruned = [(np.where(m, w, 0.0).astype(np.float32), b.astype(np.float32)) for m, (w, b) in zip(masks, layers)]
    nu, ni = len(user.layers), len(item_layers)
    kept = kept_rows(train_count, min_count=min_count)
    rows = np.flatnonzero(kept).astype(np.int64)
    return PrunedStudent(id_rows=rows, t_item=user.t_item[rows].astype(np.float32), t_brand=user.t_brand,
                         t_cat=user.t_cat, item_brand=user.item_brand, cat_ptr=user.cat_ptr, cat_vals=user.cat_vals,
                         keep_id=kept & (np.asarray(train_count) > 0), user_layers=tuple(pruned[:nu]),
                         item_layers=tuple(pruned[nu:nu + ni]), text_proj=pruned[nu + ni] if text_proj is not None
                         else None, history_len=user.history_len, recent_len=user.recent_len,
                         user_id_dim=user.user_id_dim, teacher_carry=user.teacher_carry,
                         carry_last_n=user.carry_last_n, carry_decay=user.carry_decay)


def to_tensors(p: PrunedStudent) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Compact arrays + string metadata (safetensors): dense matrices as packed mask bits + kept values."""
    t: dict[str, np.ndarray] = {"t_item.rows": p.id_rows.astype(np.int32), "t_item.values": p.t_item,
                                "t_brand": p.t_brand, "t_cat": p.t_cat, "item_brand": p.item_brand.astype(np.int32),
                                "cat_ptr": p.cat_ptr.astype(np.int64), "cat_vals": p.cat_vals.astype(np.int32),
                                "keep_id": np.packbits(p.keep_id)}
    meta = {"format": FORMAT, "n_items": str(p.n_items), "history_len": str(p.history_len),
            "recent_len": str(p.recent_len), "user_id_dim": str(p.user_id_dim),
            "teacher_carry": repr(p.teacher_carry), "carry_last_n": str(p.carry_last_n),
            "carry_decay": repr(p.carry_decay), "user_layers": str(len(p.user_layers)),
            "item_layers": str(len(p.item_layers)), "text_proj": str(p.text_proj is not None)}
    for name, (w, b) in p.matrices().items():
        nz = w.ravel() != 0
        t[f"{name}.mask"], t[f"{name}.values"], t[f"{name}.bias"] = np.packbits(nz), w.ravel()[nz], b
        meta[f"{name}.shape"] = f"{w.shape[0]},{w.shape[1]}"
    return t, meta


def from_tensors(t: dict[str, np.ndarray], meta: dict[str, str]) -> PrunedStudent:
    """Inverse of ``to_tensors``; ValueError naming the entry when the arrays do not fit together."""
    if meta.get("format") != FORMAT:
        raise ValueError(f"not a {FORMAT} file (format {meta.get('format')!r})")
    n = int(meta["n_items"])

    def matrix(name: str) -> Layer:
        out, inp = (int(v) for v in meta[f"{name}.shape"].split(","))
        bits = np.unpackbits(t[f"{name}.mask"], count=out * inp).astype(bool)
        vals = t[f"{name}.values"]
        if t[f"{name}.mask"].size != -(-out * inp // 8) or int(bits.sum()) != vals.size:
            raise ValueError(f"'{name}': {vals.size} values for a mask of {int(bits.sum())} kept entries")
        w = np.zeros(out * inp, np.float32)
        w[bits] = vals
        b = t[f"{name}.bias"].astype(np.float32)
        if b.shape != (out,):
            raise ValueError(f"'{name}.bias' has shape {b.shape}, expected ({out},)")
        return w.reshape(out, inp), b

    rows = t["t_item.rows"].astype(np.int64)
    table = t["t_item.values"].astype(np.float32)
    if table.ndim != 2 or table.shape[0] != rows.size or (rows.size and (rows.min() < 0 or rows.max() >= n
                                                                          or np.any(np.diff(rows) <= 0))):
        raise ValueError(f"'t_item.rows' is not an ascending list of {table.shape[0]} item rows in [0, {n})")
    brand = t["item_brand"].astype(np.int64)
    ptr = t["cat_ptr"].astype(np.int64)
    if brand.shape != (n,) or ptr.shape != (n + 1,) or ptr[-1] != t["cat_vals"].size:
        raise ValueError(f"item -> brand / category maps do not cover the {n} items")
    return PrunedStudent(
        id_rows=rows, t_item=table, t_brand=t["t_brand"].astype(np.float32), t_cat=t["t_cat"].astype(np.float32),
        item_brand=brand, cat_ptr=ptr, cat_vals=t["cat_vals"].astype(np.int64),
        keep_id=np.unpackbits(t["keep_id"], count=n).astype(bool),
        user_layers=tuple(matrix(f"user_mlp.{j}") for j in range(int(meta["user_layers"]))),
        item_layers=tuple(matrix(f"item_mlp.{j}") for j in range(int(meta["item_layers"]))),
        text_proj=matrix("text_proj") if meta["text_proj"] == "True" else None,
        history_len=int(meta["history_len"]), recent_len=int(meta["recent_len"]),
        user_id_dim=int(meta["user_id_dim"]), teacher_carry=float(meta["teacher_carry"]),
        carry_last_n=int(meta["carry_last_n"]), carry_decay=float(meta["carry_decay"]))


def size_bytes(p: PrunedStudent) -> dict[str, int]:
    """Bytes of the stored model (tables + dense weights) as ``to_tensors`` holds them."""
    t, _ = to_tensors(p)
    tables = sum(t[k].nbytes for k in ("t_item.rows", "t_item.values", "t_brand", "t_cat"))
    dense = sum(v.nbytes for k, v in t.items() if k.startswith(("user_mlp.", "item_mlp.", "text_proj.")))
    return {"tables": int(tables), "dense": int(dense), "total": int(tables + dense),
            "maps": int(sum(t[k].nbytes for k in ("item_brand", "cat_ptr", "cat_vals", "keep_id")))}


def dense_size_f32(layers: list[Layer]) -> int:
    return int(sum(w.size + b.size for w, b in layers) * 4)
