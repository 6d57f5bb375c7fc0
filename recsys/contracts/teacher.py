"""teacher/: item and user embeddings (safetensors) with the pooling the student distils against; top-K lists.

``item_emb.safetensors``  {"raw": (N, D) f32, "adapted": (N, D2) f32}, finite, one row per catalogue item;
                          metadata ``recsys`` = JSON of ``TeacherMeta`` (the one source of the pooling and the
                          adapter temperature: the student reads them here, it has no copy of its own)
``user_emb.safetensors``  {"raw_valid", "raw_test", "adapted_valid", "adapted_test": (U, D) f32}, finite
``topk_{valid,test}.parquet``  user, item, score, rank (see ``lists``)
``adapter.safetensors``   the domain adapter's weights (f32 tensors named as its ``state_dict``), metadata ``kind``;
                          written when the stage has an adapter, read by a later run that reuses it
                          (``teacher.adapter_from``: a weekly retrain applies the published version's)
"""

from __future__ import annotations

import dataclasses
import json
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from recsys.contracts import _checks as C
from recsys.contracts import lists
from recsys.contracts.errors import problem, rebuild
from recsys.contracts.layout import Layout
from recsys.contracts.manifests import present as _present
from recsys.contracts.manifests import raise_from, verify

STAGE = "teacher"
_META_KEY = "recsys"


@dataclasses.dataclass(frozen=True)
class TeacherMeta:
    """How the teacher built its vectors; the student's in-batch ranking distillation must use the same."""

    model: str  # the encoder's source (path or packaged name)
    pooling: str  # token pooling of the encoder
    user_mode: str  # "pooled" or "text"
    history_n: int  # user vector = recency-weighted mean of the last ``history_n`` items
    recency_decay: float  # weight of the k-th most recent item = decay**k
    adapter_temperature: float  # softmax temperature the adapter was fit with: teacher logits = cosine / this


def write(*, layout: Layout, raw_items: np.ndarray, adapted_items: np.ndarray, meta: TeacherMeta,
          users: Mapping[str, np.ndarray] | None = None, topk: Mapping[str, pl.DataFrame] | None = None) -> list[Path]:
    """Write item/user embeddings and the top-K lists atomically; returns the paths for the stage record.

    Args:
        raw_items, adapted_items: (N, D) / (N, D2) float32. users: {"raw_valid", ...: (U, D)} float32.
        topk: {"valid" | "test": (user, item, score, rank) frame}. Stand-ins (tests, benchmarks) may omit
        users and top-K; the teacher stage writes all of them.
    """
    from recsys.artifacts import write_safetensors

    blob = {_META_KEY: json.dumps(dataclasses.asdict(meta)), "model": meta.model, "pooling": meta.pooling}
    outs = [write_safetensors(layout.teacher_items, {"raw": raw_items, "adapted": adapted_items}, metadata=blob)]
    if users is not None:
        outs.append(write_safetensors(layout.teacher_users, dict(users), metadata={"user_mode": meta.user_mode}))
    outs += [lists.write(path=layout.teacher_topk(s), frame=f) for s, f in (topk or {}).items()]
    return outs


def write_adapter(*, layout: Layout, state: Mapping[str, np.ndarray], kind: str) -> Path:
    from recsys.artifacts import write_safetensors

    return write_safetensors(layout.teacher_adapter, {k: np.asarray(v, np.float32) for k, v in state.items()},
                             metadata={"kind": kind})


def has_adapter(layout: Layout) -> bool:
    return _present(layout.teacher_adapter, layout=layout)


