"""Child processes that cannot outlive their parent: what keeps a killed run from training on in the background.

torchrun starts each worker in a session of its own, so killing the parent's process group (Ctrl-C
escalation, a scheduler timeout, an OOM kill) would not reach them. Two guards, both cheap:

- ``die_with_parent()``: Linux ``prctl(PR_SET_PDEATHSIG)`` — the kernel signals this process the moment
  its parent exits, however it exits (``kill -9`` included).
- ``watch(pid)``: a daemon thread polling the launching process once a second and ending this process when
  it is gone; it covers the launcher dying while torchrun's agent survives, and systems without prctl.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import threading
import time

log = logging.getLogger(__name__)
PR_SET_PDEATHSIG = 1
LAUNCHER_ENV = "RECSYS_LAUNCHER_PID"


def die_with_parent(sig: int = signal.SIGKILL) -> bool:
    """Ask the kernel to send ``sig`` to this process when its parent exits. Returns False off Linux.

    Safe as a ``subprocess.Popen(preexec_fn=...)``: it only calls ``prctl`` and ``getppid``.
    """
    if not sys.platform.startswith("linux"):
        return False
    ppid = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError):
        return False
    if os.getppid() != ppid:  # the parent died before the request took effect
        os.kill(os.getpid(), sig)
    return True


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def watch(pid: int, *, every_s: float = 1.0) -> threading.Thread:
    """End this process (SIGKILL to itself) as soon as process ``pid`` no longer exists."""

    def _loop() -> None:
        while alive(pid):
            time.sleep(every_s)
        os.kill(os.getpid(), signal.SIGKILL)

    t = threading.Thread(target=_loop, name=f"watch-{pid}", daemon=True)
    t.start()
    return t


def guard_worker() -> None:
    """Both guards for a torchrun worker: die with torchrun's agent, and with the launcher named by
    ``$RECSYS_LAUNCHER_PID`` (set by ``recsys.torchrun.launch``)."""
    die_with_parent()
    pid = os.environ.get(LAUNCHER_ENV, "")
    if pid.isdigit():
        if not alive(int(pid)):
            os.kill(os.getpid(), signal.SIGKILL)
        watch(int(pid))


def leave(code: int) -> None:
    """End a torchrun worker that has finished (its barrier passed, process group destroyed, rank 0 recorded
    the stage) or printed its error: flush and ``os._exit`` without interpreter teardown, where extension
    threads (gloo, fbgemm) sometimes abort a finished process ("terminate called without an active
    exception", SIGABRT) on 2 busy cores."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
