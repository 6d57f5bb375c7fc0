"""Teacher encoding under torchrun: 2 CPU processes write the same embeddings as 1, bitwise (fp32)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from recsys.artifacts import RunDir, read_safetensors
from recsys.data.tables import load_tables
from recsys.teacher.config import TeacherConfig
from recsys.teacher.encoder import assign_batches, plan_batches
from recsys.teacher.stage import run


def _copy(src: RunDir, dst: Path) -> RunDir:
    shutil.copytree(src.root, dst, ignore=shutil.ignore_patterns("teacher"))
    return RunDir(dst)


def test_two_processes_write_bitwise_the_embeddings_of_one(syn_run, tiny_bert: Path, tmp_path: Path) -> None:
    # batch_size 4: many small batches, so both ranks get a share; text users: three groups go through the cache
    base = dict(model_path=str(tiny_bert), adapter_epochs=0, user_mode="text", topk=10, batch_size=4, max_tokens=32)
    one, two = _copy(syn_run, tmp_path / "one"), _copy(syn_run, tmp_path / "two")
    s1 = run(TeacherConfig(**base, cache_dir=str(tmp_path / "c1"), threads=2), one)
    s2 = run(TeacherConfig(**base, cache_dir=str(tmp_path / "c2"), nproc=2, threads=1), two)
    for name in ("item_emb", "user_emb"):
        a = read_safetensors(one.layout.stage_dir("teacher") / f"{name}.safetensors")
        b = read_safetensors(two.layout.stage_dir("teacher") / f"{name}.safetensors")
        assert set(a) == set(b)
        for k in a:
            assert a[k].dtype == b[k].dtype == np.float32 and np.array_equal(a[k], b[k]), (name, k)
    t = load_tables(two.layout)
    assert s1["encoded_new"] == s2["encoded_new"] > t.n_items  # items + distinct user texts, each encoded once
    d = s2["distributed"]
    assert d["world_size"] == 2 and len(d["per_rank"]) == 2
    assert sum(r["texts"] for r in d["per_rank"]) == s2["encoded_new"]
    assert min(r["texts"] for r in d["per_rank"]) > 0  # both ranks really encoded
    assert two.stage_record("teacher")["key"] == one.stage_record("teacher")["key"]  # nproc is not in the key
    assert run(TeacherConfig(**base, cache_dir=str(tmp_path / "c2"), nproc=2, threads=1), two) == s2  # fresh: skipped


def test_batches_are_dealt_whole_and_balanced_by_tokens() -> None:
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 60, size=500)
    batches = plan_batches(lengths, token_budget=256)
    owner = assign_batches(batches, lengths, world=3)
    tokens = np.zeros(3)
    for b, r in zip(batches, owner):
        tokens[r] += len(b) * lengths[b[0]]
    assert tokens.sum() == lengths.sum()
    assert tokens.max() - tokens.min() <= max(len(b) * lengths[b[0]] for b in batches)  # within one batch
    assert np.array_equal(owner, assign_batches(batches, lengths, world=3))  # every rank computes the same deal
    with pytest.raises(ValueError):
        plan_batches([0, 3], token_budget=8)
