"""The contracts stay at the bottom of the library: numpy, polars, safetensors, json and the artifact
primitives only — no stage, no heavy library (so every stage, the API and the service can use them)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ALLOWED = {"__future__", "collections", "dataclasses", "hashlib", "json", "os", "struct", "pathlib", "typing",
           "numpy", "polars", "safetensors", "recsys"}


def test_contracts_import_only_light_modules() -> None:
    bad = []
    for p in (ROOT / "recsys" / "contracts").rglob("*.py"):
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 else []
            for m in names:
                top = m.split(".")[0]
                if top not in ALLOWED or (top == "recsys" and m.split(".")[1] not in ("contracts", "artifacts")):
                    bad.append(f"{p.relative_to(ROOT)}: {m}")
    assert not bad, bad


def test_importing_every_contract_loads_no_heavy_library() -> None:
    code = ("import sys, importlib, pkgutil, recsys.contracts as c\n"
            "for m in pkgutil.iter_modules(c.__path__): importlib.import_module(f'recsys.contracts.{m.name}')\n"
            "print(sorted(m for m in ('torch', 'faiss', 'lightgbm', 'transformers', 'torchrec') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]", out
