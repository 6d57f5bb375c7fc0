"""Polars tables -> numpy features -> TorchRec ``KeyedJaggedTensor`` batches.

One KJT carries both towers' sparse inputs. Rows ``[0, n_user_rows)`` are users (history bags,
empty item features); rows ``[n_user_rows, R)`` are candidate items (id/brand/category bags, empty
user features). One EmbeddingBagCollection then serves both towers and the item-id table is shared
by the history bags and the candidates. Empty bags pool to zeros and cost almost nothing.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import polars as pl
import torch
import torch.nn.functional as F
from torchrec.sparse.jagged_tensor import KeyedJaggedTensor

from recsys.student.config import StudentConfig

USER_KEYS = ("hist_item", "recent_item", "hist_brand", "hist_cat", "user")
ITEM_KEYS = ("item", "brand", "cat")


@dataclasses.dataclass(frozen=True)
class ItemFeatures:
    """Per-item side features. ``brand[i]`` = -1 when unknown; categories as CSR (path prefixes)."""

    n_items: int
    brand: np.ndarray  # (N,) i64, -1 = none
    n_brands: int
    cat_ptr: np.ndarray  # (N+1,) i64
    cat_vals: np.ndarray  # (nnz,) i64
    n_cats: int
    text: np.ndarray | None  # (N, D) f32 teacher text embedding, or None
    train_count: np.ndarray  # (N,) i64 training events per item (0 = cold item)
    carry: np.ndarray | None = None  # (N, Dt) f32 L2-normed adapted teacher item vectors the towers carry
    carry_last_n: int = 20  # the carried user vector pools the last N history items (the teacher's pooling)
    carry_decay: float = 0.5


@dataclasses.dataclass(frozen=True)
class Histories:
    """Each user's time-ordered item sequence as CSR: items of user u are ``items[ptr[u]:ptr[u+1]]``."""

    ptr: np.ndarray  # (U+1,) i64
    items: np.ndarray  # (nnz,) i64


@dataclasses.dataclass(frozen=True)
class Batch:
    """A KJT with ``n_user_rows`` user rows followed by item rows, plus the item rows' dense inputs."""

    kjt: KeyedJaggedTensor
    n_user_rows: int
    item_ids: torch.Tensor  # (n_item_rows,) i64
    keep_id: torch.Tensor  # (n_item_rows,) f32: 0 = drop the item-id vector (ID dropout / cold item)
    text: torch.Tensor | None  # (n_item_rows, D) f32
    carry_user: torch.Tensor | None = None  # (n_user_rows, Dt) teacher vector of each user row's history
    carry_item: torch.Tensor | None = None  # (n_item_rows, Dt) teacher vector of each item row
    seq: KeyedJaggedTensor | None = None  # sequential user tower: ``seq_item`` = the last seq_len history items of
    # each user row, oldest first (the EmbeddingCollection's input; None when the tower is pooled)
    carry_scale: torch.Tensor | None = None  # (n_item_rows, 2) per-item carry scales (``recsys.student.carry``)


def item_features(items: pl.DataFrame, train: pl.DataFrame, *, text: np.ndarray | None,
                  carry: np.ndarray | None = None, carry_last_n: int = 20, carry_decay: float = 0.5) -> ItemFeatures:
    """Vocabularies for brand and category-path prefixes (``Makeup``, ``Makeup>Face``, ...)."""
    items = items.sort("item")
    n = items.height
    brands = items["brand"].fill_null("").to_list()
    bvocab = {b: i for i, b in enumerate(sorted({b for b in brands if b}))}
    brand = np.array([bvocab.get(b, -1) for b in brands], dtype=np.int64)
    cvocab: dict[str, int] = {}
    ptr, vals = [0], []
    for cats in items["categories"].to_list():
        path = []
        for c in cats or []:
            path.append(c)
            vals.append(cvocab.setdefault(">".join(path), len(cvocab)))
        ptr.append(len(vals))
    if text is not None and text.shape[0] != n:
        raise ValueError(f"teacher item embedding has {text.shape[0]} rows, catalogue has {n} items")
    count = np.bincount(train["item"].to_numpy(), minlength=n).astype(np.int64)
    return ItemFeatures(n_items=n, brand=brand, n_brands=max(1, len(bvocab)), cat_ptr=np.array(ptr, np.int64),
                        cat_vals=np.array(vals, np.int64), n_cats=max(1, len(cvocab)),
                        text=None if text is None else np.ascontiguousarray(text, dtype=np.float32),
                        train_count=count,
                        carry=None if carry is None else np.ascontiguousarray(
                            carry / np.maximum(np.linalg.norm(carry, axis=1, keepdims=True), 1e-12), dtype=np.float32),
                        carry_last_n=carry_last_n, carry_decay=carry_decay)


