"""Regenerate benchmarks/README.md from every JSON file in benchmarks/results/.

    python benchmarks/report.py [--results DIR] [--out FILE]

Reads any JSON object. The preferred shape (see common.py) has ``benchmark``, ``date``, ``command``,
``machine`` and a ``results`` list of rows; rows with ``target`` and ``met`` go into the summary table.
Files in other shapes are rendered generically (scalars as a list, lists of objects as tables, nested
objects flattened to dotted keys), so a new benchmark shows up without touching this script.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SKIP = {"raw", "curves", "runs", "machine", "notes", "results", "command", "benchmark", "date"}
HEADLINE = ("speedup", "ratio", "share_of_peak", "frac", "exponent")


def fmt(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "**no**"
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            return str(v)
        a = abs(v)
        return f"{v:.3g}" if a < 10 else f"{v:,.1f}" if a < 1e4 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}" if abs(v) >= 1e4 else str(v)
    if isinstance(v, list):
        if all(isinstance(x, (int, float)) for x in v) and len(v) <= 12:
            return "[" + ", ".join(fmt(x) for x in v) + "]"
        return f"[{len(v)} items]"
    if isinstance(v, dict):
        return ", ".join(f"{k}={fmt(x)}" for k, x in list(v.items())[:8]) + (" …" if len(v) > 8 else "")
    return str(v).replace("|", "\\|").replace("\n", " ")[:160]


def flatten(d: dict[str, Any], prefix: str = "", depth: int = 3, lists: bool = False) -> dict[str, Any]:
    """Nested dicts -> dotted keys (``lists``: lists of dicts too, as ``key[i].sub``)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and depth > 1:
            out.update(flatten(v, key + ".", depth - 1, lists))
        elif lists and depth > 1 and isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            for i, x in enumerate(v):
                out.update(flatten(x, f"{key}[{i}].", depth - 1, lists))
        else:
            out[key] = v
    return out


def table(rows: list[dict[str, Any]], *, max_cols: int = 12) -> list[str]:
    flat = [flatten(r, depth=2) for r in rows]
    cols: list[str] = []
    for r in flat:
        cols += [c for c, v in r.items() if c not in cols and not (isinstance(v, list) and len(v) > 12)]
    cols = cols[:max_cols]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(r.get(c)) for c in cols) + " |" for r in flat]
    return lines


def machine_line(m: dict[str, Any]) -> str:
    m = flatten(m, depth=2) if isinstance(m, dict) else {}
    pick = lambda *ks: next((m[k] for k in ks if k in m and m[k] not in (None, "")), None)  # noqa: E731
    parts = [
        f"{pick('cores', 'cpus')} cores" if pick("cores", "cpus") else None,
        pick("cpu", "platform"),
        f"{pick('ram_gib')} GiB RAM"
        if pick("ram_gib")
        else f"{pick('ram_mib', 'ram_mb')} MB RAM"
        if pick("ram_mib", "ram_mb")
        else None,
        f"device {pick('device')}" if pick("device") else None,
        f"torch {pick('versions.torch', 'torch')}" if pick("versions.torch", "torch") else None,
        f"load {fmt(pick('load_avg', 'loadavg_1m', 'load_avg_1m'))}"
        if pick("load_avg", "loadavg_1m", "load_avg_1m") is not None
        else None,
        f"commit {pick('git_commit')}" if pick("git_commit") else None,
    ]
    return ", ".join(str(p) for p in parts if p) or "not recorded"


def with_unit(r: dict[str, Any]) -> str:
    unit = r.get("value_unit") or r.get("unit")
    return fmt(r.get("value")) + (f" {unit}" if unit and r.get("value") is not None else "")


def short_machine(m: Any) -> str:
    m = flatten(m, depth=2) if isinstance(m, dict) else {}
    cores = m.get("cores") or m.get("cpus")
    load = m.get("load_avg") or m.get("loadavg_1m") or m.get("load_avg_1m")
    load = load[0] if isinstance(load, list) and load else load
    dev = m.get("device", "")
    # the CPU's make in two words ("AMD EPYC", "Intel Xeon"): the same job ran 1.6x apart on the two kinds
    cpu = " ".join(str(m.get("cpu") or "").replace("(R)", "").replace("(TM)", "").split()[:2])
    return (
        " ".join(
            x
            for x in [
                f"{cores} cores" if cores else "",
                cpu,
                dev if dev and dev != "cpu" else "",
                f"load {fmt(load)}" if load is not None else "",
            ]
            if x
        )
        or "—"
    )


def when(doc: dict[str, Any], path: Path) -> str:
    d = doc.get("date") or (doc.get("machine") or {}).get("date")
    return str(d) if d else time.strftime("%Y-%m-%dT%H:%M:%SZ (file time)", time.gmtime(path.stat().st_mtime))


