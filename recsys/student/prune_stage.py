"""The prune stage: the trained student's pruned twin, its vectors and sizes (``student/<variant>/pruned/``).

Reads the variant's exported user tower (tables + user MLP), the item MLP and text projection from its best
checkpoint, the teacher's item embeddings (text input, carry) and the tables; prunes (``recsys.student.prune``);
encodes every item and user with the numpy towers rebuilt from the compact arrays it stores (what is evaluated is
what a reader of the file gets back). Recorded as stage ``prune/<variant>``; skipped when its
config and inputs are unchanged. No training: a few seconds of numpy.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

import numpy as np
import polars as pl

from recsys.artifacts import RunDir, file_sha256, hash_obj
from recsys.contracts import student as S
from recsys.contracts import teacher as T
from recsys.contracts.layout import Layout
from recsys.data.tables import Tables, load_tables
from recsys.student import prune as P
from recsys.student import user_tower
from recsys.student.carry import item_scales
from recsys.student.config import PruneConfig
from recsys.student.item_tower import Layer

log = logging.getLogger(__name__)


def input_key(cfg: PruneConfig, run_dir: RunDir, *, variant: str) -> str:
    lay = run_dir.layout
    return hash_obj({"cfg": cfg, "variant": variant, "student": run_dir.output_hash(S.stage_of(variant)),
                     "teacher": file_sha256(lay.teacher_items) if lay.teacher_items.exists() else None, "v": 1})


def dense_from_checkpoint(layout: Layout, *, variant: str) -> tuple[tuple[Layer, ...], Layer | None]:
    """(item MLP layers, text projection or None) of the variant's best checkpoint (dense parts are replicated:
    rank 0's file holds them all)."""
    from recsys.student import checkpoint

    m = checkpoint.load(layout.checkpoint(variant, kind="best", rank=0))["model"]
    idx = sorted({int(k.split(".")[2]) for k in m if k.startswith("towers.item_mlp.")})
    layers = tuple((m[f"towers.item_mlp.{j}.weight"].float().numpy().copy(),
                    m[f"towers.item_mlp.{j}.bias"].float().numpy().copy()) for j in idx)
    proj = None
    if "towers.text_proj.weight" in m:
        proj = (m["towers.text_proj.weight"].float().numpy().copy(), m["towers.text_proj.bias"].float().numpy().copy())
    return layers, proj


def csr(events: pl.DataFrame, *, n_users: int) -> tuple[np.ndarray, np.ndarray]:
    """(ptr (U+1,), items) of each user's events ordered by ``pos`` (the student's ``histories``)."""
    ev = events.select("user", "item", "pos").sort("user", "pos")
    counts = np.bincount(ev["user"].to_numpy(), minlength=n_users)
    return np.concatenate([[0], np.cumsum(counts)]).astype(np.int64), ev["item"].to_numpy().astype(np.int64)


