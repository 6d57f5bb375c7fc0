"""Loaders: each turns one kind of source into ``schema.Loaded`` (raw string ids + provenance).

``load_source(cfg)`` picks the loader for ``cfg.source``.
"""

from __future__ import annotations

from recsys.data.config import DataConfig
from recsys.data.errors import DataError
from recsys.data.schema import Loaded


def load_source(cfg: DataConfig) -> Loaded:
    if cfg.source == "beauty":
        from recsys.data.loaders.beauty import load_beauty

        return load_beauty()
    if cfg.source == "toys":
        from recsys.data.loaders.toys import load_toys

        return load_toys()
    if cfg.source == "synthetic":
        from recsys.data.synthetic import make_shop

        return make_shop(n_users=cfg.synthetic_users, n_items=cfg.synthetic_items, seed=cfg.seed)
    if cfg.path is None and cfg.source != "uci":  # uci without a path = the embedded copy
        raise DataError("<config>", f"source '{cfg.source}' needs data.path (the log file or folder).",
                        hint="Pass e.g. data.path=logs/events.csv")
    if cfg.source == "table":
        from recsys.data.loaders.table import load_table

        return load_table(cfg)
    if cfg.source == "amazon":
        from recsys.data.loaders.amazon import load_amazon

        return load_amazon(cfg)
    if cfg.source == "recbole":
        from recsys.data.loaders.recbole import load_recbole

        return load_recbole(cfg)
    if cfg.source == "uci":
        from recsys.data.loaders.uci import load_uci

        return load_uci(cfg)
    raise DataError("<config>", f"unknown data.source '{cfg.source}'")
