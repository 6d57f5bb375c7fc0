"""The teacher stage: tables -> teacher item/user embeddings and top-K lists in ``<run>/teacher``.

Reads only ``tables/`` (via ``recsys.data.tables``); writes the files of docs/CONTRACTS.md atomically and
records itself in the manifest. Skipped when config, model and data are unchanged; when they changed,
the per-text cache still spares every text the model has embedded before.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from recsys.artifacts import RunDir, hash_obj
from recsys.contracts import teacher as T
from recsys.data.errors import DataError
from recsys.data.tables import Split, Tables, load_tables
from recsys.teacher.cache import EmbeddingCache, encode_cached
from recsys.teacher.config import TeacherConfig
from recsys.teacher.encoder import Encoder, ModelSpec, resolve_spec
from recsys.teacher.scores import topk
from recsys.teacher.text import clean_text, history_texts, item_texts
from recsys.teacher.users import normalize_rows, pooled_mean, pooled_users
from recsys.torchrun import SINGLE, Rendezvous

log = logging.getLogger(__name__)
STAGE = "teacher"
SPLITS: tuple[Split, ...] = ("valid", "test")


def model_spec(cfg: TeacherConfig) -> ModelSpec:
    return resolve_spec(model_path=cfg.model_path, pooling=cfg.pooling, dtype=cfg.dtype, instruction=cfg.instruction,
                        max_tokens=cfg.max_tokens, gguf_file=cfg.gguf_file)


def stage_key(cfg: TeacherConfig, run_dir: RunDir, spec: ModelSpec) -> str:
    """Config + data outputs + model weights fingerprint (cache_dir, threads and nproc do not change results)."""
    same = dataclasses.replace(cfg, cache_dir="", threads=0, nproc=1, adapter_from="")
    key = {"cfg": same, "data": run_dir.output_hash("data"), "model": spec.fingerprint, "v": 1}
    if cfg.adapter_from:  # the adapter applied is that file's content, wherever it lies
        key["adapter"] = reused_adapter_hash(cfg)
    return hash_obj(key)


def reused_adapter_hash(cfg: TeacherConfig) -> str:
    """sha256 of the adapter file ``cfg.adapter_from`` names (a ConfigError naming the key when it has none)."""
    from recsys.artifacts import file_sha256
    from recsys.config import ConfigError
    from recsys.contracts.layout import Layout

    p = Layout(Path(cfg.adapter_from)).teacher_adapter
    if not p.exists():
        raise ConfigError(f"config key 'teacher.adapter_from': {cfg.adapter_from} has no fitted adapter ({p}); name "
                          "a run directory whose teacher stage fitted one, or leave it empty to fit the adapter here")
    return file_sha256(p)


class LazyEncoder:
    """Loads the model on first use, so a run served wholly from the cache does no model work."""

    def __init__(self, cfg: TeacherConfig) -> None:
        self.cfg, self.encoder = cfg, None

    def __call__(self, texts: list[str]) -> np.ndarray:
        if self.encoder is None:
            c = self.cfg
            self.encoder = Encoder(model_path=c.model_path, pooling=c.pooling, max_tokens=c.max_tokens,
                                   batch_size=c.batch_size, instruction=c.instruction, dtype=c.dtype,
                                   threads=c.threads, cache_dir=c.cache_dir, gguf_file=c.gguf_file)
        return self.encoder.encode(texts)


def _reused_adapter(cfg: TeacherConfig) -> Any:
    """``cfg.adapter_from``'s fitted adapter, verified (``recsys.contracts.teacher.read_adapter``), as a fit result."""
    from recsys.artifacts import RunDir
    from recsys.teacher.adapter import AdapterResult

    src = RunDir(Path(cfg.adapter_from))
    state, kind = T.read_adapter(layout=src.layout)
    if kind != cfg.adapter:
        from recsys.config import ConfigError

        raise ConfigError(f"config key 'teacher.adapter_from': {cfg.adapter_from} holds a '{kind}' adapter, "
                          f"teacher.adapter is '{cfg.adapter}'; set teacher.adapter = \"{kind}\" or fit one here")
    log.info("teacher adapter: applying the one fitted in %s (teacher.adapter_from), not fitting", src.root)
    return AdapterResult(state=state, kind=kind, epochs=[], best_epoch=0, seconds=0.0)


