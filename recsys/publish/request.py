"""Identity of a retrain request, and the tables a new batch is appended to.

A retrain is identified by the published version it starts from (name + the outputs of its data and teacher
stages), the refused candidate whose tables it carries on (if any) and the batch: the new logs' fingerprint
plus the config that shapes the model. ``store.find_request`` finds a candidate by this key, which is what
makes a re-run resume (or do nothing) instead of starting over.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from recsys.artifacts import RunDir, hash_obj
from recsys.publish import store


def batch_key(*, logs: str, config: Any) -> str:
    """``logs``: the data stage's fingerprint of the new batch; ``config``: what shapes the model (without the
    gate and keep settings, which do not)."""
    return hash_obj({"logs": logs, "cfg": config})


def request_key(*, parent: RunDir | None, batch: str, base: RunDir | None = None) -> str:
    """Identity of one retrain: the parent version (name + outputs), the tables it appends to and the batch."""
    par = None if parent is None else [parent.root.name, {s: parent.output_hash(s) for s in ("data", "teacher")}]
    carried = None if base is None else [base.root.name, base.output_hash("data")]
    return hash_obj({"parent": par, "batch": batch, "v": 1, **({"carried": carried} if carried else {})})


def data_base(root: Path, *, parent: RunDir | None, carry_refused: bool) -> tuple[RunDir | None, list[str]]:
    """The tables a new batch is appended to: the newest refused candidate built on the published version
    (so its logs are kept) when ``carry_refused``, else the published version's (None). Returns (that run,
    the refused versions whose batches it holds, oldest first)."""
    if parent is None or not carry_refused:
        return None, []
    name = store.latest_refused(root, parent=parent.root.name)
    if name is None:
        return None, []
    base = RunDir(root / store.REJECTED / name)
    carried = [*base.manifest().get("retrain", {}).get("carried", []), name]
    return base, carried
