"""Tiny random-init models + tokenizers built offline, and a synthetic prepared run dir."""

from __future__ import annotations

from pathlib import Path

import pytest
import transformers  # noqa: F401  (a broken install must fail the suite, never skip it)

WORDS = ("soft matte gloss organic daily night rose mint pure gold silk fresh lipstick serum shampoo mascara "
         "cream polish cleanser perfume brand category price a the of and for with is buy yes no shopper product "
         "recently bought candidate will next answer or beauty cat0 cat1 cat2 cat3 brand0 brand1 brand2").split()
WORDS += [str(i) for i in range(100)] + [f"brand{i}" for i in range(3, 20)] + [f"cat{i}" for i in range(4, 10)]
WORDS = list(dict.fromkeys(WORDS))


def _tokenizer(specials: list[str], single: str, **named: str):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(specials + WORDS)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token=named["unk_token"]))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single=single, special_tokens=[(t, vocab[t]) for t in specials if t in single])
    return PreTrainedTokenizerFast(tokenizer_object=tok, **named), len(vocab)


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from transformers import BertConfig, BertModel

    d = tmp_path_factory.mktemp("tiny_bert")
    tok, n = _tokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]"], "[CLS] $A [SEP]", unk_token="[UNK]",
                        pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]")
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=n, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=128)
    BertModel(cfg).save_pretrained(d)
    tok.save_pretrained(d)
    return d


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LlamaForCausalLM checkpoint whose tokenizer has no pad token (eos is used)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    d = tmp_path_factory.mktemp("tiny_llama")
    tok, n = _tokenizer(["<unk>", "<s>", "</s>"], "<s> $A", unk_token="<unk>", bos_token="<s>", eos_token="</s>")
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=n, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                      num_key_value_heads=1, intermediate_size=32, max_position_embeddings=256,
                      bos_token_id=1, eos_token_id=2)
    LlamaForCausalLM(cfg).save_pretrained(d)
    tok.save_pretrained(d)
    return d


@pytest.fixture(scope="session")
def syn_run(tmp_path_factory: pytest.TempPathFactory):
    """A prepared synthetic run dir (data stage done): 200 users, 80 items."""
    from recsys.artifacts import RunDir
    from recsys.data.config import DataConfig
    from recsys.data.stage import run

    rd = RunDir(tmp_path_factory.mktemp("syn_run"))
    run(DataConfig(source="synthetic"), rd)
    return rd
