"""Errors of the index stage; messages say what differs and what to do."""

from __future__ import annotations

from recsys.artifacts import ArtifactError


class MetricMismatchError(ValueError):
    """The index's similarity is not the one the model was trained with (e.g. L2 over an inner-product model)."""


class IndexMismatchError(ArtifactError):
    """A saved index does not belong to the vectors it is loaded with (checksum, dim, metric or count)."""
