"""No module outside ``recsys/contracts/`` spells an artifact file name: readers and writers go through it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from recsys.contracts.layout import FILE_NAMES, STUDENT

ROOT = Path(__file__).resolve().parents[2]
# A file name as a whole word ("beauty_items.parquet", an embedded data set, is not "items.parquet"), or the
# pieces a parameterised name (f"candidates_{split}.parquet") leaves in the source.
NAMES = re.compile(r"(?<![\w.])(" + "|".join(re.escape(n) for n in FILE_NAMES) + r")(?!\w)"
                   r"|(candidates|reranked|topk|user_vectors|popularity|als_user|als_item)_\{|\.rank\{")
# Path building from a run-directory folder name: ``root / "student" / variant``.
FOLDER = re.compile(r"/\s*[\"'](tables|teacher|student|index|rank|baselines|report|split|ckpt)[\"']")


def _docstrings(tree: ast.AST) -> set[int]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                out.add(id(first.value))
    return out


def _offenders(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    tree = ast.parse(text)
    docs = _docstrings(tree)
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            hit = NAMES.search(node.value)
            if hit:
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value[:60]!r} ({hit.group(0)})")
        elif isinstance(node, ast.JoinedStr):  # f"candidates_{split}.parquet": match the source text
            src = ast.get_source_segment(text, node) or ""
            hit = NAMES.search(src)
            if hit and id(node) not in docs:
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno}: {src[:60]} ({hit.group(0)})")
    for i, line in enumerate(text.splitlines(), 1):
        if FOLDER.search(line.split("#", 1)[0]):
            bad.append(f"{path.relative_to(ROOT)}:{i}: {line.strip()[:80]}")
    return bad


def _sources() -> list[Path]:
    files = [*(ROOT / "recsys").rglob("*.py"), *(ROOT / "pipelines").rglob("*.py")]
    return [p for p in files if (ROOT / "recsys" / "contracts") not in p.parents]


def test_no_artifact_file_name_outside_the_contracts() -> None:
    bad = [b for p in _sources() for b in _offenders(p)]
    assert not bad, "artifact names spelled outside recsys/contracts/ (use recsys.contracts.layout):\n" + "\n".join(bad)


def test_the_check_finds_what_it_looks_for(tmp_path: Path) -> None:
    """The grep is not vacuous: it flags the patterns the library used to contain."""
    p = ROOT / "recsys" / "_probe_file_names_test.py"  # inside the tree, so relative_to works; removed below
    p.write_text('"""items.parquet in a docstring is fine"""\n'
                 'x = root / "student" / variant / "item_vectors.npy"\ny = f"candidates_{s}.parquet"\n'
                 'z = "beauty_items.parquet"  # an embedded data set, not an artifact\n')
    try:
        found = _offenders(p)
        assert len(found) == 3 and any("candidates_{" in f for f in found), found
    finally:
        p.unlink()
    assert STUDENT == "student"
