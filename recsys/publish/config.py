"""Config of publishing and of the quality gate in front of it."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class GateConfig:
    """Candidate passes when ``cand >= pub * (1 - tolerance) - abs_tolerance`` on ``metric``.

    Both are measured on the same targets: the candidate's test window, i.e. the newest days of the
    logs, which neither model trained on. A relative 2 % absorbs seed noise of a small test window
    (a few hundred users) without letting a broken model through; ``abs_tolerance`` helps when the
    published figure is near zero, where a relative band is meaningless.
    """

    metric: str = "ndcg@10"  # any key of EvalResult.summary(ks=(10, 20)), e.g. recall@20
    tolerance: float = 0.02
    abs_tolerance: float = 0.0
    min_users: int = 1  # fewer test users than this: no evidence either way -> refuse (publish with force)


@dataclasses.dataclass(frozen=True)
class PublishConfig:
    keep: int = 3  # versions kept under versions/ (the current one always stays); >= 2 keeps a rollback
    keep_rejected: int = 2  # refused candidates kept under rejected/ for inspection
