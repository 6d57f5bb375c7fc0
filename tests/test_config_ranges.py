"""Every numeric config field declares its range (``recsys.config.ranged``); loading refuses values outside it."""

from __future__ import annotations

import dataclasses
import importlib
import types
import typing
from pathlib import Path

import pytest

from recsys.config import ConfigError, build, field_range, load, ranged

ROOT = Path(__file__).resolve().parents[1]
CONFIG_MODULES = [f"recsys.{p.parent.name}.config" for p in sorted((ROOT / "recsys").glob("*/config.py"))]
CONFIG_MODULES += ["pipelines.config"]


def _config_classes() -> list[type]:
    out = []
    for name in CONFIG_MODULES:
        mod = importlib.import_module(name)
        out += [c for c in vars(mod).values()
                if isinstance(c, type) and dataclasses.is_dataclass(c) and c.__module__ == name]
    return out


def _is_numeric(tp: object) -> bool:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType, tuple, list):
        return any(_is_numeric(a) for a in typing.get_args(tp) if a is not type(None) and a is not Ellipsis)
    return tp in (int, float)


def test_the_discovery_finds_every_stage_config() -> None:
    names = {c.__name__ for c in _config_classes()}
    assert {"DataConfig", "TeacherConfig", "StudentConfig", "IndexConfig", "RankConfig", "EvalConfig",
            "BaselinesConfig", "GateConfig", "PublishConfig", "PipelineConfig", "RetrainConfig"} <= names


def test_every_numeric_field_of_every_config_declares_a_range() -> None:
    missing, checked = [], 0
    for cls in _config_classes():
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if _is_numeric(hints[f.name]):
                checked += 1
                if field_range(f) is None:
                    missing.append(f"{cls.__module__}.{cls.__name__}.{f.name}")
    assert checked > 80, checked
    assert not missing, f"declare a range with recsys.config.ranged(default, ge=/gt=/le=/lt=): {missing}"


def _pipeline() -> type:
    from pipelines.config import PipelineConfig

    return PipelineConfig


@pytest.mark.parametrize(("override", "expected"), [
    ("student.epochs=-1", "config key 'student.epochs': -1 is out of range; it must be >= 0"),
    ("student.batch_size=-1", "config key 'student.batch_size': -1 is out of range; it must be >= 1"),
    ("data.kcore=-3", "config key 'data.kcore': -3 is out of range; it must be >= 0"),
    ("data.valid_days=-1", "config key 'data.valid_days': -1.0 is out of range; it must be > 0"),
    ("data.test_days=-7", "config key 'data.test_days': -7.0 is out of range; it must be > 0"),
    ("data.cold_item_share=2", "config key 'data.cold_item_share': 2.0 is out of range; it must be >= 0 and < 1"),
    ("data.cold_item_share=1", "config key 'data.cold_item_share': 1.0 is out of range; it must be >= 0 and < 1"),
    ("data.cold_item_share=-0.1", "config key 'data.cold_item_share': -0.1 is out of range"),
    ("index.k=-5", "config key 'index.k': -5 is out of range; it must be >= 1"),
    ("eval.ks=10,0", "config key 'eval.ks': 0 in (10, 0) is out of range; it must be >= 1"),
    ("student.lr=nan", "config key 'student.lr': nan is out of range; it must be > 0"),
    ("student.train_since=-4", "config key 'student.train_since': -4 is out of range; it must be >= 0"),
])
def test_out_of_range_override_is_refused_naming_the_key(override: str, expected: str) -> None:
    with pytest.raises(ConfigError) as e:
        load(_pipeline(), overrides=[override])
    assert str(e.value).startswith(expected), str(e.value)


def test_boundaries_and_none_are_accepted() -> None:
    cfg = load(_pipeline(), overrides=["data.cold_item_share=0", "data.cold_item_share=0.99", "student.epochs=0",
                                       "student.train_since=none", "data.kcore=0"])
    assert cfg.data.cold_item_share == 0.99 and cfg.student.epochs == 0 and cfg.student.train_since is None


def test_out_of_range_in_a_toml_file_names_the_key(tmp_path: Path) -> None:
    p = tmp_path / "c.toml"
    p.write_text("[student]\nepochs = -1\n")
    with pytest.raises(ConfigError, match=r"'student\.epochs': -1 is out of range"):
        load(_pipeline(), path=p)


def test_ranged_refuses_a_default_outside_its_range_and_two_bounds_on_one_side() -> None:
    with pytest.raises(TypeError, match="outside its own range"):
        ranged(0, gt=0)
    with pytest.raises(TypeError, match="at most one lower bound"):
        ranged(1, ge=0, gt=0)

    @dataclasses.dataclass(frozen=True)
    class Toy:
        share: float = ranged(0.5, gt=0, lt=1)
        sizes: tuple[int, ...] = ranged((1, 2), ge=1)

    with pytest.raises(ConfigError, match=r"'toy\.share': 1\.0 is out of range; it must be > 0 and < 1"):
        build(Toy, {"share": 1}, prefix="toy.")
    assert load(Toy, overrides=["sizes=3,4"]).sizes == (3, 4)
