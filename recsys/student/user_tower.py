"""The student's user tower in numpy: a vector for a history that no training run has seen.

The service (``recsys serve``) answers anonymous sessions — ``{"history": [item ids]}`` — with the
served student's own user tower, without torch or torchrec. At export the student writes what the
tower reads (``write``): the three history tables (item id, brand, category-path prefix), each item's
brand and category rows, the user MLP's weights and the bag lengths. ``UserTower.encode`` then repeats
``TwoTower.user_tower`` over ``make_batch``'s bags:

    mean(t_item[last history_len]) ‖ mean(t_item[last recent_len]) ‖ mean(t_brand[their brands]) ‖
    mean(t_cat[their category prefixes]) [‖ 0 for the user-id table]  -> Linear-ReLU-...-Linear -> L2 norm

With teacher carry (``student.teacher_carry = a > 0``) the output is ``[sqrt(a) t, sqrt(1 - a) r]``: ``r`` the
vector above, ``t`` the L2-normed sum of ``decay**age * carry[item]`` over the last ``carry_last_n`` history items
(the adapted teacher's item vectors, exported with the tower). An empty bag pools to zeros, as TorchRec's MEAN
pooling does. With ``user_id_dim > 0`` an anonymous
user has no id row: that part is zeros (what the torch tower gives a user with an empty id bag).
Tested to equal the torch tower's exported user vectors (tests/student/test_distributed.py).
The sequential tower (``student.user_tower = "sequential"``) has its own numpy forward, ``recsys.student.seq_user_tower``;
``read`` returns whichever the file holds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from recsys.contracts import student as S
from recsys.contracts.errors import problem
from recsys.contracts.layout import Layout
from recsys.student import seq_user_tower
from recsys.student.seq_user_tower import SeqUserTower
from recsys.student.tower_ops import bag_mean, carry_join, mlp_normalized, normalize, with_carry

FORMAT = "recsys-user-tower/1"


@dataclasses.dataclass(frozen=True)
class UserTower:
    """Weights of a user tower. Tables (rows, dim) f32; ``layers`` [(W (out, in), b (out,))] of the MLP."""

    t_item: np.ndarray
    t_brand: np.ndarray
    t_cat: np.ndarray
    item_brand: np.ndarray  # (N,) i64, -1 = no brand
    cat_ptr: np.ndarray  # (N+1,) i64 CSR of each item's category-prefix rows
    cat_vals: np.ndarray  # (nnz,) i64
    layers: tuple[tuple[np.ndarray, np.ndarray], ...]
    history_len: int
    recent_len: int
    user_id_dim: int
    carry: np.ndarray | None = None  # (N, Dt) f32 L2-normed teacher item vectors (teacher carry), or None
    teacher_carry: float = 0.0
    carry_last_n: int = 20
    carry_decay: float = 0.5
    id_kept: np.ndarray | None = None  # (N,) bool: item rows whose id vector exists (a pruned student,
    # ``recsys.student.prune``); the item-id bags skip the others, brand/category/teacher bags keep them. None = all

    @property
    def n_items(self) -> int:
        return int(self.t_item.shape[0])

    @property
    def dim(self) -> int:
        return int(self.layers[-1][0].shape[0]) + (0 if self.carry is None else int(self.carry.shape[1]))

    def encode(self, histories: Sequence[Sequence[int] | np.ndarray]) -> np.ndarray:
        """Item rows per user, oldest first -> (B, d) float32 L2-normalised user vectors."""
        x = np.stack([self._features(np.asarray(h, dtype=np.int64)) for h in histories]) if len(histories) \
            else np.zeros((0, self.layers[0][0].shape[1]), np.float32)
        return with_carry(mlp_normalized(x, self.layers), [np.asarray(h, dtype=np.int64) for h in histories],
                          carry=self.carry, a=self.teacher_carry, last_n=self.carry_last_n, decay=self.carry_decay)

    def encode_csr(self, ptr: np.ndarray, items: np.ndarray) -> np.ndarray:
        """``encode`` of every CSR row at once (user u's history = ``items[ptr[u]:ptr[u+1]]``, oldest first), with
        sparse bag matrices instead of a loop over users: (U, d) float32, equal to ``encode`` to float error."""
        from recsys.student import bags

        ptr, items = np.asarray(ptr, np.int64), np.asarray(items, np.int64)
        if items.size and (items.min() < 0 or items.max() >= self.n_items):
            raise ValueError(f"history item rows must be in [0, {self.n_items}); got {items.min()}..{items.max()}")
        n, u = self.n_items, len(ptr) - 1

        def id_bag(last: int) -> np.ndarray:
            row, pos, _ = bags.tail(ptr, last)
            it = items[pos]
            if self.id_kept is not None:
                row, it = row[self.id_kept[it]], it[self.id_kept[it]]
            return bags.pool(bags.mean_matrix(row, it, n_rows=u, n_cols=n), self.t_item)

        row, pos, _ = bags.tail(ptr, self.history_len)
        h = items[pos]
        b = self.item_brand[h]
        brand = bags.pool(bags.mean_matrix(row[b >= 0], b[b >= 0], n_rows=u, n_cols=self.t_brand.shape[0]),
                          self.t_brand)
        crow, cat = bags.expand(row, h, self.cat_ptr, self.cat_vals)
        cats = bags.pool(bags.mean_matrix(crow, cat, n_rows=u, n_cols=self.t_cat.shape[0]), self.t_cat)
        parts = [id_bag(self.history_len), id_bag(self.recent_len), brand, cats]
        if self.user_id_dim > 0:
            parts.append(np.zeros((u, self.user_id_dim), np.float32))
        x = np.concatenate(parts, axis=1)
        x = mlp_normalized(x, self.layers)
        if self.carry is None:
            return x
        row, pos, age = bags.tail(ptr, self.carry_last_n)
        import scipy.sparse as sp

        m = sp.csr_matrix(((self.carry_decay ** age).astype(np.float64), (row, items[pos])), shape=(u, n))
        t = normalize(bags.pool(m, self.carry))
        return carry_join(t, x, self.teacher_carry)

    def _features(self, hist: np.ndarray) -> np.ndarray:
        if hist.size and (hist.min() < 0 or hist.max() >= self.n_items):
            raise ValueError(f"history item rows must be in [0, {self.n_items}); got {hist.min()}..{hist.max()}")
        h = hist[max(0, len(hist) - self.history_len):]
        r = hist[max(0, len(hist) - self.recent_len):] if self.recent_len > 0 else hist[:0]
        brands = self.item_brand[h]
        brands = brands[brands >= 0]
        cats = np.concatenate([self.cat_vals[self.cat_ptr[i]:self.cat_ptr[i + 1]] for i in h]) if len(h) \
            else np.zeros(0, np.int64)
        hi, ri = (h, r) if self.id_kept is None else (h[self.id_kept[h]], r[self.id_kept[r]])
        parts = [bag_mean(self.t_item, hi), bag_mean(self.t_item, ri), bag_mean(self.t_brand, brands),
                 bag_mean(self.t_cat, cats)]
        if self.user_id_dim > 0:
            parts.append(np.zeros(self.user_id_dim, np.float32))
        return np.concatenate(parts)


def to_tensors(tower: UserTower) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    tensors = {"t_item": tower.t_item, "t_brand": tower.t_brand, "t_cat": tower.t_cat, "item_brand": tower.item_brand,
               "cat_ptr": tower.cat_ptr, "cat_vals": tower.cat_vals}
    for j, (w, b) in enumerate(tower.layers):
        tensors[f"mlp.{j}.weight"], tensors[f"mlp.{j}.bias"] = w, b
    meta = {"format": FORMAT, "history_len": str(tower.history_len), "recent_len": str(tower.recent_len),
            "user_id_dim": str(tower.user_id_dim), "layers": str(len(tower.layers)),
            "teacher_carry": repr(tower.teacher_carry), "carry_last_n": str(tower.carry_last_n),
            "carry_decay": repr(tower.carry_decay)}
    if tower.carry is not None:
        tensors["carry"] = tower.carry
    return tensors, meta


def from_tensors(t: dict[str, np.ndarray], meta: dict[str, str], *, path: Path) -> UserTower | SeqUserTower:
    """Rebuild and check a tower (the MLP's shapes must chain from the pooled width; ids in range); a
    sequential tower's file (``recsys.student.seq_user_tower.FORMAT``) gives a ``SeqUserTower``."""
    fix = "re-run the student stage with --force to re-export it"
    if meta.get("format") == seq_user_tower.FORMAT:
        return seq_user_tower.from_tensors(t, meta, path=path)
    if meta.get("format") != FORMAT:
        raise problem(path, f"not a {FORMAT} file (format {meta.get('format')!r})", fix)
    try:
        n = int(meta["layers"])
        layers = tuple((t[f"mlp.{j}.weight"].astype(np.float32), t[f"mlp.{j}.bias"].astype(np.float32))
                       for j in range(n))
        tower = UserTower(t_item=t["t_item"], t_brand=t["t_brand"], t_cat=t["t_cat"], item_brand=t["item_brand"],
                          cat_ptr=t["cat_ptr"], cat_vals=t["cat_vals"], layers=layers,
                          history_len=int(meta["history_len"]), recent_len=int(meta["recent_len"]),
                          user_id_dim=int(meta["user_id_dim"]), carry=t.get("carry"),
                          teacher_carry=float(meta.get("teacher_carry", "0")),
                          carry_last_n=int(meta.get("carry_last_n", "20")),
                          carry_decay=float(meta.get("carry_decay", "0.5")))
    except (KeyError, ValueError) as e:
        raise problem(path, f"missing or unreadable entry {e}", fix) from None
    width = tower.t_item.shape[1] * 2 + tower.t_brand.shape[1] + tower.t_cat.shape[1] + tower.user_id_dim
    dims = [width] + [w.shape[0] for w, _ in layers]
    bad = [j for j, (w, b) in enumerate(layers) if w.shape != (dims[j + 1], dims[j]) or b.shape != (dims[j + 1],)]
    n_items = tower.t_item.shape[0]
    if not layers or bad or tower.item_brand.shape != (n_items,) or tower.cat_ptr.shape != (n_items + 1,) \
            or tower.item_brand.max(initial=-1) >= tower.t_brand.shape[0] \
            or (tower.cat_vals.size and (tower.cat_vals.max() >= tower.t_cat.shape[0] or tower.cat_vals.min() < 0)) \
            or tower.cat_ptr[-1] != tower.cat_vals.size \
            or (tower.carry is not None and (tower.carry.ndim != 2 or tower.carry.shape[0] != n_items)) \
            or not 0.0 <= tower.teacher_carry < 1.0 or (tower.teacher_carry > 0) != (tower.carry is not None):
        raise problem(path, f"inconsistent shapes (MLP layers {bad or 'none'} off, {n_items} item rows)", fix)
    return tower


def write(*, layout: Layout, variant: str, tower: UserTower | SeqUserTower) -> Path:
    tensors, meta = seq_user_tower.to_tensors(tower) if isinstance(tower, SeqUserTower) else to_tensors(tower)
    return S.write_user_tower(layout=layout, variant=variant, tensors=tensors, metadata=meta)


def exists(*, layout: Layout, variant: str) -> bool:
    return S.has_user_tower(layout, variant=variant)


def read(*, layout: Layout, variant: str) -> UserTower | SeqUserTower:
    """The verified tower of ``variant`` (digest by ``recsys.contracts.student``, shapes here)."""
    tensors, meta = S.read_user_tower(layout=layout, variant=variant)
    return from_tensors(tensors, meta, path=layout.user_tower(variant))
