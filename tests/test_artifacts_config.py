"""Run directory, manifest, atomic writes, checksums and config loading."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl
import pytest

from recsys.artifacts import ArtifactError, RunDir, atomic_path, hash_obj, read_npy, write_npy, write_parquet
from recsys.config import ConfigError, load


def test_atomic_path_leaves_nothing_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert not target.exists() and list(tmp_path.iterdir()) == []


def test_stage_freshness_and_checksum_refusal(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    out = write_npy(tmp_path / "s" / "x.npy", np.arange(4, dtype=np.float32))
    run.record("s", key="k1", config={"a": 1}, outputs=[out], seconds=0.1)
    assert run.is_fresh("s", "k1") and not run.is_fresh("s", "k2")
    np.testing.assert_array_equal(read_npy(out), np.arange(4))
    out.write_bytes(out.read_bytes()[:-4])  # truncate
    assert not run.is_fresh("s", "k1")
    with pytest.raises(ArtifactError, match="x.npy: checksum differs"):
        run.verify("s")


def test_output_hash_changes_with_content(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    p = write_parquet(tmp_path / "t.parquet", pl.DataFrame({"a": [1]}))
    run.record("d", key="k", config={}, outputs=[p], seconds=0)
    h1 = run.output_hash("d")
    p = write_parquet(tmp_path / "t.parquet", pl.DataFrame({"a": [2]}))
    run.record("d", key="k", config={}, outputs=[p], seconds=0)
    assert run.output_hash("d") != h1
    assert hash_obj({"b": 1, "a": [1, 2]}) == hash_obj({"a": [1, 2], "b": 1})


@dataclasses.dataclass(frozen=True)
class Inner:
    k: int = 3
    name: str | None = None


@dataclasses.dataclass(frozen=True)
class Outer:
    inner: Inner = Inner()
    mode: Literal["a", "b"] = "a"
    ks: tuple[int, ...] = (10, 20)
    flag: bool = False


def test_config_toml_and_overrides(tmp_path: Path) -> None:
    p = tmp_path / "c.toml"
    p.write_text('mode = "b"\n[inner]\nk = 5\n')
    cfg = load(Outer, path=p, overrides=["inner.name=x", "flag=true", "ks=1,5"])
    assert cfg == Outer(inner=Inner(k=5, name="x"), mode="b", ks=(1, 5), flag=True)


@dataclasses.dataclass(frozen=True)
class Tweaked:
    inner: Inner = Inner(name="tweaked")  # a nested default that is not the nested class's own


def test_a_nested_table_overrides_the_fields_own_default_not_a_fresh_instance() -> None:
    assert load(Tweaked).inner == Inner(name="tweaked")
    assert load(Tweaked, overrides=["inner.k=7"]).inner == Inner(k=7, name="tweaked")
    assert load(Tweaked, overrides=["inner.name=x"]).inner.name == "x"


def test_the_main_jobs_students_rank_no_test_split_whatever_student_keys_are_set() -> None:
    from pipelines.config import PipelineConfig

    assert not load(PipelineConfig).student.test_metrics
    assert not load(PipelineConfig, overrides=["student.epochs=3"]).student.test_metrics
    assert load(PipelineConfig, overrides=["student.test_metrics=true"]).student.test_metrics


@pytest.mark.parametrize("override,match", [
    ("inner.kk=1", r"unknown config key\(s\) \['inner.kk'\]"),
    ("mode=c", "config key 'mode': 'c' is not one of"),
    ("inner.k=abc", "config key 'inner.k': expected an integer"),
    ("noequals", "expected key=value"),
])
def test_config_errors_name_the_key(override: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        load(Outer, overrides=[override])
