"""Run-level outputs: metrics.json, report.md, report/*.png, gate.json, cold-start results."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from recsys.contracts import _checks as C
from recsys.contracts.layout import Layout
from recsys.contracts.manifests import verify

PLOTS = ("recall_at_k", "slices_popularity", "slices_history", "ann_tradeoff")


def write_metrics(*, layout: Layout, metrics: Mapping[str, Any]) -> Path:
    from recsys.artifacts import write_json

    return write_json(layout.metrics, dict(metrics))


def write_report(*, layout: Layout, text: str) -> Path:
    from recsys.artifacts import write_text

    return write_text(layout.report_md, text)


def read_metrics(*, layout: Layout) -> dict[str, Any]:
    """metrics.json as written by the eval stage (not digest-recorded: eval always re-runs)."""
    return C.read_json(layout.metrics, stage="eval")


def plot_path(layout: Layout, name: str) -> Path:
    """``report/<name>.png`` for ``name`` in ``PLOTS``."""
    if name not in PLOTS:
        raise ValueError(f"unknown plot {name!r}; one of {PLOTS}")
    return layout.plot(name)


def write_gate(*, layout: Layout, decision: Mapping[str, Any]) -> Path:
    from recsys.artifacts import write_json

    return write_json(layout.gate, dict(decision))


def read_gate(*, layout: Layout) -> dict[str, Any]:
    """gate.json, verified against the digest the gate step recorded."""
    p = verify(layout.gate, layout=layout, stage="gate")
    return C.read_json(p, stage="gate")


def write_cold_start(*, layout: Layout, result: Mapping[str, Any], text: str) -> list[Path]:
    from recsys.artifacts import write_json, write_text

    return [write_json(layout.cold_start, dict(result)), write_text(layout.cold_start_md, text)]


def write_demo_report(*, directory: Path, result: Mapping[str, Any], text: str) -> list[Path]:
    """``recsys retrain-demo``'s summary (its own output folder, not a run directory): JSON + markdown."""
    from recsys.artifacts import write_json, write_text

    return [write_json(Path(directory) / "report.json", dict(result)), write_text(Path(directory) / "report.md", text)]
