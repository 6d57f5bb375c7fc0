"""Run directories, manifests, atomic writes and content hashes.

Every stage writes into one run directory and records what it did in ``manifest.json``:
its config, the hashes of its inputs and outputs, timings and counts. A stage whose key
(hash of config + inputs) is unchanged and whose outputs still match their recorded
checksums is skipped — that is what makes re-runs cheap and a killed run resumable.

Writes go to a temporary name in the same directory and are renamed into place, so a killed
run never leaves a half-written file that looks whole.

File names live in ``recsys.contracts.layout`` (``Layout``, re-exported here); reading an artifact goes through
``recsys.contracts``, which verifies it first. The writers here are the low-level atomic primitives.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from recsys.contracts.errors import ArtifactError
from recsys.contracts.layout import MANIFEST, Layout
from recsys.contracts.manifests import file_sha256

__all__ = ["MANIFEST", "ArtifactError", "Layout", "RunDir", "atomic_path", "file_sha256", "hash_obj", "to_jsonable",
           "versions", "write_bytes", "write_json", "write_npy", "write_parquet", "write_safetensors", "write_text"]
_UMASK = os.umask(0)
os.umask(_UMASK)


# --------------------------------------------------------------------------- atomic writes
@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it into place only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; artifacts get the usual permissions
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    return write_text(path, json.dumps(to_jsonable(obj), indent=2, sort_keys=False) + "\n")


def write_parquet(path: str | os.PathLike[str], df: pl.DataFrame) -> Path:
    with atomic_path(path) as tmp:
        df.write_parquet(tmp, compression="zstd", statistics=True)
    return Path(path)


def write_npy(path: str | os.PathLike[str], arr: np.ndarray) -> Path:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, arr, allow_pickle=False)
    return Path(path)


def read_npy(path: str | os.PathLike[str]) -> np.ndarray:
    """Raw, unverified (tests and tools). Run-directory artifacts are read through ``recsys.contracts``."""
    return np.load(path, allow_pickle=False)


def write_safetensors(
    path: str | os.PathLike[str], tensors: Mapping[str, np.ndarray], metadata: Mapping[str, str] | None = None
) -> Path:
    from safetensors.numpy import save_file

    with atomic_path(path) as tmp:
        save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(tmp), metadata=dict(metadata or {}))
    return Path(path)


def read_safetensors(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Raw, unverified (the teacher's embedding cache, tests). Run artifacts: ``recsys.contracts.teacher``."""
    from safetensors.numpy import load_file

    if not Path(path).exists():
        raise ArtifactError(f"{path}: missing. Run the stage that writes it first.")
    return load_file(str(path))


# --------------------------------------------------------------------------- hashing
def to_jsonable(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


def hash_obj(obj: Any) -> str:
    """Stable sha256 (16 hex) of a JSON-able object (dataclasses, dicts, lists, scalars)."""
    blob = json.dumps(to_jsonable(obj), sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def hash_files(paths: list[Path]) -> str:
    return hash_obj([[str(p.name), file_sha256(p)] for p in sorted(paths)])


# --------------------------------------------------------------------------- run dir + manifest
class RunDir:
    """A run directory with its manifest. Only process rank 0 should write the manifest."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.layout = Layout(self.root)
        self.root.mkdir(parents=True, exist_ok=True)

    # manifest -------------------------------------------------------------
    def manifest(self) -> dict[str, Any]:
        p = self.layout.manifest
        if not p.exists():
            return {"stages": {}}
        try:
            return json.loads(p.read_text())
        except json.JSONDecodeError as e:
            raise ArtifactError(f"{p}: not valid JSON ({e}). Delete it to start the run over.") from e

    @contextlib.contextmanager
    def _manifest_lock(self) -> Iterator[None]:
        """Serialise read-modify-writes of the manifest across processes (``flock`` on ``.manifest.lock``): the
        student's parallel lanes record their variants from separate processes. Where the file system has no
        ``flock`` (some network mounts) the write goes ahead unlocked, as before."""
        import fcntl

        with open(self.root / ".manifest.lock", "a") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX)
            except OSError:
                pass
            yield  # closing the file releases the lock

    def update_manifest(self, **fields: Any) -> None:
        with self._manifest_lock():
            m = self.manifest()
            m.update(to_jsonable(fields))
            write_json(self.layout.manifest, m)

    def stage_record(self, stage: str) -> dict[str, Any] | None:
        return self.manifest().get("stages", {}).get(stage)

    def is_fresh(self, stage: str, key: str) -> bool:
        """True if ``stage`` finished with this key and its outputs still match their checksums."""
        rec = self.stage_record(stage)
        if not rec or rec.get("key") != key:
            return False
        try:
            self.verify(stage)
        except ArtifactError:
            return False
        return True

    def verify(self, stage: str) -> None:
        """Raise ArtifactError if any recorded output of ``stage`` is missing or altered."""
        rec = self.stage_record(stage)
        if rec is None:
            raise ArtifactError(f"{self.root}: stage '{stage}' has not run (no entry in {MANIFEST}).")
        for rel, digest in rec.get("outputs", {}).items():
            p = self.root / rel
            if not p.exists():
                raise ArtifactError(f"{p}: recorded by stage '{stage}' but missing. Re-run '{stage}'.")
            if file_sha256(p) != digest:
                raise ArtifactError(
                    f"{p}: checksum differs from {MANIFEST} (truncated or altered). Re-run '{stage}' to rebuild it."
                )

    def record(
        self,
        stage: str,
        *,
        key: str,
        config: Any,
        outputs: list[Path],
        seconds: float,
        **extra: Any,
    ) -> None:
        entry = to_jsonable(
            {
                "key": key,
                "config": config,
                "outputs": {str(Path(p).resolve().relative_to(self.root.resolve())): file_sha256(p) for p in outputs},
                "seconds": round(seconds, 3),
                "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                **extra,
            }
        )
        with self._manifest_lock():
            m = self.manifest()
            m.setdefault("stages", {})[stage] = entry
            write_json(self.layout.manifest, m)

    def output_hash(self, stage: str) -> str:
        """Hash of a finished stage's outputs: the input key of the stages that read them."""
        rec = self.stage_record(stage)
        if rec is None:
            raise ArtifactError(f"{self.root}: stage '{stage}' has not run; run it before the stages that read it.")
        return hash_obj(rec.get("outputs", {}))


def versions() -> dict[str, str]:
    """Versions of the heavy libraries that are installed (without importing them)."""
    from importlib import metadata

    out: dict[str, str] = {}
    for name in ["numpy", "polars", "torch", "fbgemm-gpu-cpu", "fbgemm-gpu", "torchrec", "faiss-cpu",
                 "faiss-gpu-cu12", "transformers", "lightgbm", "implicit"]:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out
