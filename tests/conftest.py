"""Suite-wide: make the shared test helpers (``tests/stand_ins.py``) importable from every test folder."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)
