"""Append a new batch of logs to a published version's tables: stable ids, growing maps, re-split.

The batch goes through the same loader and row rules as a first load (bad rows -> quarantine, with
``read = kept + quarantined`` for the batch), then:

- events already in the published tables (same user, item, time and event) are quarantined as repeats;
- existing users and items keep their ids; new ones get the next ids, in sorted raw-id order;
- catalogue rows of the batch add new items; a catalogue *file* (``data.items_path``) also updates the
  text of known ones (a non-null field wins), a catalogue derived from the log lines only fills empty
  fields; the teacher's per-text cache then re-encodes exactly the new and edited items;
- the k-core filter counts each user's and item's events over published + new (the published events
  already form a k-core, so none of them is ever dropped; new events that do not reach k are quarantined);
- the whole history is split again with ``cfg.split`` (temporal: the newest ``test_days`` = test).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

import polars as pl

from recsys.artifacts import Layout, RunDir, hash_obj
from recsys.contracts import tables as T
from recsys.data.config import DataConfig
from recsys.data.prepare import dedupe_events, kcore
from recsys.data.quarantine import Rule, apply_rules
from recsys.data.schema import ITEMS, TABLE_INTERACTIONS, TABLE_ITEMS, TABLE_USERS, Loaded, conform
from recsys.data.split import leave_one_out, temporal

log = logging.getLogger(__name__)
STAGE = "data"
_BASE = "<published tables>"
_TEXT = [c for c in ITEMS if c != "item_id"]


@dataclasses.dataclass(frozen=True)
class Appended:
    interactions: pl.DataFrame  # TABLE_INTERACTIONS of published + new events
    items: pl.DataFrame  # TABLE_ITEMS; rows 0..N_old-1 are the published items, same ids
    users: pl.DataFrame  # TABLE_USERS; rows 0..U_old-1 are the published users, same ids
    quarantine: pl.DataFrame  # the batch's rejected rows only
    counts: dict[str, int]


def merge_catalogue(old: pl.DataFrame, new: pl.DataFrame | None, *, overwrite: bool) -> tuple[pl.DataFrame, int]:
    """Published catalogue + the batch's: known ids keep their row and id.

    ``overwrite``: a non-null new field replaces the published one (a catalogue file is the authority);
    otherwise new text only fills empty fields (a catalogue derived from log lines, e.g. UCI's most frequent
    description of the week, would churn titles every batch). Returns (catalogue with ``item`` ids for known
    rows and null for new ones, number of edited items).
    """
    if new is None or new.height == 0:
        return old, 0
    new = conform(new, ITEMS).unique(subset="item_id", keep="first", maintain_order=True)
    j = old.join(new, on="item_id", how="left", suffix="_new", maintain_order="left")
    def field(c: str) -> pl.Expr:
        first, second = (pl.col(f"{c}_new"), pl.col(c)) if overwrite else (pl.col(c), pl.col(f"{c}_new"))
        return pl.coalesce(first, second).alias(c)

    merged = j.select("item", "item_id", *[field(c) for c in _TEXT])
    changed = int(merged.select(_TEXT).hash_rows().ne(old.select(_TEXT).hash_rows()).sum())
    added = (new.join(old.select("item_id"), on="item_id", how="anti")
             .with_columns(pl.lit(None, pl.Int32).alias("item")))
    return pl.concat([merged, added.select(merged.columns)]), changed


def append(*, base: Layout, loaded: Loaded, kcore_k: int, require_catalogue: bool,
           overwrite_items: bool = True) -> Appended:
    """Published tables at ``base`` + the batch ``loaded`` -> the new tables (before the split)."""
    old_items, old_users = T.read_items(layout=base), T.read_users(layout=base)
    old = (T.read_interactions(layout=base, n_users=old_users.height, n_items=old_items.height)
           .join(old_users, on="user")
           .join(old_items.select("item", "item_id"), on="item"))
    q_parts = [loaded.quarantine]
    inter, q = dedupe_events(loaded.interactions)
    q_parts.append(q)
    known = old.select("user_id", "item_id", "timestamp", "event").unique().with_columns(pl.lit(True).alias("_seen"))
    inter = inter.join(known, on=["user_id", "item_id", "timestamp", "event"], how="left", nulls_equal=True,
                       maintain_order="left")
    inter, q = apply_rules(inter, [Rule(pl.col("_seen"), "user_id,item_id,timestamp",
                                        "repeat of an event already in the published tables")],
                           raw_cols=["user_id", "item_id", "timestamp", "event"])
    q_parts.append(q)
    inter = inter.drop("_seen")
    catalogue, changed = merge_catalogue(old_items, loaded.items, overwrite=overwrite_items)
    unknown = pl.col("item_id").is_in(catalogue["item_id"].implode()).not_()
    if require_catalogue:
        inter, q = apply_rules(inter, [Rule(unknown, "item_id", "item not in catalogue")],
                               raw_cols=["user_id", "item_id", "timestamp", "event"])
        q_parts.append(q)
    else:
        extra = inter.filter(unknown).select("item_id").unique()
        catalogue = pl.concat([catalogue, conform(extra, ITEMS).with_columns(pl.lit(None, pl.Int32).alias("item"))
                               .select(catalogue.columns)])
    # k-core over published + new; published rows form a k-core already, so only new rows can go
    base_rows = old.select("user_id", "item_id", "timestamp", "event", pl.lit(_BASE).alias("source_file"),
                           pl.int_range(pl.len(), dtype=pl.Int64).alias("source_row"))
    new_rows = inter.select("user_id", "item_id", "timestamp", "event", "source_file", "source_row")
    both = pl.concat([base_rows, new_rows])
    kept, q = kcore(both, k=kcore_k)
    q_parts.append(q.filter(pl.col("source_file") != _BASE))
    kept_new = new_rows.join(kept.select("source_file", "source_row"), on=["source_file", "source_row"], how="semi")

    n_items_old, n_users_old = old_items.height, old_users.height
    added_items = catalogue.filter(pl.col("item").is_null()).sort("item_id")
    items = pl.concat([catalogue.filter(pl.col("item").is_not_null()).sort("item"),
                       added_items.with_columns((pl.int_range(pl.len()) + n_items_old).cast(pl.Int32).alias("item"))])
    added_users = (kept_new.select("user_id").unique().join(old_users, on="user_id", how="anti").sort("user_id")
                   .with_columns((pl.int_range(pl.len()) + n_users_old).cast(pl.Int32).alias("user")))
    users = pl.concat([old_users.select("user", "user_id"), added_users.select("user", "user_id")])
    # published events keep their order (pos); a new event goes after any published event at the same time
    cols = ["user", "item", "timestamp", "event"]
    events = pl.concat([
        old.select(*cols, pl.lit(0).alias("_o"), pl.col("pos").cast(pl.Int64).alias("_r")),
        kept_new.join(users, on="user_id").join(items.select("item_id", "item"), on="item_id")
        .select(*cols, pl.lit(1).alias("_o"), pl.col("source_row").alias("_r")),
    ]).sort("user", "timestamp", "_o", "_r", "item", maintain_order=True)
    events = events.with_columns(pl.int_range(pl.len()).over("user").cast(pl.Int32).alias("pos"))
    parts = [p for p in q_parts if p.height]
    quarantine = pl.concat(parts) if parts else loaded.quarantine
    counts = {"read": loaded.n_read, "kept": kept_new.height, "quarantined": quarantine.height,
              "users": users.height, "items": items.height, "new_users": added_users.height,
              "new_items": added_items.height, "edited_items": changed, "events": events.height,
              **loaded.counters}
    if loaded.items is not None and not require_catalogue:
        counts["items_not_in_catalogue"] = extra.height  # new log items without a catalogue row: empty text
    assert counts["read"] == counts["kept"] + counts["quarantined"], counts
    if loaded.items_quarantine is not None and loaded.items_quarantine.height:
        # rejected catalogue rows: in the same file, counted apart (catalogue_quarantined)
        quarantine = pl.concat([quarantine, loaded.items_quarantine])
    return Appended(interactions=conform(events, TABLE_INTERACTIONS), items=conform(items, TABLE_ITEMS),
                    users=conform(users, TABLE_USERS), quarantine=quarantine, counts=counts)


def input_key(cfg: DataConfig, *, base: RunDir, logs: str) -> str:
    from recsys.data.stage import input_key as files_key

    return hash_obj({"base": base.output_hash("data"), "logs": files_key(dataclasses.replace(cfg, path=logs)),
                     "v": 1})


def run(cfg: DataConfig, run_dir: RunDir, *, base: RunDir, logs: str, force: bool = False) -> dict[str, int]:
    """Load ``logs`` with ``cfg``'s loader, append them to ``base``'s tables, split; write ``run_dir/tables``."""
    from recsys.data.loaders import load_source

    key = input_key(cfg, base=base, logs=logs)
    if not force and run_dir.is_fresh(STAGE, key):
        log.info("data: batch already appended, skipped")
        return dict(run_dir.stage_record(STAGE)["counts"])  # type: ignore[index]
    t0 = time.perf_counter()
    loaded = load_source(dataclasses.replace(cfg, path=logs))
    a = append(base=base.layout, loaded=loaded, kcore_k=cfg.kcore, require_catalogue=cfg.require_catalogue,
               overwrite_items=cfg.items_path is not None)  # only a catalogue file may rewrite item text
    if cfg.split == "leave_one_out":
        train, valid, test = leave_one_out(a.interactions)
    else:
        train, valid, test = temporal(a.interactions, valid_days=cfg.valid_days, test_days=cfg.test_days)
    lay = run_dir.layout
    old_q = T.read_quarantine(layout=base.layout)
    old_q = a.quarantine.clear() if old_q is None else old_q
    outs = T.write(layout=lay, items=a.items, users=a.users, interactions=a.interactions,
                   quarantine=pl.concat([old_q, a.quarantine], how="diagonal_relaxed"), train=train, valid=valid,
                   test=test)
    counts = {**a.counts, "train": train.height, "valid": valid.height, "test": test.height,
              "outside_splits": a.interactions.height - train.height - valid.height - test.height}
    reasons = dict(a.quarantine.group_by("reason").len().sort("len", descending=True).iter_rows())
    run_dir.record(STAGE, key=key, config=cfg, outputs=outs, seconds=time.perf_counter() - t0, counts=counts,
                   source=loaded.source, quarantine_reasons=reasons,
                   append={"base": str(base.root), "logs": str(Path(logs))})
    log.info("data: appended %s — read %d = kept %d + quarantined %d; +%d users, +%d items, %d edited; "
             "split %s: train %d / valid %d / test %d", loaded.source, counts["read"], counts["kept"],
             counts["quarantined"], counts["new_users"], counts["new_items"], counts["edited_items"], cfg.split,
             counts["train"], counts["valid"], counts["test"])
    return counts
