from __future__ import annotations

from pathlib import Path

import numpy as np

from recsys.teacher.cache import EmbeddingCache, encode_cached
from recsys.teacher.encoder import Encoder


class CountingEncoder:
    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.calls.append(list(texts))
        return np.array([[len(t), 1.0] for t in texts], dtype=np.float32)


def test_only_new_texts_are_encoded(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path, fingerprint="m1")
    enc = CountingEncoder()
    emb, st = encode_cached(texts=["a", "bb", "a", ""], encode=enc, cache=cache)
    assert (st.encoded_new, st.from_cache) == (2, 0) and enc.calls == [["a", "bb"]]
    np.testing.assert_array_equal(emb, [[1, 1], [2, 1], [1, 1], [0, 0]])
    emb2, st2 = encode_cached(texts=["bb", "ccc", "a"], encode=enc, cache=cache)
    assert (st2.encoded_new, st2.from_cache) == (1, 2) and enc.calls[-1] == ["ccc"]
    np.testing.assert_array_equal(emb2, [[2, 1], [3, 1], [1, 1]])
    # another model (or pooling, token budget, instruction, dtype) is another key space
    _, st3 = encode_cached(texts=["a"], encode=enc, cache=EmbeddingCache(tmp_path, fingerprint="m2"))
    assert st3.encoded_new == 1


def test_orphan_shard_without_key_index_is_ignored(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path, fingerprint="m")
    encode_cached(texts=["a"], encode=CountingEncoder(), cache=cache)
    for f in cache.dir.glob("*.keys.parquet"):
        f.unlink()  # as if killed between the two writes
    _, st = encode_cached(texts=["a"], encode=CountingEncoder(), cache=cache)
    assert st.encoded_new == 1


def test_cache_hit_does_zero_model_calls(tiny_bert: Path, tmp_path: Path) -> None:
    enc = Encoder(model_path=str(tiny_bert), threads=1)
    cache = EmbeddingCache(tmp_path, fingerprint=enc.fingerprint)
    texts = ["rose lipstick", "mint serum", "gold polish"]
    first, _ = encode_cached(texts=texts, encode=enc.encode, cache=cache)
    calls = enc.n_batches
    again, st = encode_cached(texts=texts, encode=enc.encode, cache=cache)
    assert enc.n_batches == calls and st.encoded_new == 0 and st.from_cache == 3
    np.testing.assert_array_equal(first, again)
