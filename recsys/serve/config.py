"""What the service accepts and how it follows the published version."""

from __future__ import annotations

import dataclasses

from recsys.config import ranged


@dataclasses.dataclass(frozen=True)
class ServeConfig:
    variant: str = "student_kd"  # the student variant served (as `recsys retrain` publishes it)
    use_ranker: bool = True  # rerank retrieved candidates with the version's LightGBM model when it has one
    max_k: int = ranged(100, ge=1)  # results per query (the ranker still sees max(k, index.k) candidates)
    max_ids: int = ranged(100, ge=1)  # user_ids / item_ids per request (sized for 1..a few per request)
    max_history: int = ranged(500, ge=1)  # items in an anonymous history (the tower reads the last history_len)
    max_body_bytes: int = ranged(64 * 1024, ge=1024)  # larger bodies get 413 before they are parsed
    reload_interval_s: float = ranged(2.0, gt=0)  # seconds between checks of `current` (retrain roots only)
