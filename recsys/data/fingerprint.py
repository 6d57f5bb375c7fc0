"""Content fingerprints of the data stage's input files: an edited log is never taken for the old one.

Size and mtime are not enough: ``cp -p``, ``rsync -t``, ``tar`` and ``touch -r`` give an edited file the old
file's size and mtime. Each file's bytes are hashed (BLAKE2b, 128-bit digest, streamed in 1 MiB blocks, so
memory stays flat). Cost: 1.5 s per GB on one core of the (shared) development machine, measured with
``python -m recsys.data.fingerprint FILE`` on 1 GiB of random bytes; a GB of logs takes far longer to load.
SHA-256 measured the same there (1.5 s/GB, the CPU has SHA extensions); BLAKE2b is kept as it is about twice
as fast as SHA-256 on CPUs without them.
"""

from __future__ import annotations

import glob
import hashlib
import os
import sys
import time
from pathlib import Path

CHUNK = 1 << 20


def file_digest(path: str | os.PathLike[str]) -> str:
    """BLAKE2b-128 (hex) of the file's bytes."""
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
    return h.hexdigest()


def input_files(pattern: str) -> list[Path]:
    """The files ``pattern`` (a file, a folder: every file under it, or a glob) names, sorted."""
    if any(ch in pattern for ch in "*?["):
        found = sorted(Path(f) for f in glob.glob(pattern, recursive=True))
    else:
        found = [Path(pattern)]
    out: list[Path] = []
    for f in found:
        if f.is_file():
            out.append(f)
        elif f.is_dir():
            out.extend(g for g in sorted(f.rglob("*")) if g.is_file())
    return out


def fingerprint(patterns: list[str | None]) -> list[dict[str, object]]:
    """[{file, bytes, blake2b}] of every input file (the manifest records it; the stage key hashes it)."""
    return [{"file": str(f), "bytes": f.stat().st_size, "blake2b": file_digest(f)}
            for p in patterns if p for f in input_files(p)]


def main(argv: list[str] | None = None) -> int:
    """Print each file's digest and the hashing speed: ``python -m recsys.data.fingerprint FILE...``."""
    for name in argv if argv is not None else sys.argv[1:]:
        t0 = time.perf_counter()
        digest = file_digest(name)
        dt = time.perf_counter() - t0
        size = Path(name).stat().st_size
        print(f"{digest}  {name}  {size / 1e9:.3f} GB in {dt:.2f}s = {dt / max(size / 1e9, 1e-9):.2f} s/GB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
