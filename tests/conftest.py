"""Suite-wide: make the shared test helpers (``tests/stand_ins.py``) importable from every test folder."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)


@pytest.fixture(autouse=True)
def _drop_stream_handlers_a_test_installed() -> Iterator[None]:
    """A command's ``setup_logging`` (``basicConfig(force=True)``) binds a root handler to the stderr that pytest
    captured for that test; left in place, later tests get "--- Logging error ---" on a closed stream."""
    root = logging.getLogger()
    before = set(root.handlers)
    yield
    for h in root.handlers[:]:
        if h not in before and type(h) is logging.StreamHandler:
            root.removeHandler(h)
