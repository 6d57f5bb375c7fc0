"""Architecture rules from DESIGN.md, checked on the source: stages meet only through files."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Every subpackage of recsys/ is a stage (data, teacher, student, index, rank, eval, baselines, publish, ...).
STAGES = {p.name for p in (ROOT / "recsys").iterdir() if (p / "__init__.py").exists()}
# Modules every stage may use: shared plumbing, pure metrics and their exact top-k, the run-dir lock, the artifact contracts, the
# reader of the data stage's tables and its error type (an input that cannot be used, e.g. items without text
# for the teacher), and the torchrun launcher + worker lifeline the teacher and student workers share. Nothing
# else outside its own package.
SHARED = ("recsys.artifacts", "recsys.config", "recsys.metrics", "recsys.topk", "recsys.runlock", "recsys.contracts",
          "recsys.data.tables", "recsys.data.schema", "recsys.data.errors", "recsys.torchrun", "recsys.lifeline")
# Documented exceptions, (importing package, imported module prefix): the service runs the query API over the
# published store.
ALLOWED = {("serve", "recsys.api"), ("serve", "recsys.publish.store")}
HEAVY = {"torch", "torchrec", "fbgemm_gpu", "transformers", "faiss", "lightgbm", "implicit", "optuna"}


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


def _allowed(stage: str, module: str) -> str | None:
    """The SHARED / ALLOWED entry that lets ``stage`` import ``module`` (None: forbidden)."""
    for prefix in SHARED:
        if module == prefix or module.startswith(prefix + "."):
            return prefix
    for who, prefix in ALLOWED:
        if who == stage and (module == prefix or module.startswith(prefix + ".")):
            return f"{who}:{prefix}"
    return None


def test_stages_import_only_themselves_and_the_shared_modules() -> None:
    """A stage never imports a sibling stage (nor recsys.api / recsys.doctor): only its own package and
    SHARED (plus the ALLOWED exceptions)."""
    bad, used = [], set()
    for stage in STAGES:
        for p in (ROOT / "recsys" / stage).rglob("*.py"):
            for m, _ in _imports(p):
                parts = m.split(".")
                if parts[0] != "recsys" or len(parts) == 1 or parts[1] == stage:
                    continue
                how = _allowed(stage, m)
                if how is None:
                    bad.append((str(p.relative_to(ROOT)), m))
                used.add(how)
    assert not bad, bad
    # the allow-list is real: the shared modules the stages rely on are in it and used
    assert {"recsys.artifacts", "recsys.config", "recsys.data.tables", "recsys.runlock"} <= used, used
    stale = {f"{w}:{p}" for w, p in ALLOWED if w in STAGES} - used
    assert not stale, f"ALLOWED entries no stage uses any more: {stale}"


def test_the_rule_catches_a_sibling_import() -> None:
    assert _allowed("student", "recsys.index.build") is None
    assert _allowed("rank", "recsys.student.stage") is None
    assert _allowed("publish", "recsys.api") is None
    assert _allowed("rank", "recsys.data.tables") == "recsys.data.tables"


def _module_graph() -> dict[str, set[str]]:
    """recsys module -> the recsys modules it imports (anywhere in the file, lazy imports included)."""
    mods = {}
    for p in (ROOT / "recsys").rglob("*.py"):
        parts = list(p.relative_to(ROOT).with_suffix("").parts)
        mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    graph: dict[str, set[str]] = {}
    for name, p in mods.items():
        edges = set()
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                edges |= {a.name for a in node.names if a.name in mods}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module in mods:
                subs = {f"{node.module}.{a.name}" for a in node.names} & set(mods)
                edges |= subs or {node.module}
                if len(subs) < len(node.names):
                    edges.add(node.module)
        graph[name] = edges - {name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
    return out


def test_no_import_cycle_in_recsys() -> None:
    assert _cycles(_module_graph()) == []


def test_the_cycle_check_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_heavy_imports_stay_out_of_light_modules() -> None:
    light = [ROOT / "recsys" / "artifacts.py", ROOT / "recsys" / "config.py", ROOT / "recsys" / "metrics.py",
             *(ROOT / "recsys" / "contracts").rglob("*.py"),
             *(ROOT / "recsys" / "data").rglob("*.py"), *(ROOT / "recsys" / "eval").rglob("*.py")]
    bad = [(str(p.relative_to(ROOT)), m) for p in light for m, _ in _imports(p) if m.split(".")[0] in HEAVY]
    assert not bad, bad


def test_importing_the_data_and_eval_stages_loads_no_heavy_library() -> None:
    code = ("import sys, recsys.data.stage, recsys.eval.stage, recsys.metrics, pipelines.cli, recsys.contracts.tables, "
            "recsys.contracts.teacher, recsys.contracts.student, recsys.contracts.index, recsys.contracts.ranker, "
            "recsys.contracts.checkpoints, recsys.contracts.baselines, recsys.contracts.report\n"
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