def encode(model: P.PrunedStudent, *, tables: Tables, text: np.ndarray | None,
           carry: np.ndarray | None, carry_scale: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(items (N, d), users_valid (U, d), users_test (U, d)): histories train and train + valid; ``carry_scale``
    (N, 2): the trained student's per-item carry scales (``recsys.student.carry``), None = off."""
    ut, it = model.towers(text=text, carry=carry, carry_scale=carry_scale)
    items = it.encode(keep_id=model.keep_id.astype(np.float32))
    tv = pl.concat([tables.train.select("user", "item", "pos"), tables.valid.select("user", "item", "pos")])
    users = [ut.encode_csr(*csr(ev, n_users=tables.n_users)) for ev in (tables.train, tv)]
    return items, users[0], users[1]


def sizes(*, full: user_tower.UserTower, item_layers: tuple[Layer, ...], text_proj: Layer | None,
          pruned: P.PrunedStudent, meta: dict[str, Any]) -> dict[str, Any]:
    """Bytes of tables + dense weights: fp32 as trained, int8 (the item vectors the int8 row scores) and pruned."""
    layers = [*full.layers, *item_layers, *([text_proj] if text_proj is not None else [])]
    tables_f32 = int(sum(t.nbytes for t in (full.t_item, full.t_brand, full.t_cat)))
    dense_f32 = P.dense_size_f32(layers)
    vec = meta.get("bytes", {})
    pr = P.size_bytes(pruned)
    return {
        "fp32": {"tables": tables_f32, "dense": dense_f32, "total": tables_f32 + dense_f32,
                 "item_vectors": vec.get("item_vectors_f32")},
        "int8": {"tables": None, "dense": None, "total": None, "item_vectors": vec.get("item_vectors_int8")},
        "pruned": {"tables": pr["tables"], "dense": pr["dense"], "total": pr["total"],
                   "item_vectors": vec.get("item_vectors_f32")},
        "pruned_maps": pr["maps"],
        "id_rows": {"kept": int(pruned.id_rows.size), "of": int(full.t_item.shape[0])},
        "dense_weights": {"kept": int(sum(int((w != 0).sum()) for w, _ in pruned.matrices().values())),
                          "of": int(sum(w.size for w, _ in layers))},
    }


def run(cfg: PruneConfig, run_dir: RunDir, *, variant: str = "student_kd", force: bool = False) -> dict[str, Any]:
    """Prune ``variant``'s trained student; returns the stage record (sizes, kept counts, seconds)."""
    stage = S.prune_stage_of(variant)
    key = input_key(cfg, run_dir, variant=variant)
    if not force and run_dir.is_fresh(stage, key):
        log.info("prune %s: up to date, skipped", variant)
        return run_dir.stage_record(stage)  # type: ignore[return-value]
    t0 = time.perf_counter()
    lay = run_dir.layout
    tables = load_tables(lay)
    meta = S.read_meta(layout=lay, variant=variant)
    scfg = meta.get("config") or {}
    full = user_tower.read(layout=lay, variant=variant)
    if not isinstance(full, user_tower.UserTower):
        from recsys.config import ConfigError

        raise ConfigError(f"prune: '{variant}' has the sequential user tower (student.user_tower = 'sequential'), "
                          "which has no pruned twin; set prune.enabled=false or student.user_tower=pooled")
    item_layers, text_proj = dense_from_checkpoint(lay, variant=variant)
    text = None
    if text_proj is not None:
        text = T.read_items(layout=lay, n_items=tables.n_items)[scfg.get("text_emb", "raw")].astype(np.float32)
    train_count = np.bincount(tables.train["item"].to_numpy(), minlength=tables.n_items)
    pruned = P.prune(user=full, item_layers=item_layers, text_proj=text_proj, train_count=train_count,
                     sparsity=cfg.dense_sparsity, scope=cfg.scope, min_count=cfg.min_item_count)
    tensors, tmeta = P.to_tensors(pruned)
    size = sizes(full=full, item_layers=item_layers, text_proj=text_proj, pruned=pruned, meta=meta)
    # encode from the stored form (the arrays written below), so what is evaluated is what a reader gets back
    k = float(scfg.get("carry_count_k", 0.0))
    shift = (meta.get("carry_fit") or {}).get("shift", scfg.get("carry_shift", 1.0))  # the fitted one, if any
    scale = item_scales(counts=train_count, carry=full.teacher_carry, k=k, shift=float(shift)) \
        if full.carry is not None and k > 0 else None  # the same item vectors as the student's own export
    items, uv, ut = encode(P.from_tensors(tensors, tmeta), tables=tables, text=text, carry=full.carry,
                           carry_scale=scale)
    record_meta = {"variant": variant, "config": dataclasses.asdict(cfg), "sizes": size, "dim": int(items.shape[1])}
    paths = S.write_pruned(layout=lay, variant=variant, tensors=tensors, metadata=tmeta, items=items, users_valid=uv,
                           users_test=ut, meta=record_meta)
    run_dir.record(stage, key=key, config=cfg, outputs=paths, seconds=time.perf_counter() - t0,
                   id_rows_kept=size["id_rows"]["kept"], dense_kept=size["dense_weights"]["kept"],
                   bytes_fp32=size["fp32"]["total"], bytes_pruned=size["pruned"]["total"])
    log.info("prune %s: %d of %d id rows, %d of %d dense weights kept; %d -> %d bytes (tables + dense), %.1fs",
             variant, size["id_rows"]["kept"], size["id_rows"]["of"], size["dense_weights"]["kept"],
             size["dense_weights"]["of"], size["fp32"]["total"], size["pruned"]["total"], time.perf_counter() - t0)
    return run_dir.stage_record(stage) or {}
