"""Published versions: build in ``work/``, rename into ``versions/``, switch ``current`` in one rename.

```
<root>/versions/0001/     complete run directories (tables, teacher, student, index, rank, manifest.json)
<root>/versions/0002/
<root>/current -> versions/0002     relative symlink; replaced atomically (temp link + os.replace)
<root>/work/0003/         a candidate being built; renamed into versions/ only when complete
<root>/rejected/0004/     candidates the gate refused (kept for inspection)
<root>/events.jsonl       publish / rollback / refused, one JSON line each (what rollback walks back)
```

A kill at any point leaves ``current`` pointing at a complete, unchanged version: the candidate is not
under ``versions/`` until its rename, and ``current`` moves only after that, by one ``rename(2)``.
Functions here assume the caller holds ``locked(root)`` (one writer per root).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from recsys.artifacts import MANIFEST, ArtifactError, RunDir

log = logging.getLogger(__name__)

VERSIONS, WORK, REJECTED, TRASH = "versions", "work", "rejected", ".trash"
CURRENT, EVENTS, LOCK = "current", "events.jsonl", ".lock"
PAUSE_ENV, PAUSE_FLAG_ENV, PAUSE_S_ENV = "RECSYS_PAUSE_AT", "RECSYS_PAUSE_FLAG", "RECSYS_PAUSE_S"


class PublishError(RuntimeError):
    """A publish, rollback or load cannot proceed; the message says why and what to do."""


def pause_point(name: str) -> None:
    """Fault-injection hook (tests): with ``RECSYS_PAUSE_AT=name``, touch ``RECSYS_PAUSE_FLAG`` and sleep
    ``RECSYS_PAUSE_S`` seconds (default 120) right here, so a test can SIGKILL the process at this point."""
    if os.environ.get(PAUSE_ENV) != name:
        return
    flag = os.environ.get(PAUSE_FLAG_ENV)
    if flag:
        Path(flag).write_text(name)
    time.sleep(float(os.environ.get(PAUSE_S_ENV, "120")))


def version_name(n: int) -> str:
    return f"{n:04d}"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def locked(root: str | os.PathLike[str]) -> Iterator[Path]:
    """Exclusive, non-blocking lock on ``root`` (released by the OS if the process dies; the message of a
    refusal names the holder's pid)."""
    from recsys.runlock import LockedError, hold

    root = Path(root)
    try:
        with hold(root, what="another retrain or rollback"):
            shutil.rmtree(root / TRASH, ignore_errors=True)  # leftovers of a prune that was killed
            yield root
    except LockedError as e:
        raise PublishError(str(e)) from None


# --------------------------------------------------------------------------- reading the store
def _names(root: Path, sub: str) -> list[str]:
    d = root / sub
    return sorted(p.name for p in d.iterdir() if p.is_dir() and p.name.isdigit()) if d.is_dir() else []


def list_versions(root: str | os.PathLike[str]) -> list[str]:
    return _names(Path(root), VERSIONS)


def current_name(root: str | os.PathLike[str]) -> str | None:
    link = Path(root) / CURRENT
    return Path(os.readlink(link)).name if link.is_symlink() else None


def version_dir(root: str | os.PathLike[str], name: str) -> Path:
    return Path(root) / VERSIONS / name


def read_manifest(path: Path) -> dict[str, Any]:
    """A run directory's manifest without creating anything; {} when absent or unreadable."""
    try:
        return json.loads((path / MANIFEST).read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def events(root: str | os.PathLike[str]) -> list[dict[str, Any]]:
    p = Path(root) / EVENTS
    out = []
    for line in p.read_text().splitlines() if p.exists() else []:
        with contextlib.suppress(json.JSONDecodeError):  # a line cut by a kill is skipped
            out.append(json.loads(line))
    return out


def append_event(root: Path, **fields: Any) -> None:
    line = json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **fields})
    with open(root / EVENTS, "a", encoding="utf-8") as f:
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())


