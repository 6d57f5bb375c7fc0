"""Per-text embedding cache shared by every run: re-runs encode only new or edited texts.

Layout under ``cache_dir/<namespace[:16]>/``: ``shard-<id>.safetensors`` ({"emb": (n, D) f32}) and
``shard-<id>.keys.parquet`` (key str, row i32) — the parquet is written last and is the commit marker,
so a killed run leaves at worst an orphan shard that is never read. Shards are append-only and uniquely
named, so several processes can fill the same cache without locks.

A key is sha256(fingerprint of model + pooling + token budget + instruction + dtype, rendered text). The
template is not part of the key: the rendered text is exactly what the model sees, so two templates that
render the same text (e.g. an edit to a field the catalogue lacks) share embeddings instead of re-encoding.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import polars as pl

from recsys.artifacts import write_parquet, write_safetensors

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class CacheStats:
    encoded_new: int  # distinct texts the model ran on
    from_cache: int  # distinct texts read from the cache


class EmbeddingCache:
    """Embeddings by text key. ``get`` -> found rows; ``put`` appends one shard."""

    def __init__(self, root: str | os.PathLike[str], *, fingerprint: str) -> None:
        self.fingerprint = fingerprint
        ns = hashlib.sha256(fingerprint.encode()).hexdigest()
        self.dir = Path(root).expanduser() / ns[:16]

    def key(self, text: str) -> str:
        blob = "\x00".join([self.fingerprint, text]).encode("utf-8", errors="surrogatepass")
        return hashlib.sha256(blob).hexdigest()

    def index(self) -> pl.DataFrame:
        """(key, row, shard) of every committed shard."""
        frames = []
        for kf in sorted(self.dir.glob("shard-*.keys.parquet")):
            shard = kf.name.removesuffix(".keys.parquet")
            if (self.dir / f"{shard}.safetensors").exists():
                frames.append(pl.read_parquet(kf).with_columns(pl.lit(shard).alias("shard")))
        if not frames:
            return pl.DataFrame(schema={"key": pl.String, "row": pl.Int32, "shard": pl.String})
        return pl.concat(frames).unique("key", keep="last", maintain_order=True)

    def get(self, keys: Sequence[str]) -> tuple[np.ndarray, np.ndarray | None]:
        """-> found (n,) bool, emb (n, D) float32 (rows of unfound keys are zero; None if nothing found)."""
        from safetensors import safe_open

        if not len(keys):  # an untyped empty key column would not join the index's String keys
            return np.zeros(0, dtype=bool), None
        want = pl.DataFrame({"key": pl.Series(list(keys), dtype=pl.String), "pos": np.arange(len(keys), dtype=np.int64)})
        hits = want.join(self.index(), on="key", how="inner")
        found = np.zeros(len(keys), dtype=bool)
        if hits.height == 0:
            return found, None
        emb: np.ndarray | None = None
        for (shard,), part in hits.group_by(["shard"]):
            with safe_open(str(self.dir / f"{shard}.safetensors"), framework="numpy") as f:
                rows = f.get_tensor("emb")[part["row"].to_numpy()]
            if emb is None:
                emb = np.zeros((len(keys), rows.shape[1]), dtype=np.float32)
            pos = part["pos"].to_numpy()
            emb[pos] = rows
            found[pos] = True
        return found, emb

    def put(self, keys: Sequence[str], emb: np.ndarray) -> None:
        """Append (n,) keys with (n, D) embeddings as one new shard."""
        if not len(keys):
            return
        shard = f"shard-{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:8]}"
        write_safetensors(self.dir / f"{shard}.safetensors", {"emb": np.asarray(emb, dtype=np.float32)},
                          metadata={"fingerprint": self.fingerprint[:500]})
        write_parquet(self.dir / f"{shard}.keys.parquet",
                      pl.DataFrame({"key": list(keys), "row": np.arange(len(keys), dtype=np.int32)}))


def uncached(*, texts: Sequence[str], cache: EmbeddingCache) -> tuple[list[str], list[str], int]:
    """What ``encode_cached(texts)`` would send to the model, in the same order: -> (distinct non-empty
    uncached texts, their cache keys, how many distinct non-empty texts are cached already)."""
    distinct = [t for t in dict.fromkeys(texts) if t]
    keys = [cache.key(t) for t in distinct]
    have = set(cache.index()["key"].to_list()) if keys else set()
    todo = [(t, k) for t, k in zip(distinct, keys) if k not in have]
    return [t for t, _ in todo], [k for _, k in todo], len(distinct) - len(todo)


def encode_cached(
    *, texts: Sequence[str], encode: Callable[[list[str]], np.ndarray], cache: EmbeddingCache | None,
    what: str = "texts",
) -> tuple[np.ndarray, CacheStats]:
    """(n,) texts -> (n, D) float32 using the cache; only distinct uncached texts reach ``encode``.

    Empty texts are not encoded (their rows are zero: "no text"). Logs "encoded X new, Y from cache".
    """
    uniq: dict[str, int] = {}
    inverse = np.array([uniq.setdefault(t, len(uniq)) for t in texts], dtype=np.int64)
    distinct = [t for t in uniq]
    nonempty = [i for i, t in enumerate(distinct) if t]
    keys = [cache.key(distinct[i]) for i in nonempty] if cache is not None else []
    found, cached = cache.get(keys) if cache is not None else (np.zeros(len(nonempty), dtype=bool), None)
    todo = [nonempty[j] for j in np.flatnonzero(~found)]
    new = encode([distinct[i] for i in todo]) if todo else None
    dim = (new.shape[1] if new is not None else cached.shape[1]) if (new is not None or cached is not None) else 0
    out = np.zeros((len(distinct), dim), dtype=np.float32)
    if cached is not None:
        hit = np.flatnonzero(found)
        out[[nonempty[j] for j in hit]] = cached[hit]
    if new is not None:
        out[todo] = new
        if cache is not None:
            cache.put([keys[j] for j in np.flatnonzero(~found)], new)
    stats = CacheStats(encoded_new=len(todo), from_cache=int(found.sum()))
    log.info("teacher: %s: encoded %d new, %d from cache", what, stats.encoded_new, stats.from_cache)
    return out[inverse], stats
