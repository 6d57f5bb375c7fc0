"""Tiny synthetic run directories with stand-in teacher files (same names and shapes as the real ones)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from stand_ins import write_teacher

from recsys.artifacts import RunDir
from recsys.data.config import DataConfig
from recsys.data.stage import run as run_data
from recsys.data.tables import load_tables


def make_run(root: Path, *, users: int = 120, items: int = 60, seed: int = 0, dim: int = 16) -> RunDir:
    """Synthetic tables + teacher stand-ins: item_emb {"raw","adapted"} and topk_valid (user,item,score,rank)."""
    rd = RunDir(root)
    run_data(DataConfig(source="synthetic", synthetic_users=users, synthetic_items=items, seed=seed), rd)
    t = load_tables(rd.layout)
    rng = np.random.default_rng(seed)
    emb = rng.normal(size=(t.n_items, dim)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    hist = t.history("valid")
    seen = set(zip(hist["user"].to_list(), hist["item"].to_list()))
    rows = []
    for u in range(t.n_users):
        s = emb @ emb[hist.filter(pl.col("user") == u)["item"].to_numpy()].mean(0)
        order = [i for i in np.argsort(-s) if (u, i) not in seen][:10]
        rows += [(u, int(i), float(s[i]), r) for r, i in enumerate(order)]
    topk = pl.DataFrame(rows, schema={"user": pl.Int32, "item": pl.Int32, "score": pl.Float32, "rank": pl.Int32},
                        orient="row")
    write_teacher(rd, raw=emb, adapted=emb[:, :8].copy(), topk={"valid": topk})
    return rd


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> RunDir:
    return make_run(tmp_path_factory.mktemp("student_run"))
