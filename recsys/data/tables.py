"""Read the prepared tables of a run directory (the data stage's output) for later stages.

The reading and its checks (digest recorded by the data stage, columns, id maps, id ranges) live in
``recsys.contracts.tables``; this module keeps the names stages import.
"""

from __future__ import annotations

from recsys.contracts.layout import Layout
from recsys.contracts.tables import Split, Tables
from recsys.contracts.tables import read as _read

__all__ = ["Split", "Tables", "load_tables"]


def load_tables(layout: Layout) -> Tables:
    """Items, users and splits of the run at ``layout``, verified before use (ArtifactError naming the file)."""
    return _read(layout=layout)
