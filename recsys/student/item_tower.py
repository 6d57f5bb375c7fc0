"""The student's item tower in numpy: ``TwoTower.item_tower`` over every catalogue item at once, without torch.

    t_item[i] * keep_id[i] ‖ t_brand[brand(i)] ‖ mean(t_cat[category prefixes of i]) ‖ W_text text[i] + b_text
        -> Linear-ReLU-...-Linear -> L2 norm [-> [sqrt(a) carry[i], sqrt(1 - a) r] with teacher carry a > 0, each part times
        its column of ``carry_scale[i]`` with per-item carry]

``keep_id = 0`` is the id path off (what ID dropout trains the tower for, and what an item without training events
gets at export). The pruned student (``recsys.student.prune``) runs this forward with pruned weights; an item
whose id row was dropped is encoded with ``keep_id = 0``. Tested to equal the torch tower's exported item vectors.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from recsys.student import bags
from recsys.student.tower_ops import mlp_normalized

Layer = tuple[np.ndarray, np.ndarray]  # W (out, in), b (out,)


@dataclasses.dataclass(frozen=True)
class ItemTower:
    """Weights and per-item inputs of an item tower. Tables (rows, dim) f32; ``text`` (N, D) the teacher's text
    embedding (None without text input); ``carry`` (N, Dt) the L2-normed adapted teacher vectors (None = no carry)."""

    t_item: np.ndarray
    t_brand: np.ndarray
    t_cat: np.ndarray
    item_brand: np.ndarray  # (N,) i64, -1 = no brand
    cat_ptr: np.ndarray  # (N+1,) i64
    cat_vals: np.ndarray  # (nnz,) i64
    layers: tuple[Layer, ...]
    text_proj: Layer | None = None
    text: np.ndarray | None = None
    carry: np.ndarray | None = None
    teacher_carry: float = 0.0
    carry_scale: np.ndarray | None = None  # (N, 2) per-item scales of the two carried parts (``recsys.student.carry``)

    @property
    def n_items(self) -> int:
        return int(self.item_brand.shape[0])

    def encode(self, *, keep_id: np.ndarray) -> np.ndarray:
        """keep_id (N,) in {0, 1} -> (N, d) float32 item vectors of every catalogue item."""
        n = self.n_items
        rows = np.arange(n, dtype=np.int64)
        b = self.item_brand
        brand = bags.pool(bags.mean_matrix(rows[b >= 0], b[b >= 0], n_rows=n, n_cols=self.t_brand.shape[0]),
                          self.t_brand)
        crow, cat = bags.expand(rows, rows, self.cat_ptr, self.cat_vals)
        cats = bags.pool(bags.mean_matrix(crow, cat, n_rows=n, n_cols=self.t_cat.shape[0]), self.t_cat)
        parts = [self.t_item[:n] * np.asarray(keep_id, np.float32)[:, None], brand, cats]
        if self.text_proj is not None:
            if self.text is None:
                raise ValueError("this item tower has a text projection but no text input")
            w, bias = self.text_proj
            parts.append(self.text @ w.T + bias)
        x = np.concatenate(parts, axis=1).astype(np.float32)
        x = mlp_normalized(x, self.layers)
        if self.carry is None:
            return x
        a = self.teacher_carry
        ct, cr = (np.sqrt(a), np.sqrt(1.0 - a)) if self.carry_scale is None else \
            (np.sqrt(a) * self.carry_scale[:, :1], np.sqrt(1.0 - a) * self.carry_scale[:, 1:])
        return np.concatenate([ct * self.carry, cr * x], axis=1).astype(np.float32)