def user_embeddings(*, cfg: TeacherConfig, tables: Tables, item_emb: np.ndarray, split: Split,
                    encode: LazyEncoder, cache: EmbeddingCache) -> tuple[np.ndarray, int, int]:
    """(n_users, D) float32 at ``split``'s prediction point -> (emb, encoded_new, from_cache).

    Only ``tables.history(split)`` is read: a split's own targets never reach its users.
    """
    hist = tables.history(split)
    if cfg.user_mode == "pooled":
        return pooled_users(item_emb=item_emb, history=hist, n_users=tables.n_users, last_n=cfg.history_n,
                            decay=cfg.recency_decay), 0, 0
    titles = [clean_text(t) for t in tables.items["title"].to_list()]
    texts = history_texts(hist, titles, n_users=tables.n_users, last_n=cfg.history_n)
    emb, st = encode_cached(texts=texts, encode=encode, cache=cache, what=f"{split} users")
    if emb.shape[1] == 0:
        emb = np.zeros((tables.n_users, item_emb.shape[1]), dtype=np.float32)
    return emb, st.encoded_new, st.from_cache


def evaluate(*, user_emb: np.ndarray, item_emb: np.ndarray, tables: Tables, split: Split,
             eval_users: int = 0) -> dict[str, float]:
    """Full-ranking metrics of inner-product scores at ``split`` (history excluded); ``eval_users`` > 0: on a
    seeded sample of that many users."""
    from recsys.metrics import dot_scorer, evaluate_scores, of_users, sample_users

    targets = tables.targets(split)
    if eval_users:
        targets = of_users(targets, sample_users(targets, n=eval_users, seed=0))
    res = evaluate_scores(score_fn=dot_scorer(user_emb, item_emb), targets=targets,
                          history=tables.history(split), n_items=tables.n_items)
    s = res.summary(ks=(10, 20))
    return {k: round(float(s[k]), 5) for k in ("recall@10", "ndcg@10", "recall@20", "ndcg@20")}


def _topk_users(cfg: TeacherConfig, tables: Tables, split: Split) -> np.ndarray | None:
    """None (every user) or the seeded sample of ``cfg.topk_users`` users with a target at ``split``."""
    if not cfg.topk_users:
        return None
    from recsys.metrics import sample_users

    return sample_users(tables.targets(split), n=cfg.topk_users, seed=cfg.seed)


def run(cfg: TeacherConfig, run_dir: RunDir, *, force: bool = False, eval_splits: tuple[Split, ...] = ("valid",),
        rdzv: Rendezvous = SINGLE) -> dict[str, Any]:
    """Embed the catalogue and users, adapt, score top-K; write ``<run>/teacher``. Returns stats.

    ``eval_splits``: where the raw and adapted teacher are measured (valid by default: test is for the
    report, which the eval stage computes from these files). ``raw_*`` users follow ``cfg.user_mode``;
    ``adapted_*`` users are always A(recency-weighted mean of the raw history), the form the adapter is fit in.
    With ``cfg.nproc > 1`` (or ``rdzv`` spanning several hosts) the text encoding runs under torchrun
    (``recsys.teacher.distributed``): each rank encodes its share into the cache, rank 0 does the rest.
    """
    spec = model_spec(cfg)
    key = stage_key(cfg, run_dir, spec)
    if not force and run_dir.is_fresh(STAGE, key):
        log.info("teacher: up to date, skipped")
        return dict(run_dir.stage_record(STAGE).get("stats", {}))  # type: ignore[union-attr]
    if cfg.nproc > 1 or rdzv.multi_node:
        from recsys.teacher.launch import launch

        launch(cfg=cfg, run_dir=run_dir.root, key=key, eval_splits=eval_splits, rdzv=rdzv)
        rec = run_dir.stage_record(STAGE)
        if rec is None or rec.get("key") != key:
            raise RuntimeError(f"teacher workers finished but {run_dir.layout.manifest} has no record of {STAGE}")
        return dict(rec.get("stats", {}))
    return execute(cfg=cfg, run_dir=run_dir, key=key, spec=spec, eval_splits=eval_splits)


