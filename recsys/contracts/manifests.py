"""The digests stages record in ``manifest.json``, and the check every reader makes against them first.

A stage records ``stages.<name>.outputs = {relpath: sha256}`` when it finishes (``RunDir.record``). A reader
calls ``verify(path, layout=..., stage=...)`` before any parser sees the file: the file must exist, be
recorded by some stage, and hash to what was recorded. A file no stage recorded is refused too (a stand-in
written outside the pipeline must be recorded like any stage output).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from recsys.contracts.errors import ArtifactError, problem, rebuild
from recsys.contracts.layout import MANIFEST, Layout

def file_sha256(path: str | os.PathLike[str], *, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def read_manifest(layout: Layout) -> dict[str, Any]:
    """The run manifest (``{"stages": {}}`` when absent); ArtifactError when it is not valid JSON."""
    p = layout.manifest
    if not p.exists():
        return {"stages": {}}
    try:
        m = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise problem(p, f"not valid JSON ({e})", "restore it or delete the run directory and run it again") from e
    if not isinstance(m, dict):
        raise problem(p, "not a JSON object", "restore it or delete the run directory and run it again")
    return m


def recorded(layout: Layout) -> dict[str, tuple[str, str]]:
    """{relpath: (stage, sha256)} of every output recorded in the run manifest, read afresh each time (a
    cache keyed by mtime could miss a rewrite within the file system's clock tick)."""
    out: dict[str, tuple[str, str]] = {}
    for stage, rec in (read_manifest(layout).get("stages") or {}).items():
        for rel, digest in ((rec or {}).get("outputs") or {}).items():
            out[rel] = (stage, digest)
    return out


def verify(path: Path, *, layout: Layout, stage: str) -> Path:
    """Refuse ``path`` unless it exists and hashes to the sha256 its writer recorded in the run manifest.

    Args:
        stage: the stage that writes the file, named in the advice of the error.
    Returns ``path``.
    """
    verify_sha(path, layout=layout, stage=stage)
    return Path(path)


def verify_sha(path: Path, *, layout: Layout, stage: str) -> str:
    """``verify``, returning the file's sha256 (for callers that compare it with another record too)."""
    path = Path(path)
    if not path.is_file():
        raise problem(path, "missing", f"run the '{stage}' stage first (or re-run it with --force)")
    try:
        rel = layout.rel(path)
    except ValueError:
        raise problem(path, f"not inside the run directory {layout.root}", "pass the run directory that holds it")
    entry = recorded(layout).get(rel)
    if entry is None:
        raise problem(path, f"not recorded in {layout.manifest} by any stage, so it cannot be verified "
                            "(written outside the pipeline, or the stage that wrote it was killed before its record)",
                      rebuild(stage))
    who, digest = entry
    sha = file_sha256(path)
    if sha != digest:
        raise problem(path, f"sha256 differs from the one stage '{who}' recorded in {MANIFEST} "
                            "(truncated, altered or replaced)", rebuild(who))
    return sha


def is_recorded(path: Path, *, layout: Layout) -> bool:
    """Whether some stage recorded ``path`` (readers of optional artifacts use this instead of ``exists``)."""
    try:
        return layout.rel(Path(path)) in recorded(layout)
    except ValueError:
        return False


def present(path: Path, *, layout: Layout) -> bool:
    """An optional artifact is there if its file exists or a stage recorded it (then a missing file is an error
    for the reader, not a reason to skip it)."""
    return Path(path).exists() or is_recorded(path, layout=layout)


def raise_from(path: Path, exc: BaseException, *, stage: str) -> ArtifactError:
    """A parser's exception on a file that passed its digest -> one ArtifactError paragraph."""
    msg = " ".join(str(exc).split())[:300]
    return problem(path, f"cannot be parsed ({type(exc).__name__}: {msg})", rebuild(stage))
