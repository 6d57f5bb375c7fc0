"""Architecture rules from DESIGN.md, checked on the source: stages meet only through files."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGES = {"teacher", "student", "index", "rank", "eval", "baselines"}
# Modules every stage may use: shared plumbing, pure metrics and the reader of the data stage's tables.
SHARED = ("recsys.artifacts", "recsys.config", "recsys.metrics", "recsys.data.tables", "recsys.data.schema")
HEAVY = {"torch", "torchrec", "fbgemm_gpu", "transformers", "faiss", "lightgbm", "implicit"}


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(module, at_top_level) for every import in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top = {id(n) for n in tree.body}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, id(node) in top) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.module, id(node) in top))
    return out


def test_library_never_imports_pipelines() -> None:
    bad = [(p, m) for p in (ROOT / "recsys").rglob("*.py") for m, _ in _imports(p) if m.split(".")[0] == "pipelines"]
    assert not bad, bad


def test_stages_do_not_import_sibling_stages() -> None:
    bad = []
    for stage in STAGES:
        for p in (ROOT / "recsys" / stage).rglob("*.py"):
            for m, _ in _imports(p):
                parts = m.split(".")
                if parts[0] == "recsys" and len(parts) > 1 and parts[1] in STAGES and parts[1] != stage:
                    bad.append((str(p.relative_to(ROOT)), m))
    assert not bad, bad


def test_heavy_imports_stay_out_of_light_modules() -> None:
    light = [ROOT / "recsys" / "artifacts.py", ROOT / "recsys" / "config.py", ROOT / "recsys" / "metrics.py",
             *(ROOT / "recsys" / "data").rglob("*.py"), *(ROOT / "recsys" / "eval").rglob("*.py")]
    bad = [(str(p.relative_to(ROOT)), m) for p in light for m, _ in _imports(p) if m.split(".")[0] in HEAVY]
    assert not bad, bad


def test_importing_the_data_and_eval_stages_loads_no_heavy_library() -> None:
    code = ("import sys, recsys.data.stage, recsys.eval.stage, recsys.metrics, pipelines.cli\n"
            f"print(sorted(m for m in {sorted(HEAVY)!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]", out


def test_nothing_user_supplied_is_unpickled() -> None:
    for p in (ROOT / "recsys").rglob("*.py"):
        text = p.read_text(encoding="utf-8")
        assert "import pickle" not in text and "allow_pickle=True" not in text, p
        for line in text.splitlines():
            if "torch.load(" in line:
                assert "weights_only=True" in line, f"{p}: {line.strip()}"