def read_adapter(*, layout: Layout) -> tuple[dict[str, np.ndarray], str]:
    """(weights, kind) of the run's fitted adapter, verified: digest against the stage record, finite f32."""
    from safetensors.numpy import load_file

    p = verify(layout.teacher_adapter, layout=layout, stage=STAGE)
    kind = (_header(p).get("__metadata__") or {}).get("kind")
    if kind not in ("linear", "mlp"):
        raise problem(p, f"adapter kind {kind!r} is not one this recsys applies", rebuild(STAGE))
    try:
        state = load_file(str(p))
    except Exception as e:  # safetensors raises SafetensorError on a damaged header or body
        raise raise_from(p, e, stage=STAGE) from None
    for k, v in state.items():
        if v.dtype != np.float32 or not np.isfinite(v).all():
            raise problem(p, f"tensor '{k}' is not finite float32", rebuild(STAGE))
    return state, kind


def paths(layout: Layout, *, topk: tuple[str, ...] = ("valid", "test")) -> list[Path]:
    return [layout.teacher_items, layout.teacher_users, *(layout.teacher_topk(s) for s in topk)]


def present(layout: Layout) -> bool:
    """Whether the run has teacher embeddings (the rank stage and eval use them when there)."""
    return _present(layout.teacher_items, layout=layout) or _present(layout.teacher_users, layout=layout)


def has_topk(layout: Layout, *, split: str) -> bool:
    return _present(layout.teacher_topk(split), layout=layout)


def _header(path: Path) -> dict[str, Any]:
    """The safetensors JSON header, parsed by hand (8-byte little-endian length + JSON)."""
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise problem(path, "shorter than a safetensors header", rebuild(STAGE))
        (n,) = struct.unpack("<Q", head)
        if n > 100_000_000:
            raise problem(path, f"safetensors header claims {n} bytes", rebuild(STAGE))
        return C.json_object(f.read(n), path=path, stage=STAGE)


def _load(path: Path, *, rows: int, what: str) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    try:
        out = load_file(str(path))
    except Exception as e:  # safetensors raises SafetensorError on a damaged header or body
        raise raise_from(path, e, stage=STAGE) from None
    for k, v in out.items():
        C.check_array(v, path=path, stage=STAGE, kind="f", ndim=2, rows=rows, what=f"tensor '{k}': {what}")
    return out


def read_items(*, layout: Layout, n_items: int) -> dict[str, np.ndarray]:
    """{"raw": (N, D), "adapted": (N, D2)} float32, verified: digest, one finite row per catalogue item."""
    p = verify(layout.teacher_items, layout=layout, stage=STAGE)
    out = _load(p, rows=n_items, what="one row per catalogue item")
    for k in ("raw", "adapted"):
        if k not in out:
            raise problem(p, f"no '{k}' tensor (has {sorted(out)})", rebuild(STAGE))
    return out


def read_users(*, layout: Layout, n_users: int) -> dict[str, np.ndarray]:
    """{"raw_valid", "raw_test", "adapted_valid", "adapted_test": (U, D)} float32, verified."""
    p = verify(layout.teacher_users, layout=layout, stage=STAGE)
    return _load(p, rows=n_users, what="one row per user")


def read_meta(*, layout: Layout) -> TeacherMeta:
    """The teacher's pooling and adapter temperature, from ``item_emb.safetensors``' metadata (verified)."""
    p = verify(layout.teacher_items, layout=layout, stage=STAGE)
    meta = (_header(p).get("__metadata__") or {}).get(_META_KEY)
    if meta is None:
        raise problem(p, "has no pooling metadata (written by an older recsys)", rebuild(STAGE))
    obj = C.json_object(meta, path=p, stage=STAGE)
    try:
        return TeacherMeta(**obj)
    except TypeError as e:
        raise problem(p, f"pooling metadata does not match this recsys ({e})", rebuild(STAGE)) from None


def read_topk(*, layout: Layout, split: str, n_users: int, n_items: int) -> pl.DataFrame:
    """The teacher's top-K at ``split`` (user, item, score, rank), verified like every ranked list."""
    return lists.read(path=layout.teacher_topk(split), layout=layout, stage=STAGE, n_users=n_users,
                      n_items=n_items)
