"""The search space as data: check it against the config it sets, sample it from an Optuna trial.

Optuna is not imported here: ``sample`` takes any object with Optuna's ``suggest_*`` methods.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal, get_args, get_origin, get_type_hints

from recsys.config import ConfigError, field_range
from recsys.tune.config import Choice, FloatRange, IntChoice, IntRange, Knob, SearchSpace

Value = float | int | str


def knobs(space: SearchSpace) -> dict[str, Knob]:
    """The knobs that are on, by name (declaration order)."""
    return {f.name: getattr(space, f.name) for f in dataclasses.fields(space) if getattr(space, f.name).on}


def check(space: SearchSpace, *, target: type, prefix: str = "tune.space.", target_prefix: str = "student.") -> None:
    """Raise ``ConfigError`` naming the key when a knob is malformed (lo > hi, log with lo <= 0, no values),
    names no field of ``target`` (a frozen config dataclass), or reaches outside that field's declared range
    or ``Literal`` values."""
    fields = {f.name: f for f in dataclasses.fields(target)}
    hints = get_type_hints(target)
    if not knobs(space):
        raise ConfigError(f"config key '{prefix.rstrip('.')}': every knob is off; turn one on "
                          f"({prefix}<name>.on=true)")
    for name, k in knobs(space).items():
        key = prefix + name
        if name not in fields:
            raise ConfigError(f"config key '{key}': {target.__name__} has no field '{name}' to tune")
        if isinstance(k, (FloatRange, IntRange)):
            if k.lo > k.hi:
                raise ConfigError(f"config key '{key}': lo {k.lo!r} is above hi {k.hi!r}; give lo <= hi")
            if isinstance(k, FloatRange) and k.log and k.lo <= 0:
                raise ConfigError(f"config key '{key}': a log range needs lo > 0, got {k.lo!r}")
            if isinstance(k, IntRange) and k.step < 1:
                raise ConfigError(f"config key '{key}.step': {k.step!r} must be >= 1")
            ends: tuple[Value, ...] = (k.lo, k.hi)
        else:
            if not k.values:
                raise ConfigError(f"config key '{key}.values': empty; give at least one value")
            ends = k.values
        rng = field_range(fields[name])
        allowed = get_args(hints[name]) if get_origin(hints[name]) is Literal else None
        for v in ends:
            if rng is not None and isinstance(v, (int, float)) and v not in rng:
                raise ConfigError(f"config key '{key}': {v!r} is outside {target_prefix}{name}'s range "
                                  f"({rng.describe()})")
            if allowed is not None and v not in allowed:
                raise ConfigError(f"config key '{key}': {v!r} is not one of {target_prefix}{name}'s values "
                                  f"{list(allowed)}")


def sample(space: SearchSpace, trial: Any) -> dict[str, Value]:
    """One point of the space from an Optuna trial (``trial.suggest_*``)."""
    out: dict[str, Value] = {}
    for name, k in knobs(space).items():
        if isinstance(k, FloatRange):
            out[name] = float(trial.suggest_float(name, k.lo, k.hi, log=k.log))
        elif isinstance(k, IntRange):
            out[name] = int(trial.suggest_int(name, k.lo, k.hi, step=k.step))
        elif isinstance(k, (Choice, IntChoice)):
            out[name] = trial.suggest_categorical(name, list(k.values))
        else:  # pragma: no cover - Knob is closed
            raise TypeError(f"unknown knob type {type(k).__name__}")
    return out


def contains(space: SearchSpace, params: dict[str, Value]) -> bool:
    """True when every knob's value in ``params`` lies in the knob (the base config's point, for trial 0)."""
    for name, k in knobs(space).items():
        v = params.get(name)
        if isinstance(k, (FloatRange, IntRange)):
            if not isinstance(v, (int, float)) or not k.lo <= v <= k.hi:
                return False
            if isinstance(k, IntRange) and (int(v) - k.lo) % k.step:
                return False
        elif v not in k.values:
            return False
    return True
