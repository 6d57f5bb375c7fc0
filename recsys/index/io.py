"""Save / load an index with a JSON manifest that ties it to the exact vectors file it was built from.

The index file (faiss's own format) + its manifest (names and checks: ``recsys.contracts.index``): kind, metric, dim, count, build and
search parameters, sha256 of the item-vectors file and of the index file, faiss version. ``load_index``
refuses an index whose manifest does not match the vectors it is loaded with: a stale index silently
serving another model's ids is the failure this prevents.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from recsys.artifacts import to_jsonable
from recsys.config import ConfigError, build
from recsys.contracts import index as contract
from recsys.contracts.layout import Layout, index_files
from recsys.index._faiss import import_faiss
from recsys.index.build import check_metric, faiss_metric_name
from recsys.index.config import IndexConfig
from recsys.index.errors import IndexMismatchError
from recsys.index.search import ItemIndex, normalize
from recsys.index.tune import TuneResult

FORMAT = contract.FORMAT


def save_index(
    index: ItemIndex, directory: str | Path, *, vectors_path: str | Path, tune: TuneResult | None = None
) -> list[Path]:
    """Write the index file and its manifest under ``directory`` (atomically). Returns both paths."""
    faiss = import_faiss()
    manifest = {
        "kind": index.cfg.kind,
        "metric": index.cfg.metric,
        "dim": index.dim,
        "count": index.count,
        "config": dataclasses.asdict(index.cfg),
        "search_params": dict(index.params),
        "tune": dataclasses.asdict(tune) if tune is not None else None,
        "faiss_version": faiss.__version__,
    }
    return contract.write(directory=Path(directory), write_index=lambda tmp: faiss.write_index(index.index, str(tmp)),
                          manifest=to_jsonable(manifest), vectors_path=Path(vectors_path))


def read_manifest(directory: str | Path, *, layout: Layout | None = None) -> dict[str, Any]:
    """The index manifest, verified (see ``recsys.contracts.index.read_manifest``)."""
    return contract.read_manifest(directory=Path(directory), layout=layout)


def load_index(
    directory: str | Path, *, vectors_path: str | Path, metric: str | None = None, use_gpu: str | None = None,
    vectors: np.ndarray | None = None, layout: Layout | None = None,
) -> ItemIndex:
    """Load an index saved by ``save_index`` and verify it against ``vectors_path`` before faiss parses it.

    Args:
        vectors_path: the item vectors file the index must have been built from (checksum-verified).
        metric: the model's metric (student meta.json); refused if the index was built for another.
        use_gpu: override the saved ``use_gpu`` ("auto" / "never" / "always").
        vectors: (N, d) the already verified contents of ``vectors_path`` (``recsys.contracts.student``);
            read from ``vectors_path`` when None (a standalone index directory).
        layout: the run holding the index: its files are then also checked against the run manifest.
    Raises:
        IndexMismatchError: checksum, dim or count differ; MetricMismatchError: wrong metric.
    """
    faiss = import_faiss()
    d = Path(directory)
    m = read_manifest(d, layout=layout)
    idx_path, man = index_files(d)
    where = str(man)
    contract.verify_files(directory=d, manifest=m, vectors_path=Path(vectors_path), layout=layout)
    if vectors is None:
        vectors = np.load(vectors_path, allow_pickle=False)
    vectors = vectors.astype(np.float32, copy=False)
    if vectors.ndim != 2 or vectors.shape[1] != m.get("dim") or vectors.shape[0] != m.get("count"):
        raise IndexMismatchError(
            f"{where}: manifest says {m.get('count')} x {m.get('dim')} vectors but {vectors_path} is {vectors.shape}"
        )
    if metric is not None:
        check_metric(index_metric=m.get("metric", "?"), model_metric=metric, where=where)
    try:
        index = faiss.read_index(str(idx_path))
    except RuntimeError as e:  # a file that hashes right but faiss cannot read (another faiss version?)
        raise IndexMismatchError(f"{idx_path}: faiss cannot read it ({' '.join(str(e).split())[:200]}); rebuild "
                                 "the index with this faiss (`recsys build-index --force`)") from None
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
    if len(ids) and (ids.min() < 0 or ids.max() >= len(vectors) or np.unique(ids).size != len(ids)):
        raise IndexMismatchError(f"{idx_path}: its ids are not distinct rows of {vectors_path} "
                                 f"({ids.min()}..{ids.max()}, {np.unique(ids).size} distinct); rebuild the index")
    x = normalize(vectors) if cfg.metric == "cosine" else np.ascontiguousarray(vectors)
    out = ItemIndex(index=index, cfg=cfg, vectors=x, ids=ids)
    out.set_params(**m.get("search_params", {}))
    return out
