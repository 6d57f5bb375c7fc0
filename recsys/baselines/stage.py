"""The baselines stage: popularity counts and ALS factors at each split's prediction point."""

from __future__ import annotations

import logging
import time

from recsys.artifacts import RunDir, hash_obj
from recsys.contracts import baselines as B
from recsys.baselines.als import fit_als
from recsys.baselines.config import BaselinesConfig
from recsys.baselines.popularity import item_counts
from recsys.data.tables import load_tables

log = logging.getLogger(__name__)
STAGE = "baselines"


def run(cfg: BaselinesConfig, run_dir: RunDir) -> None:
    """Write popularity counts (N,) and ALS factors per split (``recsys.contracts.baselines``).

    Each split's models see only that split's history (valid: train; test: train + valid).
    """
    key = hash_obj({"cfg": cfg, "data": run_dir.output_hash("data")})
    if run_dir.is_fresh(STAGE, key):
        log.info("baselines: up to date, skipped")
        return
    t0 = time.perf_counter()
    tables = load_tables(run_dir.layout)
    lay = run_dir.layout
    outs = []
    for split in ("valid", "test"):
        hist = tables.history(split)
        outs.append(B.write_popularity(layout=lay, split=split, counts=item_counts(hist, n_items=tables.n_items)))
        if cfg.als:
            u, i = fit_als(hist, n_users=tables.n_users, n_items=tables.n_items, factors=cfg.als_factors,
                           regularization=cfg.als_regularization, alpha=cfg.als_alpha,
                           iterations=cfg.als_iterations, seed=cfg.seed)
            outs += B.write_als(layout=lay, split=split, users=u, items=i)
    run_dir.record(STAGE, key=key, config=cfg, outputs=outs, seconds=time.perf_counter() - t0)
    log.info("baselines: popularity + %s in %.1fs", "ALS" if cfg.als else "no ALS", time.perf_counter() - t0)
