"""One writer per directory: an advisory ``flock`` on ``<dir>/.lock`` that names its holder's pid.

The OS releases a ``flock`` when its holder dies (even by ``kill -9``), so a lock file left by a dead
process is simply taken over; the pid written inside is only there to say who holds a live one. The file
descriptor is not inherited by child processes (Python opens files close-on-exec), so the lock lives
exactly as long as the process that took it.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

LOCK_NAME = ".lock"


class LockedError(RuntimeError):
    """Another live process holds the directory; the message names its pid and what to do."""


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, json.JSONDecodeError):
        return "another process"
    if not isinstance(info, dict) or "pid" not in info:
        return "another process"
    what = f" ({info['command']})" if info.get("command") else ""
    since = f", since {info['started_at']}" if info.get("started_at") else ""
    return f"pid {info['pid']}{what}{since}"


@contextlib.contextmanager
def hold(directory: str | os.PathLike[str], *, what: str = "another run") -> Iterator[Path]:
    """Exclusive, non-blocking lock on ``directory`` (created if missing) for the ``with`` body.

    Raises:
        LockedError: a live process holds it; the message names that process's pid.
    """
    import fcntl

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / LOCK_NAME
    with open(path, "a+", encoding="utf-8") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockedError(f"{directory} is in use: {what} holds {path} ({_holder(path)}). Wait for it to "
                              f"finish or stop it (kill that pid), or use another directory.") from None
        f.seek(0)
        f.truncate()
        f.write(json.dumps({"pid": os.getpid(), "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:2]]),
                            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}))
        f.flush()
        try:
            yield directory
        finally:
            with contextlib.suppress(OSError):
                f.seek(0)
                f.truncate()
