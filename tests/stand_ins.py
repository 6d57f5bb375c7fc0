"""Stand-in artifacts for tests: student and teacher files written through ``recsys.contracts`` and recorded
in the run manifest like any stage's outputs, so every reader verifies them as it would real ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from recsys.artifacts import RunDir
from recsys.contracts import student as S
from recsys.contracts import teacher as T
from recsys.data.tables import load_tables

# The teacher stage's defaults (TeacherConfig): what a stand-in teacher claims it pooled with.
TEACHER_META = T.TeacherMeta(model="stand-in", pooling="none", user_mode="pooled", history_n=20,
                             recency_decay=0.5, adapter_temperature=0.05)


def record(rd: RunDir, stage: str, paths: list[Path]) -> None:
    """Record stand-in files as ``stage``'s outputs (their sha256 goes into the manifest)."""
    rd.record(stage, key=f"stand-in:{stage}", config={"stand_in": True}, outputs=paths, seconds=0.0)


def write_teacher(rd: RunDir, *, raw: np.ndarray, adapted: np.ndarray, users: dict[str, np.ndarray] | None = None,
                  topk: dict[str, pl.DataFrame] | None = None) -> list[Path]:
    outs = T.write(layout=rd.layout, raw_items=raw, adapted_items=adapted, users=users, topk=topk,
                   meta=TEACHER_META)
    record(rd, "teacher", outs)
    return outs


def write_stand_in_run(root: object, *, variant: str = "student_kd", dim: int = 16, teacher_dim: int = 24,
                       teacher_k: int = 50, seed: int = 0) -> None:
    """Student and teacher artifacts over the tables already in ``root`` (run the data stage first). Item
    vectors cluster by leaf category; a user vector is the mean of the user's history item vectors at that
    point, so retrieval is meaningful but imperfect."""
    rd = RunDir(Path(str(root)))
    lay = rd.layout
    t = load_tables(lay)
    rng = np.random.default_rng(seed)
    leaf = t.items["categories"].list.last().fill_null("").to_numpy()
    _, cat = np.unique(leaf, return_inverse=True)

    def item_space(d: int) -> np.ndarray:
        centres = rng.standard_normal((cat.max() + 1, d)).astype(np.float32)
        return (centres[cat] + 0.7 * rng.standard_normal((t.n_items, d))).astype(np.float32)

    def user_space(items: np.ndarray, split: str) -> np.ndarray:
        h = t.history(split)  # type: ignore[arg-type]
        out = np.zeros((t.n_users, items.shape[1]), np.float32)
        np.add.at(out, h["user"].to_numpy(), items[h["item"].to_numpy()])
        n = np.bincount(h["user"].to_numpy(), minlength=t.n_users)[:, None]
        return out / np.maximum(n, 1)

    iv = item_space(dim)
    outs = S.write_vectors(layout=lay, variant=variant, items=iv, users_valid=user_space(iv, "valid"),
                           users_test=user_space(iv, "test"))
    outs.append(S.write_meta(layout=lay, variant=variant,
                             meta={"metric": "ip", "dim": dim, "variant": variant, "stand_in": True}))
    record(rd, S.stage_of(variant), outs)
    items = {"raw": item_space(teacher_dim), "adapted": item_space(teacher_dim)}
    items = {k: v / np.linalg.norm(v, axis=1, keepdims=True) for k, v in items.items()}
    users = {f"{sp}_{split}": user_space(items[sp], split) for sp in items for split in ("valid", "test")}
    topk = {}
    for split in ("valid", "test"):
        sc = users[f"adapted_{split}"] @ items["adapted"].T
        h = t.history(split)  # type: ignore[arg-type]
        sc[h["user"].to_numpy(), h["item"].to_numpy()] = -np.inf
        kk = min(teacher_k, t.n_items)
        top = np.argsort(-sc, axis=1, kind="stable")[:, :kk]
        topk[split] = pl.DataFrame({
            "user": np.repeat(np.arange(t.n_users, dtype=np.int32), kk),
            "item": top.ravel().astype(np.int32),
            "score": np.take_along_axis(sc, top, 1).ravel().astype(np.float32),
            "rank": np.tile(np.arange(kk, dtype=np.int32), t.n_users),
        }).filter(pl.col("score").is_finite())
    write_teacher(rd, raw=items["raw"], adapted=items["adapted"], users=users, topk=topk)


def write_rank_run(root: Path, *, users: int, items: int, k: int) -> RunDir:
    """A synthetic shop's tables, stand-in student and teacher files and an exact (flat) index with top-``k``
    candidates: what the rank stage reads."""
    from recsys.data import stage as data_stage
    from recsys.data.config import DataConfig
    from recsys.index import IndexConfig
    from recsys.index import stage as index_stage

    rd = RunDir(root)
    data_stage.run(DataConfig(source="synthetic", synthetic_users=users, synthetic_items=items), rd)
    write_stand_in_run(rd.root)
    index_stage.run(IndexConfig(kind="flat", k=k), rd)
    return rd