def execute(*, cfg: TeacherConfig, run_dir: RunDir, key: str, spec: ModelSpec, eval_splits: tuple[Split, ...],
            encoded: dict[str, Any] | None = None) -> dict[str, Any]:
    """The stage's work in this process; ``encoded``: what distributed workers put into the cache first
    (their counts replace this process's, which then finds every text cached)."""
    from recsys.teacher import adapter_cache
    from recsys.teacher.adapter import train_adapter

    t0 = time.perf_counter()
    import torch

    torch.set_num_threads(cfg.threads or os.cpu_count() or 1)  # the adapter and top-K run on these too
    tables = load_tables(run_dir.layout)
    cache = EmbeddingCache(cfg.cache_dir, fingerprint=spec.fingerprint)
    encode = LazyEncoder(cfg)
    texts = item_texts(tables.items, template=cfg.item_template)
    if not any(texts):
        raise DataError(run_dir.layout.items, f"none of the {len(texts):,} items has text for the template "
                        f"{cfg.item_template!r}, so the text teacher has nothing to encode.",
                        hint="Give the data stage an item catalogue (data.items_path, with data.columns.item_* "
                             "naming its text columns) and run again.")
    raw_items, st = encode_cached(texts=texts, encode=encode, cache=cache, what="items")
    t_items = time.perf_counter() - t0 + (float(encoded["seconds"]) if encoded is not None else 0.0)
    new, cached = st.encoded_new, st.from_cache
    users: dict[str, np.ndarray] = {}
    for split in SPLITS:
        users[f"raw_{split}"], n_new, n_cached = user_embeddings(cfg=cfg, tables=tables, item_emb=raw_items,
                                                                 split=split, encode=encode, cache=cache)
        new, cached = new + n_new, cached + n_cached
    if encoded is not None:
        new, cached = int(encoded["encoded_new"]), int(encoded["from_cache"])
    raw_means = {split: pooled_mean(item_emb=raw_items, history=tables.history(split), n_users=tables.n_users,
                                    last_n=cfg.history_n, decay=cfg.recency_decay) for split in SPLITS}
    if cfg.adapter_epochs > 0:
        from_cache = False
        if cfg.adapter_from:
            ad = _reused_adapter(cfg)
        else:
            ad = adapter_cache.load(cache_dir=cfg.cache_dir, key=key)  # the same stage key: the same fit
            from_cache = ad is not None
            if ad is None:
                ad = train_adapter(item_emb=raw_items, train=tables.train, valid=tables.valid,
                                   valid_history=tables.history("valid"), n_users=tables.n_users, cfg=cfg)
                adapter_cache.save(cache_dir=cfg.cache_dir, key=key, result=ad)
            else:
                log.info("teacher adapter: fitted before on these inputs, read from %s",
                         adapter_cache.path_of(cfg.cache_dir, key))
        adapted_items = ad.apply(raw_items)
        for split in SPLITS:  # adapted users = A(recency-weighted mean of raw history), as in training
            users[f"adapted_{split}"] = ad.apply(raw_means[split])
        adapter_stats = {"epochs": ad.epochs, "best_epoch": ad.best_epoch, "seconds": round(ad.seconds, 2),
                         "from_cache": from_cache, "reused_from": cfg.adapter_from or None}
    else:
        adapted_items, adapter_stats = raw_items.copy(), {"epochs": [], "best_epoch": 0, "seconds": 0.0}
        for split in SPLITS:
            users[f"adapted_{split}"] = normalize_rows(raw_means[split])
    metrics = {f"{kind}_{split}": evaluate(user_emb=users[f"{kind}_{split}"], item_emb=items, tables=tables,
                                           split=split, eval_users=cfg.eval_users)
               for split in eval_splits for kind, items in (("raw", raw_items), ("adapted", adapted_items))}
    top_items = adapted_items if cfg.topk_source == "adapted" else raw_items
    tops = {split: topk(user_emb=users[f"{cfg.topk_source}_{split}"], item_emb=top_items,
                        history=tables.history(split), k=cfg.topk, users=_topk_users(cfg, tables, split))
            for split in SPLITS}
    meta = T.TeacherMeta(model=str(spec.source), pooling=spec.pooling, user_mode=cfg.user_mode,
                         history_n=cfg.history_n, recency_decay=cfg.recency_decay,
                         adapter_temperature=cfg.adapter_temperature)
    outs = T.write(layout=run_dir.layout, raw_items=raw_items, adapted_items=adapted_items, users=users, topk=tops,
                   meta=meta)
    if cfg.adapter_epochs > 0:
        outs.append(T.write_adapter(layout=run_dir.layout, state=ad.state, kind=ad.kind))
    elif run_dir.layout.teacher_adapter.exists():  # a re-run without one: no stale adapter beside the new vectors
        run_dir.layout.teacher_adapter.unlink()
    seconds = time.perf_counter() - t0 + (float(encoded["seconds"]) if encoded is not None else 0.0)
    stats = {"items": tables.n_items, "users": tables.n_users, "dim_raw": int(raw_items.shape[1]),
             "dim_adapted": int(adapted_items.shape[1]), "encoded_new": new, "from_cache": cached,
             "encode_seconds": round(t_items, 2), "seconds": round(seconds, 2), "metrics": metrics,
             "adapter": adapter_stats, "model": str(spec.source), "pooling": spec.pooling,
             **({"distributed": encoded} if encoded is not None else {})}
    run_dir.record(STAGE, key=key, config=cfg, outputs=outs, seconds=seconds, encoded_new=new, from_cache=cached,
                   user_mode=cfg.user_mode, stats=stats)
    log.info("teacher: %d items (%d encoded, %d cached) in %.1fs; valid ndcg@10 raw %s adapted %s", tables.n_items,
             new, cached, seconds, metrics.get("raw_valid", {}).get("ndcg@10"),
             metrics.get("adapted_valid", {}).get("ndcg@10"))
    return stats
