"""Request and response bodies. Strict: unknown fields, wrong types and out-of-range values are 422s.

Limits come from ``ServeConfig`` (checked in ``check_limits``, since they are per deployment).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, model_validator

from recsys.serve.config import ServeConfig


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class RecommendRequest(Strict):
    """Known users (``user_ids``) or one anonymous session (``history``: item ids, oldest first)."""

    user_ids: list[str] | None = None
    history: list[str] | None = None
    k: int = 10
    exclude_seen: bool = True

    @model_validator(mode="after")
    def _one_of(self) -> RecommendRequest:
        if (self.user_ids is None) == (self.history is None):
            raise ValueError("give exactly one of 'user_ids' (known users) or 'history' (an anonymous session)")
        return self


class SimilarRequest(Strict):
    item_ids: list[str]
    k: int = 10


class Item(BaseModel):
    item_id: str
    score: float


class UserResult(BaseModel):
    user_id: str | None  # None for an anonymous history
    fallback: bool  # True: unknown user / no known item in the history -> most popular items
    items: list[Item]


class ItemResult(BaseModel):
    item_id: str
    fallback: bool  # True: unknown item -> most popular items
    items: list[Item]


class RecommendResponse(BaseModel):
    version: str
    reranked: bool
    results: list[UserResult]
    ignored_history_items: list[str] | None = None  # history ids not in the served catalogue


class SimilarResponse(BaseModel):
    version: str
    results: list[ItemResult]


def check_limits(req: RecommendRequest | SimilarRequest, cfg: ServeConfig) -> str | None:
    """The first violated limit as a message, or None."""
    if not 1 <= req.k <= cfg.max_k:
        return f"k={req.k}: must be in 1..{cfg.max_k}"
    if isinstance(req, SimilarRequest):
        ids, name, most = req.item_ids, "item_ids", cfg.max_ids
    elif req.user_ids is not None:
        ids, name, most = req.user_ids, "user_ids", cfg.max_ids
    else:
        ids, name, most = req.history or [], "history", cfg.max_history
    if not 1 <= len(ids) <= most:
        return f"{name}: {len(ids)} ids; send 1..{most} per request"
    return None
