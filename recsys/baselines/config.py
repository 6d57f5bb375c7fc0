"""Config of the baselines stage."""

from __future__ import annotations

import dataclasses

from recsys.config import ranged


@dataclasses.dataclass(frozen=True)
class BaselinesConfig:
    als: bool = True  # implicit ALS; the classic collaborative baseline
    als_factors: int = ranged(256, ge=1)  # as the independent Beauty reference (R@10 0.0713 / N@10 0.0388)
    als_regularization: float = ranged(0.1, ge=0)
    # reg 0.1 / alpha 20 reproduce that reference here (0.0716 / 0.0388); 0.05/10 gave 0.0694 / 0.0372
    als_alpha: float = ranged(20.0, ge=0)  # confidence = 1 + alpha * count (Hu, Koren & Volinsky 2008)
    als_iterations: int = ranged(15, ge=1)
    seed: int = ranged(0, ge=0)
