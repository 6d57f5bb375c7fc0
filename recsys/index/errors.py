"""Errors of the index stage; messages say what differs and what to do."""

from __future__ import annotations

from recsys.contracts.index import IndexMismatchError

__all__ = ["IndexMismatchError", "MetricMismatchError"]


class MetricMismatchError(ValueError):
    """The index's similarity is not the one the model was trained with (e.g. L2 over an inner-product model)."""
