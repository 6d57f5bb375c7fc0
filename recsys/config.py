"""Frozen dataclass configs, loaded from TOML with ``key.sub=value`` overrides.

Each stage owns its config dataclass (``recsys/<stage>/config.py``); this module only knows how to
build any frozen dataclass tree from a TOML table and a list of overrides, with type checking and
errors that name the offending key.
"""

from __future__ import annotations

import dataclasses
import sys
import types
import typing
from pathlib import Path
from typing import Any, TypeVar, get_args, get_origin, get_type_hints

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

T = TypeVar("T")


class ConfigError(ValueError):
    """A config file or override is malformed; the message names the key and what to do."""


@dataclasses.dataclass(frozen=True)
class Range:
    """The values a numeric config field accepts: ``lo``/``hi`` bounds (None = unbounded), each inclusive
    unless ``*_open``. A tuple field applies it to every element; an optional field to any non-None value."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False

    def __contains__(self, x: float) -> bool:
        if x != x:  # NaN is in no range
            return False
        if self.lo is not None and (x <= self.lo if self.lo_open else x < self.lo):
            return False
        return not (self.hi is not None and (x >= self.hi if self.hi_open else x > self.hi))

    def describe(self) -> str:
        lo = None if self.lo is None else f"{'>' if self.lo_open else '>='} {self.lo:g}"
        hi = None if self.hi is None else f"{'<' if self.hi_open else '<='} {self.hi:g}"
        return " and ".join(b for b in (lo, hi) if b) or "any number"


def ranged(default: Any, *, ge: float | None = None, gt: float | None = None, le: float | None = None,
           lt: float | None = None) -> Any:
    """A numeric dataclass field with its accepted range, checked when a config is loaded::

        epochs: int = ranged(5, ge=0)  # 0 = export the initial model (retrain's refresh)
        share: float = ranged(0.0, ge=0, lt=1)

    ``ge``/``le`` are inclusive bounds, ``gt``/``lt`` exclusive; give at most one per side.
    """
    if ge is not None and gt is not None or le is not None and lt is not None:
        raise TypeError("ranged(): give at most one lower bound (ge/gt) and one upper bound (le/lt)")
    rng = Range(lo=ge if gt is None else gt, hi=le if lt is None else lt, lo_open=gt is not None,
                hi_open=lt is not None)
    if not (default is None or isinstance(default, tuple) and all(v in rng for v in default)
            or not isinstance(default, tuple) and default in rng):
        raise TypeError(f"ranged(): default {default!r} is outside its own range ({rng.describe()})")
    return dataclasses.field(default=default, metadata={"range": rng})


def field_range(f: dataclasses.Field[Any]) -> Range | None:
    """The declared range of a dataclass field, or None."""
    return f.metadata.get("range")


def check_ranges(obj: Any, *, prefix: str = "") -> None:
    """Raise ``ConfigError`` naming the key when a numeric field of ``obj`` (a config dataclass, nested
    ones included) is outside its declared range."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        key = prefix + f.name
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            check_ranges(value, prefix=f"{key}.")
            continue
        rng = field_range(f)
        if rng is None or value is None:
            continue
        values = value if isinstance(value, (tuple, list)) else (value,)
        for v in values:
            if isinstance(v, (int, float)) and not isinstance(v, bool) and v not in rng:
                shown = f"{value!r}" if len(values) == 1 else f"{v!r} in {value!r}"
                raise ConfigError(f"config key '{key}': {shown} is out of range; it must be {rng.describe()} "
                                  f"(set {key}=<value> or fix it in the config file)")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin is typing.Union or origin is types.UnionType:
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        if isinstance(value, str) and value.lower() in {"none", "null"} and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(f"config key '{key}': {value!r} fits none of {tp}")
    if origin is typing.Literal:
        allowed = get_args(tp)
        if value not in allowed:
            raise ConfigError(f"config key '{key}': {value!r} is not one of {list(allowed)}")
        return value
    if origin in (tuple, list):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        args = get_args(tp)
        inner = args[0] if args else Any
        seq = [_coerce(v, inner, key) for v in value]
        return tuple(seq) if origin is tuple else seq
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"config key '{key}': expected a table, got {value!r}")
        return build(tp, value, prefix=f"{key}.")
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in {"true", "1", "yes", "false", "0", "no"}:
            return value.lower() in {"true", "1", "yes"}
        raise ConfigError(f"config key '{key}': expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"config key '{key}': expected an integer, got {value!r}")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"config key '{key}': expected an integer, got {value!r}") from None
    if tp is float:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"config key '{key}': expected a number, got {value!r}") from None
    if tp is str:
        return str(value)
    if tp is Path:
        return Path(value)
    return value