def published_stack(root: str | os.PathLike[str]) -> list[str]:
    """Versions in the order they became current, rolled-back ones popped; the last is ``current``."""
    stack: list[str] = []
    for e in events(root):
        if e.get("action") == "publish":
            stack.append(e["version"])
        elif e.get("action") == "rollback":
            while stack and stack[-1] != e["to"]:
                stack.pop()
            if not stack:
                stack.append(e["to"])
    cur = current_name(root)
    if cur is not None and (not stack or stack[-1] != cur):  # a publish killed before its event line
        stack.append(cur)
    return stack


def find_request(root: str | os.PathLike[str], request: str) -> tuple[str, Path] | None:
    """Where a retrain request (``manifest.retrain.request``) already has a directory: (sub, path)."""
    root = Path(root)
    for sub in (WORK, VERSIONS, REJECTED):
        for name in _names(root, sub):
            if read_manifest(root / sub / name).get("retrain", {}).get("request") == request:
                return sub, root / sub / name
    return None


def latest_refused(root: str | os.PathLike[str], *, parent: str) -> str | None:
    """The newest refused candidate that was built on version ``parent`` and has intact tables, or None."""
    root = Path(root)
    for name in reversed(_names(root, REJECTED)):
        d = root / REJECTED / name
        if read_manifest(d).get("retrain", {}).get("parent") != parent:
            continue
        try:
            RunDir(d).verify("data")
        except ArtifactError:
            continue
        return name
    return None


def verify_all(run_dir: RunDir, *, required: tuple[str, ...] = ()) -> None:
    """Check every output recorded in the manifest against its sha256; raise ArtifactError naming the file."""
    stages = run_dir.manifest().get("stages", {})
    missing = [s for s in required if s not in stages]
    if not stages or missing:
        raise ArtifactError(f"{run_dir.layout.manifest}: not a complete version (stages missing: "
                            f"{missing or 'all'}); it cannot be served.")
    for stage in stages:
        run_dir.verify(stage)


def load_current(root: str | os.PathLike[str], *, required: tuple[str, ...] = ()) -> RunDir:
    """The published version (resolved, so a later switch does not move it under the reader), verified.

    Raises PublishError when nothing is published and ArtifactError when an artifact is missing,
    truncated or altered (the message names the file and its stage).
    """
    root = Path(root)
    name = current_name(root)
    if name is None:
        raise PublishError(f"{root}: nothing is published yet (no '{CURRENT}' link); run `recsys retrain` first.")
    d = version_dir(root, name)
    if not (d / MANIFEST).exists():
        raise ArtifactError(f"{root / CURRENT} points at {d}, which has no {MANIFEST}; "
                            "run `recsys rollback` to serve the previous version.")
    rd = RunDir(d.resolve())
    verify_all(rd, required=required)
    return rd


# --------------------------------------------------------------------------- changing the store
def new_work(root: str | os.PathLike[str]) -> RunDir:
    """Reserve the next version number as ``work/<NNNN>`` (numbers are never reused)."""
    root = Path(root)
    (root / WORK).mkdir(parents=True, exist_ok=True)
    n = max((int(x) for sub in (WORK, VERSIONS, REJECTED) for x in _names(root, sub)), default=0) + 1
    while True:
        try:
            os.mkdir(root / WORK / version_name(n))
            return RunDir(root / WORK / version_name(n))
        except FileExistsError:
            n += 1


def _remove(root: Path, sub: str, name: str) -> None:
    """Delete ``sub/name`` by first renaming it out of sight, so a kill never leaves half a version there."""
    (root / TRASH).mkdir(exist_ok=True)
    trash = root / TRASH / f"{sub}-{name}-{os.getpid()}"
    os.rename(root / sub / name, trash)
    pause_point("prune:renamed")
    shutil.rmtree(trash, ignore_errors=True)


def discard_work(root: str | os.PathLike[str], *, except_request: str | None = None) -> list[str]:
    """Remove work dirs of other (abandoned) requests; returns their names."""
    root = Path(root)
    gone = []
    for name in _names(root, WORK):
        if except_request is None or read_manifest(root / WORK / name).get("retrain", {}).get("request") != except_request:
            _remove(root, WORK, name)
            gone.append(name)
    return gone


