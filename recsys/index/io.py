"""Save / load an index with a JSON manifest that ties it to the exact vectors file it was built from.

``<dir>/index.faiss`` (faiss's own format) + ``<dir>/manifest.json``: kind, metric, dim, count, build and
search parameters, sha256 of the item-vectors file and of the index file, faiss version. ``load_index``
refuses an index whose manifest does not match the vectors it is loaded with: a stale index silently
serving another model's ids is the failure this prevents.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from recsys.artifacts import ArtifactError, atomic_path, file_sha256, read_npy, to_jsonable, write_json
from recsys.config import ConfigError, build
from recsys.index._faiss import import_faiss
from recsys.index.build import check_metric, faiss_metric_name
from recsys.index.config import IndexConfig
from recsys.index.errors import IndexMismatchError
from recsys.index.search import ItemIndex, normalize
from recsys.index.tune import TuneResult

INDEX_FILE = "index.faiss"
MANIFEST_FILE = "manifest.json"
FORMAT = 1


def save_index(
    index: ItemIndex, directory: str | Path, *, vectors_path: str | Path, tune: TuneResult | None = None
) -> list[Path]:
    """Write ``index.faiss`` and ``manifest.json`` under ``directory`` (atomically). Returns both paths."""
    faiss = import_faiss()
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    with atomic_path(d / INDEX_FILE) as tmp:
        faiss.write_index(index.index, str(tmp))
    manifest = {
        "format": FORMAT,
        "kind": index.cfg.kind,
        "metric": index.cfg.metric,
        "dim": index.dim,
        "count": index.count,
        "config": dataclasses.asdict(index.cfg),
        "search_params": dict(index.params),
        "tune": dataclasses.asdict(tune) if tune is not None else None,
        "vectors_file": Path(vectors_path).name,
        "vectors_sha256": file_sha256(vectors_path),
        "index_sha256": file_sha256(d / INDEX_FILE),
        "faiss_version": faiss.__version__,
    }
    write_json(d / MANIFEST_FILE, to_jsonable(manifest))
    return [d / INDEX_FILE, d / MANIFEST_FILE]


def read_manifest(directory: str | Path) -> dict[str, Any]:
    p = Path(directory) / MANIFEST_FILE
    if not p.exists():
        raise ArtifactError(f"{p}: missing; build the index first (`recsys index`)")
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise ArtifactError(f"{p}: not valid JSON ({e}); rebuild the index") from e


def load_index(
    directory: str | Path, *, vectors_path: str | Path, metric: str | None = None, use_gpu: str | None = None
) -> ItemIndex:
    """Load an index saved by ``save_index`` and verify it against ``vectors_path``.

    Args:
        vectors_path: the item_vectors.npy the index must have been built from (checksum-verified).
        metric: the model's metric (student meta.json); refused if the index was built for another.
        use_gpu: override the saved ``use_gpu`` ("auto" / "never" / "always").
    Raises:
        IndexMismatchError: checksum, dim or count differ; MetricMismatchError: wrong metric.
    """
    faiss = import_faiss()
    d = Path(directory)
    m = read_manifest(d)
    where = str(d / MANIFEST_FILE)
    idx_path = d / INDEX_FILE
    if not idx_path.exists():
        raise ArtifactError(f"{idx_path}: missing though {where} exists; rebuild the index")
    if file_sha256(idx_path) != m.get("index_sha256"):
        raise IndexMismatchError(f"{idx_path}: checksum differs from {where} (truncated or altered); rebuild the index")
    sha = file_sha256(vectors_path)
    if sha != m.get("vectors_sha256"):
        raise IndexMismatchError(
            f"{where}: index was built from vectors sha256 {str(m.get('vectors_sha256'))[:12]}..., but {vectors_path} "
            f"has {sha[:12]}... (a different student export). Rebuild the index from these vectors."
        )
    vectors = read_npy(vectors_path).astype(np.float32, copy=False)
    if vectors.ndim != 2 or vectors.shape[1] != m.get("dim") or vectors.shape[0] != m.get("count"):
        raise IndexMismatchError(
            f"{where}: manifest says {m.get('count')} x {m.get('dim')} vectors but {vectors_path} is {vectors.shape}"
        )
    if metric is not None:
        check_metric(index_metric=m.get("metric", "?"), model_metric=metric, where=where)
    index = faiss.read_index(str(idx_path))
    if index.d != m["dim"] or index.ntotal != m["count"]:
        raise IndexMismatchError(f"{idx_path}: holds {index.ntotal} x {index.d}, manifest says {m['count']} x {m['dim']}")
    check_metric(index_metric=faiss_metric_name(index), model_metric="ip", where=str(idx_path))
    try:
        cfg = build(IndexConfig, {**m["config"], **({"use_gpu": use_gpu} if use_gpu else {})})
    except (ConfigError, KeyError, TypeError) as e:
        raise IndexMismatchError(f"{where}: unreadable config ({e}); rebuild the index") from e
    if cfg.kind != m["kind"] or cfg.metric != m["metric"]:
        raise IndexMismatchError(f"{where}: kind/metric fields disagree with its config; rebuild the index")
    raw, index = index, faiss.downcast_index(index)
    raw.this.disown()  # the downcast wrapper must own the C++ object, or it dies with ``raw``
    index.this.own(True)
    if not isinstance(index, faiss.IndexIDMap2):
        raise IndexMismatchError(f"{idx_path}: expected an IndexIDMap2, found {type(index).__name__}; rebuild")
    ids = faiss.vector_to_array(index.id_map).astype(np.int64)
    x = normalize(vectors) if cfg.metric == "cosine" else np.ascontiguousarray(vectors)
    out = ItemIndex(index=index, cfg=cfg, vectors=x, ids=ids)
    out.set_params(**m.get("search_params", {}))
    return out
