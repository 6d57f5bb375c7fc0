from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from recsys.artifacts import read_safetensors
from recsys.data.tables import load_tables
from recsys.teacher.config import TeacherConfig
from recsys.teacher.stage import run


def test_stage_writes_contract_files_and_skips_when_fresh(syn_run, tiny_bert: Path, tmp_path: Path) -> None:
    cfg = TeacherConfig(model_path=str(tiny_bert), cache_dir=str(tmp_path / "cache"), adapter_epochs=2,
                        adapter_batch=64, topk=20, threads=1)
    stats = run(cfg, syn_run)
    t = load_tables(syn_run.layout)
    d = syn_run.layout.stage_dir("teacher")
    items = read_safetensors(d / "item_emb.safetensors")
    users = read_safetensors(d / "user_emb.safetensors")
    assert set(items) == {"raw", "adapted"} and items["raw"].shape == (t.n_items, 16)
    assert set(users) == {"raw_valid", "raw_test", "adapted_valid", "adapted_test"}
    for v in [*items.values(), *users.values()]:
        assert v.dtype == np.float32 and v.shape[0] in (t.n_items, t.n_users)
        norms = np.linalg.norm(v, axis=1)
        assert np.all((np.abs(norms - 1) < 1e-4) | (norms == 0))
    for split in ("valid", "test"):
        top = pl.read_parquet(d / f"topk_{split}.parquet")
        assert top.schema == pl.Schema({"user": pl.Int32, "item": pl.Int32, "score": pl.Float32, "rank": pl.Int32})
        assert top.group_by("user").len()["len"].max() == 20
        assert top.join(t.history(split).select("user", "item"), on=["user", "item"]).height == 0
    assert stats["encoded_new"] == t.n_items and set(stats["metrics"]) == {"raw_valid", "adapted_valid"}
    rec = syn_run.stage_record("teacher")
    assert rec["user_mode"] == "pooled" and len(rec["outputs"]) == 5  # + the fitted adapter's weights
    mtime = (d / "item_emb.safetensors").stat().st_mtime_ns
    run(cfg, syn_run)  # fresh: skipped, nothing rewritten
    assert (d / "item_emb.safetensors").stat().st_mtime_ns == mtime
    again = run(cfg, syn_run, force=True)  # rerun: every text from the cache
    assert again["encoded_new"] == 0 and again["from_cache"] == t.n_items
    np.testing.assert_array_equal(read_safetensors(d / "item_emb.safetensors")["raw"], items["raw"])


def test_stage_text_user_mode(syn_run, tiny_bert: Path, tmp_path: Path) -> None:
    cfg = TeacherConfig(model_path=str(tiny_bert), cache_dir=str(tmp_path / "cache"), adapter_epochs=0,
                        user_mode="text", topk=5, threads=1)
    stats = run(cfg, syn_run)
    t = load_tables(syn_run.layout)
    users = read_safetensors(syn_run.layout.stage_dir("teacher") / "user_emb.safetensors")
    assert users["raw_valid"].shape == (t.n_users, 16)
    assert stats["encoded_new"] > t.n_items  # item texts + history texts
    assert not np.allclose(users["raw_valid"], users["raw_test"])


def test_stage_refuses_items_without_text_in_one_paragraph(tiny_bert: Path, tmp_path: Path) -> None:
    """Tables prepared without a catalogue (`recsys prepare` allows it): the teacher names the file and the fix
    instead of a polars SchemaError from an empty cache lookup."""
    import pytest

    from recsys.artifacts import RunDir
    from recsys.data.config import DataConfig
    from recsys.data.errors import DataError
    from recsys.data.stage import run as data_run

    log = tmp_path / "log.csv"
    log.write_text("user_id,item_id,timestamp\n" + "".join(f"{u},{i},{1_600_000_000 + k}\n" for u in "abc"
                                                            for k, i in enumerate("wxyz")))
    rd = RunDir(tmp_path / "run")
    data_run(DataConfig(source="table", path=str(log), kcore=0), rd)
    cfg = TeacherConfig(model_path=str(tiny_bert), cache_dir=str(tmp_path / "cache"), threads=1)
    with pytest.raises(DataError) as e:
        run(cfg, rd)
    msg = str(e.value)
    assert str(rd.layout.items) in msg and "none of the 4 items has text" in msg and "data.items_path" in msg
    assert rd.stage_record("teacher") is None


