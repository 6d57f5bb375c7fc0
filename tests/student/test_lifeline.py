"""Processes tied to their parent: parent-death signal, the launcher watchdog and signal forwarding (no torch)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from recsys.student import launch, lifeline

# A middle process starts a grandchild that asks for a parent-death signal (or watches the middle one's
# pid), prints the grandchild's pid and exits at once: the grandchild must not outlive it.
MIDDLE = """
import subprocess, sys
code = sys.argv[1]
p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                     stdin=subprocess.DEVNULL, text=True)
print(p.stdout.readline().strip(), flush=True)
"""
GRANDCHILD = {
    "pdeathsig": "import os, time\nfrom recsys.student.lifeline import die_with_parent\nassert die_with_parent()\n"
                 "print(os.getpid(), flush=True)\ntime.sleep(60)\n",
    "watch": "import os, time\nfrom recsys.student.lifeline import watch\nwatch(os.getppid(), every_s=0.1)\n"
             "print(os.getpid(), flush=True)\ntime.sleep(60)\n",
    "neither": "import os, time\nprint(os.getpid(), flush=True)\ntime.sleep(60)\n",
}


def _orphan(kind: str) -> int:
    out = subprocess.run([sys.executable, "-c", MIDDLE, GRANDCHILD[kind]], capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


def _gone_within(pid: int, seconds: float) -> bool:
    end = time.time() + seconds
    while time.time() < end:
        if not lifeline.alive(pid):
            return True
        try:  # reaped by init, or a zombie of ours: both count as gone
            with open(f"/proc/{pid}/stat") as f:
                if f.read().split(") ")[1].startswith("Z"):
                    return True
        except OSError:
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("kind", ["pdeathsig", "watch"])
def test_a_guarded_child_dies_with_its_parent(kind: str) -> None:
    assert _gone_within(_orphan(kind), 10)


def test_an_unguarded_child_outlives_its_parent() -> None:
    pid = _orphan("neither")  # the control: without a guard the orphan lives on (what the workers did)
    try:
        assert not _gone_within(pid, 1.5)
    finally:
        os.kill(pid, signal.SIGKILL)


def test_sigterm_to_the_launcher_is_forwarded_to_the_agent() -> None:
    agent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    before = signal.getsignal(signal.SIGTERM)
    try:
        with pytest.raises(SystemExit) as e, launch._forward_signals(agent):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        assert e.value.code == 128 + signal.SIGTERM
        assert agent.wait(timeout=10) == -signal.SIGTERM
        assert signal.getsignal(signal.SIGTERM) is before  # our handler is gone once the agent is
    finally:
        agent.kill()
        agent.wait()
