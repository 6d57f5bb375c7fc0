"""The data stage: source -> validated, id-mapped, split tables in ``<run>/tables``."""

from __future__ import annotations

import logging
import time

import polars as pl

from recsys.artifacts import RunDir, hash_obj
from recsys.contracts import tables as T
from recsys.data.config import DataConfig
from recsys.data.loaders import load_source
from recsys.data.prepare import prepare
from recsys.data.split import hold_out_items, leave_one_out, temporal

log = logging.getLogger(__name__)
STAGE = "data"


def input_key(cfg: DataConfig) -> str:
    """Config hash plus a fingerprint of the input files (size + mtime), so new logs re-run the stage."""
    from pathlib import Path

    fp = []
    for p in [cfg.path, cfg.items_path]:
        if p:
            for f in sorted(Path().glob(p) if any(ch in p for ch in "*?[") else [Path(p)]):
                if f.is_file():
                    st = f.stat()
                    fp.append([str(f), st.st_size, int(st.st_mtime)])
                elif f.is_dir():
                    fp.extend([str(g), g.stat().st_size, int(g.stat().st_mtime)] for g in sorted(f.rglob("*")) if g.is_file())
    return hash_obj({"cfg": cfg, "files": fp, "v": 1})


def run(cfg: DataConfig, run_dir: RunDir, *, force: bool = False) -> dict[str, int]:
    """Load, validate, prepare and split; write tables. Returns the counts (also in the manifest)."""
    key = input_key(cfg)
    if not force and run_dir.is_fresh(STAGE, key):
        counts = run_dir.stage_record(STAGE)["counts"]  # type: ignore[index]
        log.info("data: up to date (%s users, %s items), skipped", counts["users"], counts["items"])
        return counts
    t0 = time.perf_counter()
    loaded = load_source(cfg)
    prep = prepare(loaded, kcore_k=cfg.kcore, require_catalogue=cfg.require_catalogue)
    source = loaded.source
    del loaded  # the raw log (often the largest thing in memory) is not needed by the split and writes
    if cfg.split == "leave_one_out":
        train, valid, test = leave_one_out(prep.interactions)
    else:
        train, valid, test = temporal(prep.interactions, valid_days=cfg.valid_days, test_days=cfg.test_days)
    cold: list[int] = []
    if cfg.cold_item_share > 0:
        train, cold = hold_out_items(train, share=cfg.cold_item_share, seed=cfg.seed)
    lay = run_dir.layout
    outs = T.write(layout=lay, items=prep.items, users=prep.users, interactions=prep.interactions,
                   quarantine=prep.quarantine, train=train, valid=valid, test=test)
    counts = {**prep.counts, "train": train.height, "valid": valid.height, "test": test.height,
              "cold_items_held_out": len(cold)}
    reasons = prep.quarantine.group_by("reason").len().sort("len", descending=True) if prep.quarantine.height \
        else pl.DataFrame()
    run_dir.record(STAGE, key=key, config=cfg, outputs=outs, seconds=time.perf_counter() - t0, counts=counts,
                   source=source,
                   quarantine_reasons={r: n for r, n in reasons.iter_rows()} if reasons.height else {})
    assert counts["read"] == counts["kept"] + counts["quarantined"], counts
    log.info("data: %s — read %d = kept %d + quarantined %d; %d users, %d items; split %s: train %d / valid %d / test %d",
             source, counts["read"], counts["kept"], counts["quarantined"], counts["users"], counts["items"],
             cfg.split, counts["train"], counts["valid"], counts["test"])
    return counts
