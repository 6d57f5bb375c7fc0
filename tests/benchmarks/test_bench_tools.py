"""The benchmark helpers: timing, the report generator's tolerance, the pandas baseline's fairness."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))

import common  # noqa: E402
import report  # noqa: E402
from synth_logs import make_logs  # noqa: E402


def test_measure_takes_the_median_after_warmup() -> None:
    calls = []
    r = common.measure(lambda: calls.append(1) or len(calls), repeats=3, warmup=2)
    assert len(calls) == 5 and len(r["times"]) == 3 and r["last"] == 5
    assert r["min"] <= r["median"] and abs(sorted(r["times"])[1] - r["median"]) < 1e-5


def test_ratio_row_marks_targets() -> None:
    row = common.ratio_row(name="x", ours=1.0, baseline=12.0, unit="s", higher_is_better=False, target=10)
    assert row["value"] == 12.0 and row["met"] is True
    row = common.ratio_row(name="m", ours=300.0, baseline=600.0, unit="MiB", higher_is_better=False, target=3)
    assert row["value"] == 2.0 and row["met"] is False


def test_synthetic_logs_are_skewed_and_have_duplicates() -> None:
    inter, items = make_logs(n_rows=20_000, seed=1)
    assert inter.height == 20_000 and items.height > inter["item_id"].n_unique()
    key = ["user_id", "item_id", "timestamp", "event"]
    assert inter.height - inter.unique(subset=key).height >= 150  # ~1% exact repeats
    per_item = inter.group_by("item_id").len()["len"]
    assert per_item.max() > 20 * per_item.median()  # Zipf head


def test_report_renders_every_shape_and_flags_misses(tmp_path: Path) -> None:
    ours = {
        "benchmark": "data",
        "date": "2026-01-01T00:00:00Z",
        "command": "python benchmarks/bench_data.py",
        "machine": {"cores": 2, "cpu": "X", "load_avg": [1.0, 1.0, 1.0]},
        "results": [
            {"name": "speed", "value": 4.2, "unit": "x", "target": ">= 10x", "met": False},
            {"name": "mem", "value": 3.5, "target": ">= 3x", "met": True},
        ],
        "notes": ["n"],
    }
    foreign = {
        "benchmark": "teacher_encode",
        "speedup": 1.7,
        "ours": {"items_per_s": 900.0, "seconds": [1, 2]},
        "sizes": [{"items": 100, "qps": 5.0}],
        "machine": {"cpus": 2, "loadavg_1m": 3.0},
    }
    (tmp_path / "data.json").write_text(json.dumps(ours))
    (tmp_path / "teacher.json").write_text(json.dumps(foreign))
    (tmp_path / "student.json").write_text(json.dumps({"results": {"a": {"examples_per_s": 10}}}))
    (tmp_path / "broken.json").write_text("{not json")
    text = report.render(tmp_path)
    assert "**MISSED**" in text and "4.2 x" in text  # a missed target says so, with the figure
    assert "| data | mem | 3.5 | >= 3x | yes |" in text
    assert "speedup" in text and "1.7" in text  # headline numbers of a file without rows
    assert "items_per_s" in text and "| 100 |" in text and "examples_per_s" in text
    assert "unreadable" in text
    assert "not recorded; inferred" in text  # no command in the file: say so


def test_pandas_baseline_matches_polars(tmp_path: Path) -> None:
    pytest.importorskip("pandas")
    import bench_data

    bench_data.check(tmp_path)


def test_short_machine_names_the_cpu_make() -> None:
    """The summary's machine column: cores, the CPU's make in two words, the 1-minute load."""
    m = {"cores": 2, "cpu": "Intel(R) Xeon(R) Processor", "device": "cpu", "load_avg": [1.96, 2.1, 1.7]}
    assert report.short_machine(m) == "2 cores Intel Xeon load 1.96"
    assert report.short_machine({"cores": 2, "cpu": "AMD EPYC 7B13", "load_avg": [0.5]}) == "2 cores AMD EPYC load 0.5"
    assert report.short_machine({"cores": 4}) == "4 cores"
