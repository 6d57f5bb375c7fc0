"""Process helpers for the benchmarks: peak memory of this process, of a child, of a process tree.

``run_worker`` runs ``python <script> ...`` under a tiny wrapper whose ``getrusage(RUSAGE_CHILDREN)`` sees
only that child, so its peak RSS is clean; ``run_command`` samples the summed RSS of a whole process tree
(for jobs that spawn workers, e.g. torchrun).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _proc_field(path: str, prefix: str) -> str | None:
    """The value after ``prefix`` on the first matching line of a /proc file (None off Linux)."""
    try:
        return next(
            (
                ln.split(":", 1)[1].strip()
                for ln in Path(path).read_text().splitlines()
                if ln.startswith(prefix)
            ),
            None,
        )
    except OSError:
        return None


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, MiB (Linux reports ru_maxrss in KiB)."""
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib / 1024 if sys.platform != "darwin" else kib / 2**20


def current_rss_mib() -> float:
    kib = _proc_field("/proc/self/status", "VmRSS")
    return int(kib.split()[0]) / 1024 if kib else float("nan")


def run_worker(
    argv: Sequence[str], *, timeout_s: float | None = None, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """Run ``python <argv>`` in a fresh process that prints one JSON object as its last stdout line.

    Returns that object plus ``wall_s`` and ``peak_rss_mib`` (the child's own peak RSS from
    ``getrusage(RUSAGE_CHILDREN)``, isolated by running the child under a tiny wrapper process so the
    maximum covers this child only), or ``{"error": ...}`` on failure, timeout or an out-of-memory kill.
    """
    wrapper = (
        "import resource, subprocess, sys, json;"
        "p = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, text=True);"
        "r = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss;"
        "sys.stdout.write(p.stdout); print(json.dumps({'__rc': p.returncode, '__maxrss_kib': r}))"
    )
    cmd = [sys.executable, "-c", wrapper, sys.executable, *argv]
    t0 = time.perf_counter()
    try:
        p = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            cwd=ROOT,
            env={**os.environ, **(env or {})},
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout_s:.0f}s", "wall_s": time.perf_counter() - t0}
    wall = time.perf_counter() - t0
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    tail = json.loads(lines[-1]) if lines else {"__rc": p.returncode, "__maxrss_kib": 0}
    rc = tail["__rc"]
    if rc != 0 or len(lines) < 2:
        why = "killed (out of memory?)" if rc in (-9, 137) else f"exit code {rc}"
        return {
            "error": f"{why}: {p.stderr.strip()[-800:]}",
            "wall_s": wall,
            "peak_rss_mib": round(tail["__maxrss_kib"] / 1024, 1),
        }
    out = json.loads(lines[-2])
    out.update(wall_s=round(wall, 3), peak_rss_mib=round(tail["__maxrss_kib"] / 1024, 1))
    return out


def tree_rss_mib(root: int) -> float:
    """Summed RSS of ``root`` and all its descendants (from /proc; 0 where /proc is missing)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    page = os.sysconf("SC_PAGE_SIZE")
    for d in Path("/proc").glob("[0-9]*"):
        try:
            ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            rss[int(d.name)] = int((d / "statm").read_text().split()[1]) * page
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(d.name))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo.extend(children.get(pid, []))
    return total / 2**20


def run_command(
    cmd: Sequence[str],
    *,
    timeout_s: float | None = None,
    env: dict[str, str] | None = None,
    poll_s: float = 0.5,
) -> dict[str, Any]:
    """Run a command; -> rc, wall_s, cpu_s (user + system seconds of the whole finished process tree),
    peak_tree_rss_mib (sampled sum over the process tree every ``poll_s``), stdout/stderr tails. For commands
    that spawn workers (torchrun) the tree sum is the honest peak; on a shared machine cpu_s is the honest cost."""
    import resource
    import threading

    c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.Popen(
        list(cmd),
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, so a timeout can end the whole tree
    )
    peak = [0.0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(poll_s):
            peak[0] = max(peak[0], tree_rss_mib(p.pid))

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    try:
        out, err = p.communicate(timeout=timeout_s)
        rc: int | str = p.returncode
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, 9)  # torchrun workers too
        out, err = p.communicate()
        rc = f"timed out after {timeout_s:.0f}s"
    done.set()
    th.join()
    c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "rc": rc,
        "wall_s": round(time.perf_counter() - t0, 2),
        "cpu_s": round(c1.ru_utime - c0.ru_utime + c1.ru_stime - c0.ru_stime, 2),
        "peak_tree_rss_mib": round(peak[0], 1),
        "stdout_tail": out[-3000:],
        "stderr_tail": err[-3000:],
    }


def emit(obj: dict[str, Any]) -> None:
    """A worker's result: one JSON line on stdout (read back by ``run_worker``)."""
    print(json.dumps(obj), flush=True)
