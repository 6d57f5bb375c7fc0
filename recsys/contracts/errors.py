"""The one error a reader raises for a damaged, missing or inconsistent artifact."""

from __future__ import annotations

import os
from pathlib import Path


class StageError(RuntimeError):
    """A stage cannot go on; the message is one paragraph (what, where, what to do). The ``recsys`` commands
    print it as ``error: ...`` and exit non-zero instead of a traceback."""


class ArtifactError(StageError):
    """An artifact is missing, truncated, altered or inconsistent with its manifest or its sibling files.

    The message is one paragraph: the file, what is wrong, what to do. Raise it through ``problem``.
    """


def problem(path: str | os.PathLike[str], what: str, fix: str) -> ArtifactError:
    """``ArtifactError("<path>: <what>; <fix>.")`` with newlines folded, so the message stays one paragraph."""
    text = f"{Path(path)}: {what.rstrip('. ')}; {fix.rstrip('. ')}."
    return ArtifactError(" ".join(text.split()))


def rebuild(stage: str) -> str:
    """The standard advice: which command rebuilds the file."""
    return (f"re-run the '{stage}' stage with --force (e.g. `recsys evaluate --force -o <run>`) to rebuild it, "
            "or restore the run directory from a good copy")
