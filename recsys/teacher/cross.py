"""Optional cross-scoring: re-score candidate (user, item) pairs with a causal LLM's yes/no judgement.

score = log p("yes") - log p("no") for the next token after a prompt holding the user's recent titles and
the candidate's text (the pointwise "LLM as ranker" recipe of e.g. TALLRec, Bao et al. RecSys 2023).
Costly — one forward per pair — so it is meant for re-ranking a short top-K, on a GPU when present.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl
import torch

PROMPT = ("A shopper recently bought: {history}\nCandidate product: {item}\n"
          "Will the shopper buy the candidate product next? Answer yes or no.\nAnswer:")


class CrossScorer:
    """Pointwise yes/no scorer from a local causal LM dir (left padding, last-position logits)."""

    def __init__(self, *, model_path: str, max_tokens: int = 256, batch_size: int = 16, device: str | None = None,
                 yes: str = " yes", no: str = " no", prompt: str = PROMPT) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(model_path, local_files_only=True)
        self.tokenizer.padding_side = "left"
        self.tokenizer.truncation_side = "left"  # keep the question at the end of the prompt
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token or self.tokenizer.unk_token
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        dtype = torch.bfloat16 if self.device.type == "cuda" else torch.float32
        self.model = AutoModelForCausalLM.from_pretrained(model_path, local_files_only=True, dtype=dtype)
        self.model.to(self.device).eval()
        self.yes_id, self.no_id = self._token_id(yes), self._token_id(no)
        self.max_tokens, self.batch_size, self.prompt = max_tokens, batch_size, prompt

    def _token_id(self, word: str) -> int:
        ids = self.tokenizer(word, add_special_tokens=False)["input_ids"]
        if not ids:
            raise ValueError(f"answer word {word!r} tokenises to nothing with {self.tokenizer.name_or_path}")
        return int(ids[0])  # the first sub-token decides

    def score(self, *, histories: Sequence[str], items: Sequence[str]) -> np.ndarray:
        """(P,) history texts, (P,) candidate texts -> (P,) float32 log p(yes) - log p(no)."""
        prompts = [self.prompt.format(history=h, item=i) for h, i in zip(histories, items, strict=True)]
        out = np.zeros(len(prompts), dtype=np.float32)
        with torch.inference_mode():
            for s in range(0, len(prompts), self.batch_size):
                enc = self.tokenizer(prompts[s:s + self.batch_size], padding=True, truncation=True,
                                     max_length=self.max_tokens, return_tensors="pt").to(self.device)
                pos = (enc["attention_mask"].cumsum(1) - 1).clamp(min=0)
                logits = self.model(**enc, position_ids=pos).logits[:, -1].float()
                logp = torch.log_softmax(logits, dim=-1)
                out[s:s + len(enc["input_ids"])] = (logp[:, self.yes_id] - logp[:, self.no_id]).cpu().numpy()
        return out


def rescore(*, scorer: CrossScorer, candidates: pl.DataFrame, history_text: Sequence[str],
            item_text: Sequence[str]) -> pl.DataFrame:
    """candidates (user, item, ...) -> same rows with ``cross_score`` f32 and ``rank`` re-ranked per user."""
    c = candidates
    s = scorer.score(histories=[history_text[u] for u in c["user"].to_list()],
                     items=[item_text[i] for i in c["item"].to_list()])
    return (c.with_columns(pl.Series("cross_score", s))
            .sort(["user", "cross_score"], descending=[False, True])
            .with_columns(pl.int_range(pl.len()).over("user").cast(pl.Int32).alias("rank")))

