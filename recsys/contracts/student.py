"""student/<variant>/: the exported towers as numpy vectors, an int8 copy, meta.json and the training log.

``item_vectors.npy``          (N, d) f32, row i = item i, every catalogue item, finite
``user_vectors_{valid,test}.npy``  (U, d) f32, row u = user u, finite (a NaN row is an error, never an
                              empty recommendation)
``item_vectors_int8.npy`` + ``item_vectors_scales.npy``  (N, d) i8 and (N,) f32: v ~= q * scale
``meta.json``                 {"metric": "ip" | "cosine", "dim": d, "variant": ..., "config": ..., ...}
``user_tower.safetensors``    the user tower for the numpy forward (``recsys.student.user_tower``): history
                              tables, item -> brand / category rows, MLP weights; metadata = bag lengths
``pruned/``                   the pruned student (``recsys.student.prune``, stage ``prune/<variant>``):
                              ``pruned_model.safetensors`` (kept id rows + their row numbers, each dense matrix as packed
                              mask bits + kept values, biases; metadata = shapes and bag lengths), its
                              ``item_vectors.npy`` / ``user_vectors_{valid,test}.npy`` (as above) and ``meta.json``
                              (config, kept counts, sizes in bytes)
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from recsys.contracts import _checks as C
from recsys.contracts.errors import problem
from recsys.contracts.layout import Layout
from recsys.contracts.manifests import present, recorded, verify

STAGE = "student"
METRICS = ("ip", "cosine")


def stage_of(variant: str) -> str:
    """Manifest stage name of a variant."""
    return f"{STAGE}/{variant}"


def _fix(variant: str) -> str:
    return (f"re-run the student stage for '{variant}' with --force (`recsys evaluate --force` or "
            f"`recsys build-index --force`) to rebuild it")


def write_vectors(*, layout: Layout, variant: str, items: np.ndarray, users_valid: np.ndarray,
                  users_test: np.ndarray) -> list[Path]:
    """(N, d), (U, d), (U, d) float32 -> the three vector files. Non-finite vectors are refused here, so a
    diverged model is never exported."""
    from recsys.artifacts import write_npy

    out = []
    for path, x in ((layout.item_vectors(variant), items), (layout.user_vectors(variant, "valid"), users_valid),
                    (layout.user_vectors(variant, "test"), users_test)):
        C.check_array(np.asarray(x), path=path, stage=stage_of(variant), kind="f", ndim=2, cols=items.shape[1],
                      what="the model produced it: training diverged? nothing was written")
        out.append(write_npy(path, np.asarray(x, dtype=np.float32)))
    return out


def write_int8(*, layout: Layout, variant: str, q: np.ndarray, scales: np.ndarray) -> list[Path]:
    from recsys.artifacts import write_npy

    return [write_npy(layout.item_vectors_int8(variant), q), write_npy(layout.item_vectors_scales(variant), scales)]


def write_meta(*, layout: Layout, variant: str, meta: Mapping[str, Any]) -> Path:
    from recsys.artifacts import write_json

    if meta.get("metric") not in METRICS:
        raise ValueError(f"meta.metric must be one of {METRICS}, got {meta.get('metric')!r}")
    return write_json(layout.student_meta(variant), dict(meta))


def write_train_log(*, layout: Layout, variant: str, log: Mapping[str, Any]) -> Path:
    from recsys.artifacts import write_json

    return write_json(layout.train_log(variant), dict(log))


def paths(layout: Layout, *, variant: str) -> list[Path]:
    """The files ``read_*`` load for a variant (what the index stage hashes into its key)."""
    return [layout.item_vectors(variant), layout.user_vectors(variant, "valid"),
            layout.user_vectors(variant, "test"), layout.student_meta(variant)]


def exists(layout: Layout, *, variant: str) -> bool:
    return present(layout.student_meta(variant), layout=layout) or present(layout.item_vectors(variant), layout=layout)


def variants(layout: Layout) -> list[str]:
    """Exported variants of the run, sorted (folders holding item vectors or meta)."""
    d = layout.students
    found = {p.name for p in d.iterdir() if p.is_dir()} if d.is_dir() else set()
    found |= {stage.split("/", 1)[1] for stage, _ in recorded(layout).values() if stage.startswith(f"{STAGE}/")}
    return sorted(v for v in found if exists(layout, variant=v))


def has_user_vectors(layout: Layout, *, variant: str, split: str) -> bool:
    return present(layout.user_vectors(variant, split), layout=layout)


def read_meta(*, layout: Layout, variant: str) -> dict[str, Any]:
    """meta.json of ``variant``, verified; its ``metric`` is "ip" or "cosine" and ``dim`` an int."""
    p = layout.student_meta(variant)
    if not present(p, layout=layout):
        raise problem(p, f"missing: '{variant}' is not an exported student variant of {layout.root}",
                      "train it (`recsys build-index` / `recsys evaluate`) or pass another --variant")
    verify(p, layout=layout, stage=stage_of(variant))
    meta = C.read_json(p, stage=stage_of(variant))
    if meta.get("metric") not in METRICS:
        raise problem(p, f"metric {meta.get('metric')!r} is not one of {METRICS}", _fix(variant))
    if not isinstance(meta.get("dim"), int):
        raise problem(p, f"dim {meta.get('dim')!r} is not an integer", _fix(variant))
    return meta


def read_item_vectors(*, layout: Layout, variant: str, n_items: int, dim: int | None = None) -> np.ndarray:
    """(N, d) float32, verified: digest, one finite row per catalogue item, ``dim`` columns when given."""
    p = layout.item_vectors(variant)
    verify(p, layout=layout, stage=stage_of(variant))
    x = C.load_npy(p, stage=stage_of(variant))
    return C.check_array(x, path=p, stage=stage_of(variant), kind="f", ndim=2, rows=n_items, cols=dim,
                         what=f"one row per catalogue item of {layout.items.name}")


def read_user_vectors(*, layout: Layout, variant: str, split: str, n_users: int,
                      dim: int | None = None) -> np.ndarray:
    """(U, d) float32 at ``split``'s point, verified: digest, one finite row per user."""
    p = layout.user_vectors(variant, split)
    verify(p, layout=layout, stage=stage_of(variant))
    x = C.load_npy(p, stage=stage_of(variant))
    return C.check_array(x, path=p, stage=stage_of(variant), kind="f", ndim=2, rows=n_users, cols=dim,
                         what=f"one row per user of {layout.users.name}")


