"""Index stage: FAISS index over item vectors (flat, IVF-Flat, IVF-PQ, HNSW), tuned, saved with a manifest.

Importing this package does not import faiss; the submodules that need it import it on first use.

    from recsys.index import IndexConfig, build_index, tune, save_index, load_index, Seen
"""

from __future__ import annotations

from recsys.index.build import build_index, check_metric
from recsys.index.config import IndexConfig
from recsys.index.errors import IndexMismatchError, MetricMismatchError
from recsys.index.exact import exact_topk
from recsys.index.io import load_index, save_index
from recsys.index.search import ItemIndex
from recsys.index.seen import Seen
from recsys.index.tune import TuneResult, tune

__all__ = ["IndexConfig", "IndexMismatchError", "ItemIndex", "MetricMismatchError", "Seen", "TuneResult",
           "build_index", "check_metric", "exact_topk", "load_index", "save_index", "tune"]
