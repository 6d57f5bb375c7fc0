"""index/: the FAISS index file, its manifest, and the ANN trade-off points.

``index.faiss``     faiss's own format; parsed by ``recsys.index.io`` only after ``verify_files`` passed
``manifest.json``   format, kind, metric, dim, count, config, search_params, tune, vectors_file,
                    vectors_sha256 (the item vectors it was built from), index_sha256, faiss_version
``tradeoff.json``   {"k", "queries", "points": [...]} recall / latency per setting (optional)

The index manifest ties the index to the exact vectors file: an index silently serving another model's ids is
the failure it prevents. Inside a run, both files are also verified against the run manifest.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from recsys.contracts import _checks as C
from recsys.contracts.errors import ArtifactError, problem
from recsys.contracts.layout import Layout, index_files
from recsys.contracts.manifests import file_sha256, verify, verify_sha

STAGE = "index"
FORMAT = 1
REQUIRED = ("format", "kind", "metric", "dim", "count", "config", "vectors_sha256", "index_sha256")
_FIX = "rebuild the index (`recsys build-index --force`, or re-run the index stage with --force)"


class IndexMismatchError(ArtifactError):
    """A saved index does not belong to the vectors it is loaded with (checksum, dim, metric or count)."""


def write(*, directory: Path, write_index: Callable[[Path], None], manifest: Mapping[str, Any],
          vectors_path: Path) -> list[Path]:
    """``write_index(tmp)`` writes the faiss file (renamed into place atomically); the manifest gets the
    sha256 of the index file and of ``vectors_path``. Returns [index file, manifest]."""
    from recsys.artifacts import atomic_path, to_jsonable, write_json

    idx, man = index_files(directory)
    with atomic_path(idx) as tmp:
        write_index(tmp)
    full = {"format": FORMAT, **dict(manifest), "vectors_file": Path(vectors_path).name,
            "vectors_sha256": file_sha256(vectors_path), "index_sha256": file_sha256(idx)}
    write_json(man, to_jsonable(full))
    return [idx, man]


def read_manifest(*, directory: Path, layout: Layout | None = None) -> dict[str, Any]:
    """The index manifest, verified (against the run manifest when ``layout`` is given) and complete."""
    _, man = index_files(directory)
    if not man.exists():
        raise problem(man, "missing", f"build the index first ({_FIX})")
    if layout is not None:
        verify(man, layout=layout, stage=STAGE)
    m = C.read_json(man, stage=STAGE)
    missing = [k for k in REQUIRED if k not in m]
    if missing:
        raise problem(man, f"fields {missing} missing", _FIX)
    return m


def verify_files(*, directory: Path, manifest: Mapping[str, Any], vectors_path: Path,
                 layout: Layout | None = None) -> Path:
    """Refuse the index file unless it hashes to the manifest's ``index_sha256`` and ``vectors_path`` to its
    ``vectors_sha256`` (IndexMismatchError). Returns the index file's path, safe to hand to faiss."""
    idx, man = index_files(directory)
    if not idx.exists():
        raise problem(idx, f"missing though {man} exists", _FIX)
    sha = file_sha256(idx) if layout is None else verify_sha(idx, layout=layout, stage=STAGE)
    if sha != manifest.get("index_sha256"):
        raise IndexMismatchError(f"{idx}: checksum differs from {man} (truncated or altered); {_FIX}.")
    vsha = file_sha256(vectors_path)
    if vsha != manifest.get("vectors_sha256"):
        raise IndexMismatchError(
            f"{man}: index was built from vectors sha256 {str(manifest.get('vectors_sha256'))[:12]}..., but "
            f"{vectors_path} has {vsha[:12]}... (a different student export); {_FIX} from these vectors.")
    return idx


def write_tradeoff(*, layout: Layout, tradeoff: Mapping[str, Any]) -> Path:
    from recsys.artifacts import write_json

    return write_json(layout.tradeoff, dict(tradeoff))


def read_tradeoff(*, layout: Layout) -> list[dict[str, Any]]:
    """The ANN trade-off points, or [] when the index stage did not sweep (``index.tradeoff=false``)."""
    if not layout.tradeoff.exists():
        return []
    p = verify(layout.tradeoff, layout=layout, stage=STAGE)
    pts = C.read_json(p, stage=STAGE).get("points") or []
    if not isinstance(pts, list):
        raise problem(p, "'points' is not a list", _FIX)
    return pts
