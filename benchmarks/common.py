"""Shared helpers for the benchmark scripts: machine info, timing, peak memory, hardware probes, JSON out.

Every benchmark writes ``benchmarks/results/<name>.json`` shaped like::

    {"benchmark": "data", "date": "2026-11-22T18:30:00Z", "command": "python benchmarks/bench_data.py ...",
     "machine": {...machine_info()...},
     "results": [{"name": "...", "value": 12.3, "unit": "x", "baseline": "pandas", "target": ">= 10",
                  "met": true, ...any other keys...}, ...],
     "notes": ["..."]}

``benchmarks/report.py`` renders every such file into ``benchmarks/README.md``; rows with ``target``
and ``met`` also go into the summary table. Import from a script in this folder with
``sys.path.insert(0, str(Path(__file__).resolve().parent)); from common import ...`` (the scripts are
not a package; run them as ``python benchmarks/bench_x.py``).
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from procs import (  # noqa: E402,F401 - re-exported: scripts import everything from common
    _proc_field,
    current_rss_mib,
    emit,
    peak_rss_mib,
    run_command,
    run_worker,
    tree_rss_mib,
)

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


# --------------------------------------------------------------------------- machine
def _cpu_model() -> str:
    return _proc_field("/proc/cpuinfo", "model name") or platform.processor() or platform.machine()


def _ram_gib() -> float | None:
    kib = _proc_field("/proc/meminfo", "MemTotal")
    return round(int(kib.split()[0]) / 2**20, 1) if kib else None


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
        return out + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def _device() -> str:
    """``cuda:<name>`` when torch sees a GPU, else ``cpu`` (torch is imported only if installed)."""
    if _version("torch") is None:
        return "cpu"
    try:
        import torch

        if torch.cuda.is_available():
            return f"cuda:{torch.cuda.get_device_name(0)}"
    except Exception:  # noqa: BLE001 - a broken torch install must not stop a benchmark
        pass
    return "cpu"


def load_average() -> list[float]:
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return []


def machine_info() -> dict[str, Any]:
    """Cores, RAM, CPU model, library versions, device, date, git commit and the current load average."""
    pkgs = [
        "numpy",
        "polars",
        "pandas",
        "pyarrow",
        "torch",
        "torchrec",
        "fbgemm-gpu-cpu",
        "fbgemm-gpu",
        "faiss-cpu",
        "faiss-gpu-cu12",
        "lightgbm",
        "transformers",
    ]
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "ram_gib": _ram_gib(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "versions": {p: v for p in pkgs if (v := _version(p)) is not None},
        "device": _device(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "git_commit": _git_commit(),
        "load_avg": load_average(),
    }


def command_line() -> str:
    """The exact command that ran this script, relative to the repository root when possible."""
    args = list(sys.argv)
    try:
        args[0] = str(Path(args[0]).resolve().relative_to(ROOT))
    except ValueError:
        pass
    return "python " + " ".join(shlex.quote(a) for a in args)


# --------------------------------------------------------------------------- timing
def measure(fn: Callable[[], Any], *, repeats: int = 5, warmup: int = 1) -> dict[str, Any]:
    """Run ``fn`` ``warmup`` times untimed, then ``repeats`` times. -> {"median", "min", "times", "last"}."""
    for _ in range(warmup):
        fn()
    times, last = [], None
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        last = fn()
        times.append(time.perf_counter() - t0)
    return {
        "median": statistics.median(times),
        "min": min(times),
        "times": [round(t, 6) for t in times],
        "last": last,
    }


# --------------------------------------------------------------------------- hardware probes
def matmul_gflops(*, n: int = 1024, repeats: int = 5) -> float:
    """Peak float32 GEMM throughput of this machine (torch if installed, else numpy), GFLOP/s."""
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    try:
        import torch

        ta = torch.from_numpy(a)
        fn: Callable[[], Any] = lambda: torch.mm(ta, ta)  # noqa: E731
    except ImportError:
        fn = lambda: a @ a  # noqa: E731
    t = measure(fn, repeats=repeats, warmup=1)["min"]
    return round(2 * n**3 / t / 1e9, 1)


def memory_bandwidth_gbs(*, mib: int = 256, repeats: int = 5) -> float:
    """Streaming copy bandwidth (read + write bytes per second), GB/s."""
    src = np.ones(mib * 2**20 // 8, dtype=np.float64)
    dst = np.empty_like(src)
    t = measure(lambda: np.copyto(dst, src), repeats=repeats, warmup=1)["min"]
    return round(2 * src.nbytes / t / 1e9, 2)


# --------------------------------------------------------------------------- results
def write_result(
    name: str,
    *,
    results: list[dict[str, Any]],
    notes: Sequence[str] = (),
    extra: dict[str, Any] | None = None,
    out_dir: Path | None = None,
    probes: bool = True,
) -> Path:
    """Write ``results/<name>.json`` with machine info, the command, the rows and notes."""
    machine = machine_info()
    if probes:
        machine["matmul_gflops_fp32"] = matmul_gflops()
        machine["mem_bandwidth_gbs"] = memory_bandwidth_gbs()
    doc = {
        "benchmark": name,
        "date": machine["date"],
        "command": command_line(),
        "machine": machine,
        "results": results,
        "notes": list(notes),
        **(extra or {}),
    }
    out = (out_dir or RESULTS) / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=2, default=_jsonable) + "\n")
    os.replace(tmp, out)
    return out


def _jsonable(x: Any) -> Any:
    if isinstance(x, (np.generic, np.ndarray)):
        return x.tolist()
    if isinstance(x, Path):
        return str(x)
    raise TypeError(f"not JSON-serialisable: {type(x)}")


def ratio_row(
    *,
    name: str,
    ours: float,
    baseline: float,
    unit: str,
    higher_is_better: bool,
    target: float | None = None,
    baseline_name: str = "baseline",
    **extra: Any,
) -> dict[str, Any]:
    """A row comparing ours to a baseline measured in the same run; ratio > 1 means ours is better."""
    ratio = (baseline / ours if not higher_is_better else ours / baseline) if ours and baseline else None
    row: dict[str, Any] = {
        "name": name,
        "ours": round(ours, 4),
        "baseline_value": round(baseline, 4),
        "baseline": baseline_name,
        "unit": unit,
        "value": round(ratio, 2) if ratio else None,
        "value_unit": "x",
    }
    if target is not None:
        row["target"] = f">= {target}x"
        row["met"] = bool(ratio is not None and ratio >= target)
    row.update(extra)
    return row