def test_adapter_fit_is_read_back_from_the_cache_and_a_damaged_entry_is_refitted(syn_run, tiny_bert: Path,
                                                                                  tmp_path: Path) -> None:
    from recsys.teacher import adapter_cache

    cfg = TeacherConfig(model_path=str(tiny_bert), cache_dir=str(tmp_path / "cache"), adapter_epochs=2,
                        adapter_batch=64, topk=20, threads=1)
    first = run(cfg, syn_run)
    d = syn_run.layout.stage_dir("teacher")
    adapted = read_safetensors(d / "item_emb.safetensors")["adapted"]
    assert first["adapter"]["from_cache"] is False
    entries = list((tmp_path / "cache" / "adapters").glob("*.safetensors"))
    assert len(entries) == 1
    again = run(cfg, syn_run, force=True)  # the same key: the fit is read back, the outputs are the same
    import json

    assert again["adapter"]["from_cache"] is True
    assert json.dumps(again["adapter"]["epochs"]) == json.dumps(first["adapter"]["epochs"])  # (epoch 0's loss: NaN)
    np.testing.assert_array_equal(read_safetensors(d / "item_emb.safetensors")["adapted"], adapted)
    state = read_safetensors(entries[0])
    meta_key = entries[0].stem
    damaged = {k: v + 1.0 for k, v in state.items()}  # other weights under the old digest
    from safetensors import safe_open
    from safetensors.numpy import save_file

    with safe_open(str(entries[0]), framework="numpy") as f:
        save_file(damaged, str(entries[0]), metadata=f.metadata())
    assert adapter_cache.load(cache_dir=cfg.cache_dir, key=meta_key) is None  # refused
    third = run(cfg, syn_run, force=True)
    assert third["adapter"]["from_cache"] is False  # fitted again, and the entry rewritten
    np.testing.assert_array_equal(read_safetensors(d / "item_emb.safetensors")["adapted"], adapted)
    assert adapter_cache.load(cache_dir=cfg.cache_dir, key=meta_key) is not None


def test_adapter_from_applies_another_runs_fitted_adapter_without_fitting(syn_run, tiny_bert: Path,
                                                                          tmp_path: Path) -> None:
    import dataclasses
    import shutil

    import pytest

    from recsys.artifacts import RunDir
    from recsys.config import ConfigError
    from recsys.contracts import ArtifactError
    from recsys.contracts import teacher as T

    cfg = TeacherConfig(model_path=str(tiny_bert), cache_dir=str(tmp_path / "cache"), adapter_epochs=2,
                        adapter_batch=64, topk=20, threads=1)
    shutil.copytree(syn_run.root, tmp_path / "src")  # (syn_run is shared by this module's tests: not damaged)
    src = RunDir(tmp_path / "src")
    run(cfg, src, force=True)
    state, kind = T.read_adapter(layout=src.layout)
    assert kind == "linear" and state
    want = read_safetensors(src.layout.teacher_items)["adapted"]
    shutil.copytree(syn_run.root, tmp_path / "other", ignore=shutil.ignore_patterns("teacher"))
    other = RunDir(tmp_path / "other")  # the same tables in another run directory (a retrain's candidate)
    reuse = dataclasses.replace(cfg, adapter_from=str(src.root), cache_dir=str(tmp_path / "empty_cache"))
    stats = run(reuse, other)
    assert stats["adapter"]["reused_from"] == str(src.root) and stats["adapter"]["epochs"] == []
    np.testing.assert_array_equal(read_safetensors(other.layout.teacher_items)["adapted"], want)
    assert T.read_adapter(layout=other.layout)[0].keys() == state.keys()  # written again: the run is self-contained
    assert not (tmp_path / "empty_cache" / "adapters").exists()  # nothing fitted
    with pytest.raises(ConfigError, match="teacher.adapter_from"):
        run(dataclasses.replace(reuse, adapter_from=str(tmp_path / "nowhere")), other, force=True)
    blob = src.layout.teacher_adapter.read_bytes()
    src.layout.teacher_adapter.write_bytes(blob[:-8] + bytes(8))  # damaged after it was recorded
    with pytest.raises(ArtifactError, match="adapter.safetensors"):
        run(reuse, other, force=True)
