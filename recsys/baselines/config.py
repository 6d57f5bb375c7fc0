"""Config of the baselines stage."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class BaselinesConfig:
    als: bool = True  # implicit ALS; the classic collaborative baseline
    als_factors: int = 256  # as the independent Beauty reference (R@10 0.0713 / N@10 0.0388)
    als_regularization: float = 0.1
    # reg 0.1 / alpha 20 reproduce that reference here (0.0716 / 0.0388); 0.05/10 gave 0.0694 / 0.0372
    als_alpha: float = 20.0  # confidence = 1 + alpha * count (Hu, Koren & Volinsky 2008)
    als_iterations: int = 15
    recent_days: float = 30.0  # "recent popularity" window for the ranker's features and the report
    seed: int = 0
