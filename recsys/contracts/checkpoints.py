"""student/<variant>/ckpt/{last,best}.rank<r>.pt: training checkpoints with their digest inside the file.

File = ``MAGIC`` line + the payload's sha256 (64 hex + newline) + the payload (``torch.save`` bytes, made
and parsed by ``recsys.student.checkpoint``). The digest travels with the file and the whole file is
renamed into place in one step, so there is no moment where a checkpoint and a separate digest disagree;
``read`` refuses a file whose payload does not match before torch sees a byte. Resume and warm start both
read through it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from recsys.contracts.errors import problem

__all__ = ["MAGIC", "problem", "read", "write"]

MAGIC = b"RECSYS-CKPT 1\n"
_HEAD = len(MAGIC) + 65


def _fix(path: Path) -> str:
    return (f"delete {Path(path).parent} to train this variant from scratch (or, for a warm start, re-export "
            "the version it starts from)")


def write(*, path: Path, payload: bytes) -> Path:
    """Atomically write ``payload`` with its sha256 in front."""
    from recsys.artifacts import atomic_path

    digest = hashlib.sha256(payload).hexdigest().encode()
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(MAGIC + digest + b"\n")
        f.write(payload)
    return Path(path)


def read(*, path: Path) -> bytes:
    """The payload of a checkpoint, verified against its embedded sha256 (ArtifactError naming the file)."""
    path = Path(path)
    if not path.is_file():
        raise problem(path, "checkpoint missing", _fix(path))
    data = path.read_bytes()
    if len(data) < _HEAD or not data.startswith(MAGIC) or data[_HEAD - 1:_HEAD] != b"\n":
        raise problem(path, "not a recsys checkpoint (no digest header: truncated, altered or written by an "
                            "older recsys)", _fix(path))
    want, payload = data[len(MAGIC):_HEAD - 1].decode("ascii", "replace"), data[_HEAD:]
    if hashlib.sha256(payload).hexdigest() != want:
        raise problem(path, f"checkpoint digest mismatch: its {len(payload)} payload bytes do not hash to the "
                            "sha256 written with them (truncated or altered)", _fix(path))
    return payload