def histories(events: pl.DataFrame, *, n_users: int) -> Histories:
    """CSR of each user's items ordered by ``pos`` (``events``: user, item, pos)."""
    ev = events.select("user", "item", "pos").sort("user", "pos")
    counts = np.bincount(ev["user"].to_numpy(), minlength=n_users)
    return Histories(ptr=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
                     items=ev["item"].to_numpy().astype(np.int64))


def next_item_examples(train: Histories) -> tuple[np.ndarray, np.ndarray]:
    """SASRec-style (history prefix -> next item) pairs: (user (E,), position in ``train.items`` (E,)).

    Every train event except a user's first becomes a target; its history is everything before it.
    """
    lens = np.diff(train.ptr)
    users = np.repeat(np.arange(len(lens)), lens)
    pos = np.arange(len(train.items))
    first = pos == train.ptr[users]
    return users[~first].astype(np.int64), pos[~first].astype(np.int64)


def window_examples(ex_times: np.ndarray, *, since: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Split examples by the time of their target event: (new window ``ex_times >= since``, older), as
    ascending example indices. ``since=None``: every example is in the window, none is older.

    Only the set of targets is split; an example's history is still every event before its target.
    """
    idx = np.arange(len(ex_times), dtype=np.int64)
    if since is None:
        return idx, idx[:0]
    new = ex_times >= since
    return idx[new], idx[~new]


def replay_size(n_older: int, *, fraction: float) -> int:
    """Number of older examples replayed per epoch: ``round(fraction * n_older)``."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"student.replay_fraction={fraction}: must be in [0, 1]")
    return int(round(fraction * n_older))


def epoch_examples(*, window: np.ndarray, older: np.ndarray, replay_fraction: float,
                   rng: np.random.Generator) -> np.ndarray:
    """One epoch's examples: all of ``window`` + a uniform sample (without replacement) of
    ``replay_size(len(older))`` of ``older``, ascending. Draws from ``rng`` only when there is a sample."""
    n = replay_size(len(older), fraction=replay_fraction)
    if n == 0:
        return window
    return np.sort(np.concatenate([window, rng.choice(older, size=n, replace=False)]))


def _ragged(starts: np.ndarray, ends: np.ndarray, flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gather ``flat[starts[r]:ends[r]]`` for every row -> (lengths (R,), values (sum,))."""
    lens = np.maximum(ends - starts, 0)
    total = int(lens.sum())
    if total == 0:
        return lens.astype(np.int64), np.zeros(0, np.int64)
    out_start = np.concatenate([[0], np.cumsum(lens)[:-1]])
    idx = np.arange(total) - np.repeat(out_start - starts, lens)
    return lens.astype(np.int64), flat[idx].astype(np.int64)


def _item_side(feats: ItemFeatures, items: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Bags of the item tower for ``items`` (M,)."""
    b = feats.brand[items]
    return {
        "item": (np.ones(len(items), np.int64), items.astype(np.int64)),
        "brand": ((b >= 0).astype(np.int64), b[b >= 0]),
        "cat": _ragged(feats.cat_ptr[items], feats.cat_ptr[items + 1], feats.cat_vals),
    }


def _user_side(feats: ItemFeatures, users: np.ndarray, starts: np.ndarray, ends: np.ndarray, flat: np.ndarray,
               *, history_len: int, recent_len: int, user_ids: bool) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """History bags of the user tower; history of row r = ``flat[starts[r]:ends[r]]`` (last N kept)."""
    s = np.maximum(starts, ends - history_len)
    h_len, h_items = _ragged(s, ends, flat)
    out = {"hist_item": (h_len, h_items),
           "recent_item": _ragged(np.maximum(starts, ends - recent_len), ends, flat)}
    hb = feats.brand[h_items]
    row = np.repeat(np.arange(len(users)), h_len)
    out["hist_brand"] = (np.bincount(row[hb >= 0], minlength=len(users)).astype(np.int64), hb[hb >= 0])
    c_len, c_vals = _ragged(feats.cat_ptr[h_items], feats.cat_ptr[h_items + 1], feats.cat_vals)
    out["hist_cat"] = (np.bincount(row, weights=c_len, minlength=len(users)).astype(np.int64), c_vals)
    # without a user-id table the feature still exists (one batch format) but points at a dummy row 0
    out["user"] = (np.ones(len(users), np.int64), users.astype(np.int64) if user_ids else np.zeros(len(users), np.int64))
    return out


def make_batch(
    *, feats: ItemFeatures, users: np.ndarray, starts: np.ndarray, ends: np.ndarray, flat: np.ndarray,
    items: np.ndarray, keep_id: np.ndarray | None = None, history_len: int = 50, recent_len: int = 3,
    user_ids: bool = False, seq_len: int = 0, carry_scale: np.ndarray | None = None,
) -> Batch:
    """Build a batch of ``len(users)`` user rows then ``len(items)`` item rows.

    Args:
        users: (Bu,) user indices; their history is ``flat[starts:ends]`` (truncated to the last ``history_len``).
        items: (Bi,) candidate item indices.
        keep_id: (Bi,) 1 = use the item-id vector, 0 = drop it (ID dropout, cold items). Default: all 1.
        user_ids: emit real user ids in the ``user`` feature (only when the student has a user-id table).
        seq_len: > 0 (sequential user tower): also the ``seq_item`` sequence KJT of the last ``seq_len`` history
            items of each user row (``Batch.seq``; none when there is no user row).
        carry_scale: (Bi, 2) per-item scales of the carried teacher and residual parts; default: none (1, 1).
    """
    bu, bi = len(users), len(items)
    side_u = _user_side(feats, users, starts, ends, flat, history_len=history_len, recent_len=recent_len,
                        user_ids=user_ids)
    side_i = _item_side(feats, items)
    lengths, values = [], []
    for key in USER_KEYS:
        ln, v = side_u[key]
        lengths += [ln, np.zeros(bi, np.int64)]
        values.append(v)
    for key in ITEM_KEYS:
        ln, v = side_i[key]
        lengths += [np.zeros(bu, np.int64), ln]
        values.append(v)
    kjt = KeyedJaggedTensor(
        keys=list(USER_KEYS + ITEM_KEYS),
        values=torch.from_numpy(np.concatenate(values)),
        lengths=torch.from_numpy(np.concatenate(lengths)),
    )
    keep = np.ones(bi, np.float32) if keep_id is None else keep_id.astype(np.float32)
    text = None if feats.text is None else torch.from_numpy(feats.text[items])
    carry_u = carry_i = None
    if feats.carry is not None:
        carry_i = torch.from_numpy(feats.carry[items])
        carry_u = teacher_prefix_vectors(teacher=feats.carry, starts=starts, ends=ends, flat=flat,
                                         last_n=feats.carry_last_n, decay=feats.carry_decay) if bu else \
            torch.zeros((0, feats.carry.shape[1]))
    seq = None
    if seq_len > 0 and bu:
        s_len, s_items = _ragged(np.maximum(starts, ends - seq_len), ends, flat)
        seq = KeyedJaggedTensor(keys=["seq_item"], values=torch.from_numpy(s_items),
                                lengths=torch.from_numpy(s_len))
    return Batch(kjt=kjt, n_user_rows=bu, item_ids=torch.from_numpy(items.astype(np.int64)),
                 keep_id=torch.from_numpy(keep), text=text, carry_user=carry_u, carry_item=carry_i, seq=seq,
                 carry_scale=None if carry_scale is None else torch.from_numpy(carry_scale.astype(np.float32)))


def seq_len_of(cfg: StudentConfig) -> int:
    """The ``make_batch(seq_len=...)`` of a config: its ``seq_len`` for the sequential user tower, else 0."""
    return cfg.seq_len if cfg.user_tower == "sequential" else 0


def teacher_prefix_vectors(*, teacher: np.ndarray, starts: np.ndarray, ends: np.ndarray, flat: np.ndarray,
                           last_n: int, decay: float) -> torch.Tensor:
    """Teacher user vectors of history prefixes ``flat[starts[r]:ends[r]]``: sum over the last ``last_n``
    items of ``decay**k * teacher[item]`` (k = 0 for the most recent), L2-normalised -> (R, D); an empty
    prefix gives a zero row."""
    s = np.maximum(starts, ends - last_n)
    lens = np.maximum(ends - s, 0)
    total = int(lens.sum())
    offsets = np.concatenate([[0], np.cumsum(lens)[:-1]]).astype(np.int64)
    idx = np.arange(total) - np.repeat(offsets - s, lens)
    age = np.repeat(ends, lens) - 1 - idx  # 0 = most recent
    out = F.embedding_bag(torch.from_numpy(flat[idx].astype(np.int64)), torch.from_numpy(teacher),
                          torch.from_numpy(offsets), mode="sum",
                          per_sample_weights=torch.from_numpy((decay ** age).astype(np.float32)))
    return F.normalize(out, dim=1)
