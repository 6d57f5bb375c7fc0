"""Teacher text encoding under torchrun: ``teacher.nproc`` processes (on each of ``--nnodes`` hosts).

``recsys.teacher.launch`` starts ``python -m torch.distributed.run ... -m recsys.teacher.worker``; every
worker (``execute``) loads the tables, and for each group of texts the single-process stage encodes (items,
then the users of each split in ``user_mode="text"``), in the same order:

1. reads which of the group's distinct texts the content-hashed cache lacks (``cache.uncached``), then waits
   for every rank, so nobody's new shard changes what another rank sees;
2. encodes its share of the batches ``Encoder.encode`` would run on them (``Encoder.encode_part``: the same
   plan, whole batches dealt to ranks balanced by tokens) and appends them to the cache as one shard;
3. waits for every rank again.

Then the other ranks exit and rank 0 runs the stage (``stage.execute``), which finds every text in the cache:
the embeddings are bitwise those of one process on CPU fp32, as every text went through the same batch. On
several hosts the cache directory must be on a file system they all mount (e.g. under the run directory).
"""

from __future__ import annotations

import datetime
import logging
import os
import time
from collections.abc import Iterator
from typing import Any

from recsys.artifacts import RunDir
from recsys.data.tables import Split, Tables, load_tables
from recsys.teacher.cache import EmbeddingCache, uncached
from recsys.teacher.config import TeacherConfig
from recsys.teacher.text import clean_text, history_texts, item_texts

log = logging.getLogger(__name__)
TIMEOUT = datetime.timedelta(hours=12)  # a rank waits this long for the slowest one's share


def text_groups(*, cfg: TeacherConfig, tables: Tables, splits: tuple[Split, ...]) -> Iterator[tuple[str, list[str]]]:
    """(what, texts) in the order the single-process stage encodes them."""
    yield "items", item_texts(tables.items, template=cfg.item_template)
    if cfg.user_mode == "text":
        titles = [clean_text(t) for t in tables.items["title"].to_list()]
        for split in splits:
            yield f"{split} users", history_texts(tables.history(split), titles, n_users=tables.n_users,
                                                  last_n=cfg.history_n)


def execute(*, cfg: TeacherConfig, run_dir: RunDir, key: str, eval_splits: tuple[Split, ...]) -> dict[str, Any]:
    """Body of one worker (see the module docstring). Returns rank 0's stage stats ({} on other ranks)."""
    import torch
    import torch.distributed as dist

    from recsys.teacher import stage
    from recsys.teacher.encoder import Encoder

    t0 = time.perf_counter()
    dist.init_process_group(backend="gloo", timeout=TIMEOUT)  # barriers only: CPU tensors, on CPU or CUDA
    rank, world = dist.get_rank(), dist.get_world_size()
    local, local_world = int(os.environ.get("LOCAL_RANK", "0")), int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available()
    threads = cfg.threads or max(1, (os.cpu_count() or 1) // local_world)
    spec = stage.model_spec(cfg)
    cache = EmbeddingCache(cfg.cache_dir, fingerprint=spec.fingerprint)
    tables = load_tables(run_dir.layout)
    encoder: Encoder | None = None
    totals = {"encoded_new": 0, "from_cache": 0}
    mine = {"texts": 0, "tokens": 0}
    try:
        for what, texts in text_groups(cfg=cfg, tables=tables, splits=stage.SPLITS):
            todo, keys, n_cached = uncached(texts=texts, cache=cache)
            dist.barrier()  # everyone has read the cache before anyone adds to it
            if todo:
                if encoder is None:
                    encoder = Encoder(model_path=cfg.model_path, pooling=cfg.pooling, max_tokens=cfg.max_tokens,
                                      batch_size=cfg.batch_size, instruction=cfg.instruction, dtype=cfg.dtype,
                                      threads=threads, cache_dir=cfg.cache_dir, gguf_file=cfg.gguf_file,
                                      device=f"cuda:{local}" if cuda else "cpu")
                before = encoder.n_tokens
                pos, emb = encoder.encode_part(todo, rank=rank, world=world)
                cache.put([keys[i] for i in pos], emb)
                mine["texts"] += len(pos)
                mine["tokens"] += encoder.n_tokens - before
                log.info("teacher rank %d/%d: %s: encoded %d of %d new texts", rank, world, what, len(pos), len(todo))
            totals["encoded_new"] += len(todo)
            totals["from_cache"] += n_cached
            dist.barrier()  # every share is in the cache
        gathered: list[Any] = [None] * world
        dist.all_gather_object(gathered, mine)
    finally:
        dist.destroy_process_group()
    if rank != 0:
        return {}
    encoded = {**totals, "world_size": world, "per_rank": gathered, "seconds": round(time.perf_counter() - t0, 2)}
    return stage.execute(cfg=cfg, run_dir=run_dir, key=key, spec=spec, eval_splits=eval_splits, encoded=encoded)