def has_int8(layout: Layout, *, variant: str) -> bool:
    return (present(layout.item_vectors_int8(variant), layout=layout)
            or present(layout.item_vectors_scales(variant), layout=layout))


def read_int8(*, layout: Layout, variant: str, n_items: int, dim: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(q (N, d) int8, scales (N,) f32 finite), verified."""
    qp, sp = layout.item_vectors_int8(variant), layout.item_vectors_scales(variant)
    for p in (qp, sp):
        verify(p, layout=layout, stage=stage_of(variant))
    q = C.check_array(C.load_npy(qp, stage=stage_of(variant)), path=qp, stage=stage_of(variant), kind="i", ndim=2,
                      rows=n_items, cols=dim, what="one row per catalogue item")
    s = C.check_array(C.load_npy(sp, stage=stage_of(variant)), path=sp, stage=stage_of(variant), kind="f", ndim=1,
                      rows=n_items, what="one scale per catalogue item")
    return q, s


def write_user_tower(*, layout: Layout, variant: str, tensors: Mapping[str, np.ndarray],
                     metadata: Mapping[str, str]) -> Path:
    """The user tower's arrays (finite) and string metadata -> ``user_tower.safetensors``."""
    from recsys.artifacts import write_safetensors

    p = layout.user_tower(variant)
    for k, v in tensors.items():
        if v.dtype.kind == "f" and not np.isfinite(v).all():
            raise problem(p, f"tensor '{k}' has non-finite values: training diverged? nothing was written",
                          _fix(variant))
    return write_safetensors(p, dict(tensors), metadata=dict(metadata))


def has_user_tower(layout: Layout, *, variant: str) -> bool:
    return present(layout.user_tower(variant), layout=layout)


def read_user_tower(*, layout: Layout, variant: str) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """(tensors, metadata) of ``user_tower.safetensors``, verified (digest, finite floats); the shapes are
    checked by ``recsys.student.user_tower.from_tensors``."""
    from safetensors import safe_open

    from recsys.contracts.manifests import raise_from

    p = verify(layout.user_tower(variant), layout=layout, stage=stage_of(variant))
    try:
        with safe_open(str(p), framework="numpy") as f:
            meta = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no __iter__
    except Exception as e:  # safetensors raises SafetensorError on a damaged header or body
        raise raise_from(p, e, stage=stage_of(variant)) from None
    for k, v in tensors.items():
        if v.dtype.kind == "f" and not np.isfinite(v).all():
            raise problem(p, f"tensor '{k}' has non-finite values", _fix(variant))
    return tensors, meta


PRUNE_STAGE = "prune"


def prune_stage_of(variant: str) -> str:
    """Manifest stage name of ``variant``'s pruned student (not under ``student/``: it is not a variant)."""
    return f"{PRUNE_STAGE}/{variant}"


def write_pruned(*, layout: Layout, variant: str, tensors: Mapping[str, np.ndarray], metadata: Mapping[str, str],
                 items: np.ndarray, users_valid: np.ndarray, users_test: np.ndarray,
                 meta: Mapping[str, Any]) -> list[Path]:
    """The pruned model file, its vectors (finite, one width) and meta.json."""
    from recsys.artifacts import write_json, write_npy, write_safetensors

    stage = prune_stage_of(variant)
    out = []
    for path, x in ((layout.pruned_item_vectors(variant), items), (layout.pruned_user_vectors(variant, "valid"),
                    users_valid), (layout.pruned_user_vectors(variant, "test"), users_test)):
        C.check_array(np.asarray(x), path=path, stage=stage, kind="f", ndim=2, cols=items.shape[1],
                      what="the pruned towers produced it; nothing was written")
        out.append(write_npy(path, np.asarray(x, dtype=np.float32)))
    out.append(write_safetensors(layout.pruned_model(variant), dict(tensors), metadata=dict(metadata)))
    out.append(write_json(layout.pruned_meta(variant), dict(meta)))
    return out


def has_pruned(layout: Layout, *, variant: str) -> bool:
    return present(layout.pruned_meta(variant), layout=layout) or present(layout.pruned_item_vectors(variant),
                                                                             layout=layout)


def read_pruned_model(*, layout: Layout, variant: str) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """(tensors, metadata) of the pruned model file, verified (digest first; shapes by
    ``recsys.student.prune.from_tensors``)."""
    from safetensors import safe_open

    from recsys.contracts.manifests import raise_from

    stage = prune_stage_of(variant)
    p = verify(layout.pruned_model(variant), layout=layout, stage=stage)
    try:
        with safe_open(str(p), framework="numpy") as f:
            meta = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no __iter__
    except Exception as e:
        raise raise_from(p, e, stage=stage) from None
    for k, v in tensors.items():
        if v.dtype.kind == "f" and not np.isfinite(v).all():
            raise problem(p, f"tensor '{k}' has non-finite values", f"re-run the '{stage}' stage")
    return tensors, meta


def read_pruned_vectors(*, layout: Layout, variant: str, split: str, n_users: int,
                        n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """(users (U, d), items (N, d)) of the pruned student at ``split``, verified."""
    stage = prune_stage_of(variant)
    out = []
    for p, rows, what in ((layout.pruned_user_vectors(variant, split), n_users, "one row per user"),
                          (layout.pruned_item_vectors(variant), n_items, "one row per catalogue item")):
        verify(p, layout=layout, stage=stage)
        out.append(C.check_array(C.load_npy(p, stage=stage), path=p, stage=stage, kind="f", ndim=2, rows=rows,
                                 cols=out[0].shape[1] if out else None, what=what))
    return out[0], out[1]


def read_pruned_meta(*, layout: Layout, variant: str) -> dict[str, Any]:
    stage = prune_stage_of(variant)
    p = verify(layout.pruned_meta(variant), layout=layout, stage=stage)
    return C.read_json(p, stage=stage)