def build(cls: type[T], table: dict[str, Any], *, prefix: str = "") -> T:
    """Build dataclass ``cls`` from a (nested) dict, rejecting unknown keys."""
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = set(table) - names
    if unknown:
        raise ConfigError(
            f"unknown config key(s) {sorted(prefix + u for u in unknown)}; valid keys here: {sorted(names)}"
        )
    kwargs = {k: _coerce(v, hints[k], prefix + k) for k, v in table.items()}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        # a nested table overrides its keys on the field's own default (e.g. PipelineConfig's student sets
        # test_metrics = false), not on a fresh instance of the nested class
        if f.name in kwargs and isinstance(table[f.name], dict) and dataclasses.is_dataclass(f.default):
            kwargs[f.name] = dataclasses.replace(f.default, **{k: getattr(kwargs[f.name], k) for k in table[f.name]})
    obj = cls(**kwargs)
    check_ranges(obj, prefix=prefix)
    return obj


def _set_path(table: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    cur = table
    for p in parts[:-1]:
        cur = cur.setdefault(p, {})
        if not isinstance(cur, dict):
            raise ConfigError(f"override '{dotted}': '{p}' is not a table")
    cur[parts[-1]] = value


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """``["student.epochs=3", "data.split=temporal"]`` -> nested dict (values stay strings; types come later)."""
    table: dict[str, Any] = {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}': expected key=value, e.g. student.epochs=3")
        k, v = item.split("=", 1)
        _set_path(table, k.strip(), v.strip())
    return table


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Nested tables: ``extra``'s keys over ``base``'s, table by table (what ``load`` does to a file and its
    overrides)."""
    return _merge(base, extra)


def load(cls: type[T], *, path: str | Path | None = None, overrides: list[str] | None = None) -> T:
    """Load ``cls`` from an optional TOML file, then apply ``key=value`` overrides."""
    table: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.exists():
            raise ConfigError(f"config file {p} does not exist")
        try:
            table = tomllib.loads(p.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"config file {p}: invalid TOML ({e})") from None
    table = _merge(table, parse_overrides(overrides or []))
    return build(cls, table)


def _toml_value(v: Any, key: str) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v) if v == v and abs(v) != float("inf") else "nan" if v != v else "inf" if v > 0 else "-inf"
    if isinstance(v, (str, Path)):
        s = str(v)
        return '"' + "".join(c if c not in '"\\' and c.isprintable() else f"\\u{ord(c):04x}" for c in s) + '"'
    if isinstance(v, (tuple, list)):
        return "[" + ", ".join(_toml_value(x, key) for x in v) + "]"
    raise ConfigError(f"config key '{key}': {v!r} cannot be written as TOML")


def dumps(obj: Any) -> str:
    """A frozen dataclass tree as TOML that ``load(type(obj), path=...)`` reads back equal: scalars and tuples
    first, then one ``[table]`` per nested dataclass. A None field is left out when it defaults to None, else
    written as ``"none"`` (what the loader reads as None for an optional field)."""
    if not dataclasses.is_dataclass(obj) or isinstance(obj, type):
        raise TypeError(f"dumps(): expected a dataclass instance, got {type(obj).__name__}")
    lines: list[str] = []

    def table(node: Any, prefix: str) -> None:
        nested = []
        for f in dataclasses.fields(node):
            v, key = getattr(node, f.name), prefix + f.name
            if dataclasses.is_dataclass(v) and not isinstance(v, type):
                nested.append((f.name, v))
            elif v is None:
                if f.default is not None:  # TOML has no null; the loader reads "none" as None for Optional fields
                    lines.append(f'{f.name} = "none"')
            else:
                lines.append(f"{f.name} = {_toml_value(v, key)}")
        for name, v in nested:
            lines.extend(["", f"[{prefix}{name}]"])
            table(v, f"{prefix}{name}.")

    table(obj, "")
    return "\n".join(lines).lstrip("\n") + "\n"
