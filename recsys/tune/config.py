"""Config of ``recsys tune``: the budget, the sampler and the search space, each knob a typed range.

The space is a frozen dataclass with one field per knob, named after the ``StudentConfig`` field it sets
(``pipelines/tune.py`` checks the names and that every range lies inside the field's own declared range).
Adding a knob is one line here. Knobs off (``on = false``) keep the base config's value.
"""

from __future__ import annotations

import dataclasses

from recsys.config import ranged


@dataclasses.dataclass(frozen=True)
class FloatRange:
    """A float knob sampled in ``[lo, hi]`` (log-uniform when ``log``). The bounds take any number here; the
    target field's own range is checked against them (``recsys.tune.space.check``)."""

    lo: float = ranged(0.0)
    hi: float = ranged(0.0)
    log: bool = False
    on: bool = True


@dataclasses.dataclass(frozen=True)
class IntRange:
    """An integer knob sampled in ``lo, lo + step, ..., hi``."""

    lo: int = ranged(0)
    hi: int = ranged(0)
    step: int = ranged(1, ge=1)
    on: bool = True


@dataclasses.dataclass(frozen=True)
class Choice:
    """A categorical knob over string values (a ``Literal`` field of the target config)."""

    values: tuple[str, ...] = ()
    on: bool = True


@dataclasses.dataclass(frozen=True)
class IntChoice:
    """A categorical knob over integers (e.g. vector sizes: 32, 64, 128 rather than every integer)."""

    values: tuple[int, ...] = ranged(())
    on: bool = True


Knob = FloatRange | IntRange | Choice | IntChoice


@dataclasses.dataclass(frozen=True)
class SearchSpace:
    """The student knobs that matter (field name = ``StudentConfig`` field). Ranges are wide around the
    defaults of the release, which were hand-tuned on Beauty valid."""

    lr: FloatRange = FloatRange(5e-4, 1e-2, log=True)  # default 2e-3
    temperature: FloatRange = FloatRange(0.03, 0.2, log=True)  # default 0.07
    lambda_rank: FloatRange = FloatRange(0.0, 3.0)  # default 1.0
    id_dropout: FloatRange = FloatRange(0.0, 0.5)  # default 0.2
    epochs: IntRange = IntRange(2, 8)  # default 5 (early stopping on valid NDCG@10 still applies)
    dim: IntChoice = IntChoice((32, 64, 128))  # default 64
    negatives: Choice = Choice(("in_batch", "mixed", "full"))  # default in_batch; full is ~5x slower per epoch
    user_tower: Choice = Choice(("pooled", "sequential"))  # default pooled; sequential is ~5x slower per example


@dataclasses.dataclass(frozen=True)
class TuneConfig:
    trials: int = ranged(12, ge=1)  # completed trials the study stops at (counted over resumes)
    budget_minutes: float = ranged(60.0, gt=0)  # wall clock of one `recsys tune` invocation: no trial starts
    # after it (a running trial finishes)
    seed: int = ranged(0, ge=0)  # TPE sampler seed: the same seed and history sample the same params
    startup_trials: int = ranged(4, ge=0)  # random (seeded) trials before TPE models the history
    baseline_first: bool = True  # trial 0 = the base config's own values, so the table holds the reference
    space: SearchSpace = SearchSpace()