def command(doc: dict[str, Any], path: Path) -> str:
    if doc.get("command"):
        return str(doc["command"])
    stem = path.stem.split(".")[0]
    script = HERE / f"bench_{stem}.py"
    flag = " --quick" if ".quick" in path.name else ""
    return (
        f"python benchmarks/{script.name}{flag} (not recorded; inferred)"
        if script.exists()
        else "not recorded"
    )


def headlines(doc: dict[str, Any]) -> list[tuple[str, Any]]:
    """Numbers worth a summary line from a file that has no ``results`` rows with targets."""
    flat = flatten(
        {k: v for k, v in doc.items() if k not in ("machine", "raw", "curves", "runs")}, depth=5, lists=True
    )
    nums = [(k, v) for k, v in flat.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return [(k, v) for h in HEADLINE for k, v in nums if h in k.rsplit(".", 1)[-1].lower()]


def render(results_dir: Path) -> str:
    files = sorted(p for p in results_dir.glob("*.json"))
    docs: list[tuple[Path, dict[str, Any]]] = []
    for p in files:
        try:
            doc = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError) as e:
            docs.append((p, {"error": f"unreadable: {e}"}))
            continue
        docs.append((p, doc if isinstance(doc, dict) else {"results": doc}))

    out = [
        "# Benchmarks",
        "",
        "Generated by `python benchmarks/report.py` from `benchmarks/results/*.json`; re-run everything with "
        "`bash benchmarks/run_all.sh`. Ratios compare against a baseline measured in the same run (median of "
        "repeats after a warm-up), so they move less than absolute times on a busy machine. A ratio "
        "\"A vs B\" in x is B's cost over A's (> 1: A is faster or smaller). `machine` gives the cores and "
        "the 1-minute load average when the run started: a load above the core count means the figures "
        "were taken on a busy machine.",
        "",
        "## Summary",
        "",
        "| benchmark | figure | measured | target | met | date | machine | command |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for p, doc in docs:
        name, cmd, date = doc.get("benchmark", p.stem), command(doc, p), when(doc, p)
        mach = short_machine(doc.get("machine", {}))
        rows = doc.get("results") if isinstance(doc.get("results"), list) else []
        targeted = [r for r in rows if isinstance(r, dict) and ("target" in r or r.get("headline"))]
        for r in targeted:
            met = r.get("met")
            measured = with_unit(r)
            if r.get("error"):
                measured += f" (error: {fmt(r['error'])[:80]})"
            verdict = "—" if "target" not in r else "yes" if met else "**MISSED**"
            out.append(
                f"| {name} | {fmt(r.get('name'))} | {measured} | {fmt(r.get('target'))} | "
                f"{verdict} | {date} | {mach} | `{cmd}` |"
            )
        if not targeted:
            heads = [(n, with_unit(r)) for r in rows if isinstance(r, dict) and (n := r.get("name"))][:8] or [
                (k, fmt(v)) for k, v in headlines(doc)
            ][:6]
            for k, v in heads or [("(see below)", "")]:
                out.append(f"| {name} | {k} | {v} | — | — | {date} | {mach} | `{cmd}` |")
    out.append("")

    for p, doc in docs:
        name = doc.get("benchmark", p.stem)
        out += [
            f"## {name} (`results/{p.name}`)",
            "",
            f"- date: {when(doc, p)}",
            f"- machine: {machine_line(doc.get('machine', {}))}",
            f"- command: `{command(doc, p)}`",
        ]
        out += [f"- note: {n}" for n in doc.get("notes", []) if isinstance(n, str)]
        out.append("")
        rows = doc.get("results")
        if isinstance(rows, list) and rows and all(isinstance(r, dict) for r in rows):
            out += table(rows) + [""]
        elif isinstance(rows, dict):
            named = [{"name": k, **(v if isinstance(v, dict) else {"value": v})} for k, v in rows.items()]
            out += table(named) + [""]
        rest = {k: v for k, v in doc.items() if k not in SKIP}
        for k, v in rest.items():
            if isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
                out += [f"**{k}**", ""] + table(v) + [""]
        scalars = {
            k: v
            for k, v in flatten(
                {k: v for k, v in rest.items() if not (isinstance(v, list) and v and isinstance(v[0], dict))}
            ).items()
        }
        if scalars:
            out += [f"- `{k}`: {fmt(v)}" for k, v in scalars.items()] + [""]
        if (results_dir / f"{p.stem}.png").exists():
            out += [f"![{p.stem}](results/{p.stem}.png)", ""]
    if not docs:
        out += ["No results yet: run `bash benchmarks/run_all.sh`.", ""]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", type=Path, default=HERE / "results")
    ap.add_argument("--out", type=Path, default=HERE / "README.md")
    args = ap.parse_args(argv)
    text = render(args.results)
    args.out.write_text(text + "\n")
    print(f"wrote {args.out} ({len(list(args.results.glob('*.json')))} result files)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
