"""The version being served, and the watcher that swaps in a new one when ``current`` moves.

``Holder.current`` is one ``Served`` (version name + loaded ``Recommender``), replaced by a single
attribute assignment: a request reads it once and finishes on that object even if a swap happens
meanwhile (the old version's arrays stay alive until its last request ends). A new version is loaded
and *verified* (every recorded output's sha256, then ``Recommender.load``'s own checks) in the
watcher's thread, off the request path; if that fails the old version keeps serving, the failure is
logged and counted (``recsys_reloads{outcome="failed"}``), and the same target is not retried until
``current`` moves again.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from pathlib import Path
from typing import Any

from recsys.artifacts import RunDir
from recsys.publish.store import CURRENT, VERSIONS, current_name, load_current, verify_all
from recsys.serve.config import ServeConfig
from recsys.serve.metrics import ServeMetrics

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Served:
    version: str
    rec: Any  # recsys.api.Recommender
    path: Path
    load_seconds: float
    loaded_at: float


def is_root(path: Path) -> bool:
    """A retrain root (``versions/`` + ``current``) rather than one run directory."""
    return (path / CURRENT).is_symlink() or (path / VERSIONS).is_dir()


def load_version(path: Path, *, cfg: ServeConfig) -> Served:
    """Verify and load what ``path`` serves: ``current`` of a retrain root, or the run directory itself.

    Raises PublishError (nothing published) or ArtifactError / IndexMismatchError naming the bad file."""
    from recsys.api import Recommender

    t0 = time.perf_counter()
    required = ("data", f"student/{cfg.variant}", "index")
    if is_root(path):
        rd = load_current(path, required=required)  # resolved: a later switch does not move it
    else:
        rd = RunDir(path.resolve())
        verify_all(rd, required=required)
    rec = Recommender.load(rd.root, variant=cfg.variant, use_ranker=cfg.use_ranker)
    return Served(version=rd.root.name, rec=rec, path=rd.root, load_seconds=time.perf_counter() - t0,
                  loaded_at=time.time())


class Holder:
    """The served version of ``path`` and (for a retrain root) a thread that follows ``current``."""

    def __init__(self, path: Path, *, cfg: ServeConfig, metrics: ServeMetrics) -> None:
        self.path, self.cfg, self.metrics = path, cfg, metrics
        self.current: Served | None = None
        self.last_error: str | None = None
        self._failed: str | None = None  # target that failed; retried only after `current` moves
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def target(self) -> str | None:
        """The version ``current`` names now (a run directory: its own name)."""
        return current_name(self.path) if is_root(self.path) else self.path.resolve().name

    def refresh(self) -> bool:
        """Load the target if it differs from what is served (and did not fail already); True on a swap."""
        target = self.target()
        cur = self.current
        if target is None:
            self.last_error = f"nothing is published under {self.path} yet (no '{CURRENT}' link)"
            return False
        if (cur is not None and target == cur.version) or target == self._failed:
            return False
        try:
            new = load_version(self.path, cfg=self.cfg)
        except Exception as e:  # noqa: BLE001 - any failure keeps the old version serving
            self._failed, self.last_error = target, f"{type(e).__name__}: {e}"
            self.metrics.reloads.labels(outcome="failed").inc()
            log.error("version %s of %s not loaded, still serving %s: %s", target, self.path,
                      cur.version if cur else "nothing", self.last_error)
            return False
        self.current, self._failed, self.last_error = new, None, None  # the swap: one assignment
        self.metrics.reloads.labels(outcome="ok").inc()
        self.metrics.served(version=new.version, seconds=new.load_seconds, at=new.loaded_at)
        log.info("serving version %s of %s (loaded + verified in %.2fs; previous %s)", new.version, self.path,
                 new.load_seconds, cur.version if cur else None)
        return True

    def start(self) -> None:
        """Load now, then (a retrain root) check ``current`` every ``reload_interval_s`` in a daemon thread."""
        self.refresh()
        if is_root(self.path) and self._thread is None:
            self._thread = threading.Thread(target=self._watch, name="recsys-reload", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _watch(self) -> None:
        while not self._stop.wait(self.cfg.reload_interval_s):
            try:
                self.refresh()
            except Exception:
                log.exception("reload check of %s failed", self.path)
