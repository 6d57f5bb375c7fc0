"""Config of the teacher stage: which text model embeds the catalogue, how users are built from it,
and how a light adapter tunes the frozen embeddings to the shop's co-purchase signal."""

from __future__ import annotations

import dataclasses
from typing import Literal

from recsys.config import ranged

Pooling = Literal["auto", "mean", "cls", "last"]
UserMode = Literal["pooled", "text"]
DType = Literal["auto", "fp32", "bf16", "fp16"]
AdapterKind = Literal["linear", "mlp"]
TopkSource = Literal["raw", "adapted"]


@dataclasses.dataclass(frozen=True)
class TeacherConfig:
    """Defaults run the whole Beauty catalogue on a 2-core CPU in a few minutes, once; the cache makes
    every later run seconds."""

    # --- encoder -----------------------------------------------------------------------------------
    # None -> the packaged all-MiniLM-L6-v2 (22M params): the largest model that embeds 12k items on a
    # laptop CPU in minutes. Any local HF dir works; a *.gguf file (or a dir holding one) too.
    model_path: str | None = None
    gguf_file: str | None = None  # file name inside model_path when it is a dir with several .gguf files
    # "auto": decoders (Llama/Qwen/Mistral-like) -> last token; encoders -> what their
    # sentence-transformers pooling config says, else mean (mean beats CLS for models not trained for CLS).
    pooling: Pooling = "auto"
    # Beauty item texts are ~20-40 tokens; 64 keeps title + brand + categories whole and caps the
    # quadratic attention cost when a catalogue carries 100 KB descriptions.
    max_tokens: int = ranged(64, ge=1)
    # Rows per batch at max_tokens: the encoder batches texts of one exact length (no padding) under a
    # budget of batch_size * max_tokens = 4096 tokens (<= ~25 MB of MiniLM activations per CPU thread)
    # whatever the lengths: big GEMMs for short titles, bounded memory for long texts.
    batch_size: int = ranged(64, ge=1)
    # Decoder LLMs embed better when told what the embedding is for (E5-Mistral / GTE-Qwen recipe);
    # encoders get no prefix (MiniLM was not trained with one).
    instruction: str = "Represent this product for recommending what a shopper buys next: "
    item_template: str = "{title}. Brand: {brand}. Category: {categories}. {description}. Price: {price}"
    dtype: DType = "auto"  # auto: bf16 on CUDA, fp32 on CPU (CPU bf16 matmuls are slow without AMX)
    # CPU threads; 0 -> os.cpu_count(). The encoder runs one batch per thread (no OpenMP barriers, so a
    # busy box costs it little); the adapter and top-K use them as torch intra-op threads, and on a box
    # shared with other jobs want 1: oversubscribed OpenMP threads spin-wait on each other (measured 3.4x
    # slower adapter steps with 2 threads vs 1).
    threads: int = ranged(0, ge=0)
    cache_dir: str = "~/.cache/recsys/teacher"  # per-text embedding cache, shared by every run dir
    # Processes encoding the texts (torchrun; one per GPU on CUDA). Each encodes a share of the batches,
    # balanced by tokens, into the cache above (on several hosts it must be on a file system they all mount);
    # rank 0 then does the rest. Changes speed, not results (bitwise on CPU fp32), so not part of the key.
    nproc: int = ranged(1, ge=1)
    # --- users -------------------------------------------------------------------------------------
    # "pooled": recency-weighted mean of the item embeddings of the history — no model call, so it is
    # the CPU default. "text": encode the titles of the last `history_n` items as one text.
    user_mode: UserMode = "pooled"
    history_n: int = ranged(20, ge=1)  # Beauty users have ~7 train events; 20 covers almost every history
    # whole weight of the k-th most recent item = decay**k: the last buys matter most. On Beauty (valid
    # NDCG@10, adapter retrained each time) 0.5 beats 0.8 by +15 % (adapted 0.0534 vs 0.0463; raw 0.0378 vs
    # 0.0304)
    recency_decay: float = ranged(0.5, gt=0, le=1)
    # --- top-K -------------------------------------------------------------------------------------
    topk: int = ranged(100, ge=1)  # students distil from the top 100: covers recall@100 and leaves room for
    # the ranker
    # 0 = every user gets a top-K list. N > 0: a seeded sample of N users per split (exact top-K costs users x
    # items x dim: 1M users x 10M items is the first thing that breaks at scale); consumers treat a user
    # without a list as having none (student topk mode skips them, the ranker's t_in_topk is 0)
    topk_users: int = ranged(0, ge=0)
    topk_source: TopkSource = "adapted"  # the better teacher is the one students should copy
    # --- adapter -----------------------------------------------------------------------------------
    # "linear": affine, so A(pooled raw history) is exactly the pooled adapted items, and 148k weights
    # barely overfit 153k events; "mlp" adds a 2-layer residual branch (more capacity, more overfit).
    adapter: AdapterKind = "linear"
    adapter_dim: int = ranged(0, ge=0)  # 0 -> same as the encoder (residual, identity init); >0 -> projection
    adapter_hidden: int = ranged(512, ge=1)  # "mlp" only
    # Each epoch is ~0.5 TFLOP on Beauty (2 adapter passes per event + the B x B logits): ~10 s on 2 cores.
    # Valid NDCG@10 gains most in the first 2-3 epochs; early stopping ends the rest.
    adapter_epochs: int = ranged(4, ge=0)  # 0 disables the adapter (adapted = raw)
    adapter_from: str = ""  # a run directory whose fitted adapter is applied instead of fitting one (its
    # ``teacher/adapter.safetensors``, verified; its hash is part of this stage's key). ``recsys retrain`` sets it
    # to the published version (``retrain.refit_adapter = false``): the adapter is a small map of the text space
    # that a week of new events barely moves, and refitting it is most of a weekly retrain's teacher time
    adapter_lr: float = ranged(2e-3, gt=0)
    adapter_batch: int = ranged(512, ge=1)  # in-batch negatives; the logits cost O(B) per event, 512 keeps
    # them < the adapter's
    adapter_temperature: float = ranged(0.05, gt=0)  # unit vectors need a low temperature to spread softmax
    # mass
    adapter_logq: bool = True  # subtract log item frequency: in-batch negatives over-sample popular items
    adapter_patience: int = ranged(1, ge=1)  # epochs without valid NDCG@10 gain before stopping
    adapter_eval_users: int = ranged(5000, ge=1)  # valid users sampled for early stopping (all users for the
    # report)
    # 0 = every user. N > 0: the stage's own raw/adapted metrics rank the catalogue for a seeded sample of N
    # users (each pass costs users x items x dim; the eval stage reports the teacher rows on its own sample)
    eval_users: int = ranged(0, ge=0)
    seed: int = ranged(0, ge=0)
