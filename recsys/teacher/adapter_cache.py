"""The fitted domain adapter, cached beside the text embeddings, keyed by everything it was fitted from.

The adapter (``recsys.teacher.adapter``) is a function of the raw item embeddings (model + texts), the data stage's
splits and the teacher config, i.e. of the teacher stage's key. A run that repeats that key (the same data and
config in a new run directory, a re-run after ``rm -r run``) reads the weights back instead of fitting them again
(~8 s on Beauty); a new log, another config or another model is another key and fits afresh. The file is
``<cache_dir>/adapters/<key>.safetensors``: the weights plus, in its metadata, the fit's per-epoch record and a
sha256 of the weights. A file that fails that check (or does not load) is ignored with a warning and refitted:
the cache is disposable, never trusted blindly.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np

from recsys.artifacts import read_safetensors, write_safetensors
from recsys.teacher.adapter import AdapterResult

log = logging.getLogger(__name__)
FORMAT = "recsys-adapter-cache/1"


def path_of(cache_dir: str, key: str) -> Path:
    return Path(cache_dir).expanduser() / "adapters" / f"{key}.safetensors"


def _digest(state: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for name in sorted(state):
        a = np.ascontiguousarray(state[name])
        h.update(f"{name}:{a.dtype.str}:{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def load(*, cache_dir: str, key: str) -> AdapterResult | None:
    """The cached fit of ``key``, or None (none cached, or a file that does not verify: logged, then refitted)."""
    if not cache_dir:
        return None
    p = path_of(cache_dir, key)
    if not p.exists():
        return None
    try:
        from safetensors import safe_open

        with safe_open(str(p), framework="numpy") as f:
            meta = f.metadata() or {}
        state = read_safetensors(p)
        if meta.get("format") != FORMAT or meta.get("sha256") != _digest(state):
            raise ValueError("its weights do not match the digest it was written with")
        return AdapterResult(state=state, kind=meta["kind"], epochs=json.loads(meta["epochs"]),
                             best_epoch=int(meta["best_epoch"]), seconds=0.0)
    except Exception as e:  # noqa: BLE001  (a cache entry is disposable: any defect means "fit again")
        log.warning("teacher adapter cache: ignoring %s (%s); fitting the adapter again", p, e)
        return None


def save(*, cache_dir: str, key: str, result: AdapterResult) -> Path | None:
    """Write ``result`` under ``key`` atomically (no-op without a cache directory)."""
    if not cache_dir:
        return None
    meta = {"format": FORMAT, "kind": result.kind, "best_epoch": str(result.best_epoch),
            "epochs": json.dumps(result.epochs), "fit_seconds": f"{result.seconds:.2f}", "sha256": _digest(result.state)}
    p = path_of(cache_dir, key)
    p.parent.mkdir(parents=True, exist_ok=True)
    return write_safetensors(p, result.state, metadata=meta)
