"""What the service accepts and how it follows the published version."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class ServeConfig:
    variant: str = "student_kd"  # the student variant served (as `recsys retrain` publishes it)
    use_ranker: bool = True  # rerank retrieved candidates with the version's LightGBM model when it has one
    max_k: int = 100  # results per query; the index retrieves max(k, index.k) candidates for the ranker
    max_ids: int = 100  # user_ids / item_ids per request (the service is sized for 1..a few per request)
    max_history: int = 500  # items in an anonymous history (the tower reads the last student.history_len)
    max_body_bytes: int = 64 * 1024  # larger bodies get 413 before they are parsed
    reload_interval_s: float = 2.0  # how often `current` is checked for a new version (retrain roots only)