def switch(root: str | os.PathLike[str], name: str) -> None:
    """Point ``current`` at ``versions/<name>``: a temp symlink renamed over the old one (atomic)."""
    root = Path(root)
    if not (version_dir(root, name) / MANIFEST).exists():
        raise PublishError(f"{version_dir(root, name)}: no such complete version; nothing switched.")
    tmp = root / f".{CURRENT}.{os.getpid()}.tmp"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(Path(VERSIONS) / name, tmp)  # relative: the whole root can be moved or copied
    os.replace(tmp, root / CURRENT)
    _fsync_dir(root)


def publish(root: str | os.PathLike[str], work: RunDir, *, keep: int, required: tuple[str, ...] = (),
            info: dict[str, Any] | None = None) -> Path:
    """Verify ``work``, rename it into ``versions/``, switch ``current`` to it, prune old versions."""
    root = Path(root)
    verify_all(work, required=required)
    name, parent = work.root.name, current_name(root)
    work.update_manifest(publish={**(info or {}), "version": name, "parent": parent,
                                  "published_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    (root / VERSIONS).mkdir(exist_ok=True)
    pause_point("publish:before_rename")
    os.rename(work.root, version_dir(root, name))
    _fsync_dir(root / VERSIONS)
    return finish_publish(root, name, parent=parent, keep=keep)


def finish_publish(root: Path, name: str, *, parent: str | None, keep: int) -> Path:
    """Switch ``current`` to an already renamed version, log it and prune (also completes a killed publish)."""
    pause_point("publish:before_switch")
    switch(root, name)
    append_event(root, action="publish", version=name, parent=parent)
    pause_point("publish:before_prune")
    prune(root, keep=keep)
    log.info("published %s (previous %s) -> %s", name, parent, root / CURRENT)
    return version_dir(root, name)


def prune(root: str | os.PathLike[str], *, keep: int) -> list[str]:
    """Keep ``current`` and the ``keep - 1`` versions published before it; delete the rest."""
    root = Path(root)
    stack = [v for v in published_stack(root) if version_dir(root, v).exists()]
    keep_set = set(stack[-max(1, keep):]) | ({current_name(root)} - {None})
    gone = [v for v in list_versions(root) if v not in keep_set]
    for v in gone:
        _remove(root, VERSIONS, v)
    return gone


def reject(root: str | os.PathLike[str], work: RunDir, *, keep: int, info: dict[str, Any]) -> Path:
    """Move a refused candidate to ``rejected/`` (``current`` is untouched); keep the newest ``keep``."""
    root = Path(root)
    work.update_manifest(rejected=info)
    (root / REJECTED).mkdir(exist_ok=True)
    dst = root / REJECTED / work.root.name
    os.rename(work.root, dst)
    append_event(root, action="refused", version=work.root.name, current=current_name(root))
    for old in _names(root, REJECTED)[:-max(1, keep)]:
        _remove(root, REJECTED, old)
    return dst


def rollback(root: str | os.PathLike[str], *, to: str | None = None) -> tuple[str, str]:
    """Point ``current`` at the version published before it (or at ``to``); returns (from, to)."""
    root = Path(root)
    cur = current_name(root)
    if cur is None:
        raise PublishError(f"{root}: nothing is published; there is nothing to roll back.")
    if to is None:
        prev = [v for v in published_stack(root)[:-1] if v != cur and version_dir(root, v).exists()]
        prev = prev or [v for v in list_versions(root) if v < cur]
        if not prev:
            raise PublishError(f"{root}: no version before {cur} is kept (publish.keep too small?); "
                               f"versions present: {list_versions(root)}.")
        to = prev[-1]
    if not version_dir(root, to).exists():
        raise PublishError(f"{root}: version {to} does not exist; present: {list_versions(root)}.")
    verify_all(RunDir(version_dir(root, to)))  # never point current at a broken version
    switch(root, to)
    append_event(root, action="rollback", **{"from": cur, "to": to})
    return cur, to
