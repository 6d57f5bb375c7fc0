"""The data stage: source -> validated, id-mapped, split tables in ``<run>/tables``."""

from __future__ import annotations

import logging
import time
from typing import Any

from recsys.artifacts import RunDir, hash_obj, write_parquet
from recsys.contracts import tables as T
from recsys.data.config import DataConfig
from recsys.data.errors import DataError
from recsys.data.fingerprint import fingerprint
from recsys.data.loaders import load_source
from recsys.data.prepare import prepare
from recsys.data.split import check_split, hold_out_items, leave_one_out, temporal

log = logging.getLogger(__name__)
STAGE = "data"
# sources whose only item text is a catalogue file (data.items_path); the others carry their own
CATALOGUE_TEXT_ONLY = ("table", "amazon")


def input_key(cfg: DataConfig, *, inputs: list[dict[str, Any]] | None = None) -> str:
    """Config hash plus the content hash of every input file, so new or edited logs re-run the stage."""
    files = inputs if inputs is not None else fingerprint([cfg.path, cfg.items_path])
    return hash_obj({"cfg": cfg, "files": [[f["file"], f["bytes"], f["blake2b"]] for f in files], "v": 2})


def no_text_error(cfg: DataConfig, notes: tuple[str, ...] | list[str] = ()) -> DataError:
    """The one paragraph for "text is required but no item has any"."""
    if cfg.items_path is None:
        return DataError("<config>", "data.items_path is not set, so the items have ids but no text, and the "
                         "text teacher that `recsys evaluate` and `recsys build-index` start from would have "
                         "nothing to encode.", column="data.items_path",
                         hint="Set data.items_path to the item catalogue (CSV/TSV/JSON lines/Parquet with the item "
                              "id and a title or description column, see data.columns.item_*); `recsys prepare` "
                              "alone builds the id-only tables without one.")
    found = " ".join(notes) if notes else (f"{cfg.items_path}: no catalogue row has a title, brand, category or "
                                           "description (see data.columns.item_title and the other item_* options).")
    return DataError(cfg.items_path, f"no item has any text, so the text teacher would have nothing to encode. "
                     f"{found}", hint="`recsys prepare` alone builds the tables without text.")


def _reasons(q: Any) -> dict[str, int]:
    """{reason: rows}, most frequent first (ties alphabetically)."""
    return dict(q.group_by("reason").len().sort(["len", "reason"], descending=[True, False]).iter_rows()) \
        if q.height else {}


def run(cfg: DataConfig, run_dir: RunDir, *, force: bool = False, require_text: bool = False) -> dict[str, int]:
    """Load, validate, prepare and split; write tables. Returns the counts (also in the manifest).

    Args:
        require_text: the caller encodes item text (the teacher): refuse, before loading when the config
            already shows it, a source whose items have no text at all.

    Raises:
        DataError: a file cannot be used; no row survives validation (the quarantine is written, to look
            at); a split is empty; ``require_text`` and no item has text.
    """
    if require_text and cfg.source in CATALOGUE_TEXT_ONLY and cfg.items_path is None:
        raise no_text_error(cfg)
    inputs = fingerprint([cfg.path, cfg.items_path])
    key = input_key(cfg, inputs=inputs)
    if not force and run_dir.is_fresh(STAGE, key):
        rec = run_dir.stage_record(STAGE) or {}
        counts = rec["counts"]
        log.info("data: up to date (%s users, %s items), skipped", counts["users"], counts["items"])
        if require_text and counts.get("items_with_text", 1) == 0:
            raise no_text_error(cfg, rec.get("notes") or ())
        return counts
    t0 = time.perf_counter()
    loaded = load_source(cfg)
    prep = prepare(loaded, kcore_k=cfg.kcore, require_catalogue=cfg.require_catalogue)
    source, notes = loaded.source, loaded.notes
    del loaded  # the raw log (often the largest thing in memory) is not needed by the split and writes
    lay = run_dir.layout
    n_log = prep.counts["quarantined"]  # the log's rejected rows come first, the catalogue's after them
    reasons = _reasons(prep.quarantine.head(n_log))
    catalogue_reasons = _reasons(prep.quarantine.slice(n_log))
    if prep.interactions.height == 0:  # only the quarantine, for the user to look at (no tables, no record)
        write_parquet(lay.quarantine, prep.quarantine)
        top = "; ".join(f"{n:,} {r}" for r, n in list(reasons.items())[:3])
        raise DataError(cfg.path or source, f"no usable rows: all {prep.counts['read']:,} rows read were "
                        f"quarantined ({top}).", hint=f"The rows and reasons are in {lay.quarantine}; fix the "
                        "export or the data.columns.* mapping.")
    if cfg.split == "leave_one_out":
        train, valid, test = leave_one_out(prep.interactions)
    else:
        train, valid, test = temporal(prep.interactions, valid_days=cfg.valid_days, test_days=cfg.test_days)
    check_split(prep.interactions, train=train, valid=valid, test=test, split=cfg.split,
                valid_days=cfg.valid_days, test_days=cfg.test_days, source=cfg.path or source)
    # events in interactions.parquet but in no split: leave-one-out's repeats after the valid target, the
    # temporal split's window repeats and window events of new users (kept = train + valid + test + this)
    outside = prep.interactions.height - train.height - valid.height - test.height
    cold: list[int] = []
    if cfg.cold_item_share > 0:
        train, cold = hold_out_items(train, share=cfg.cold_item_share, seed=cfg.seed)
    outs = T.write(layout=lay, items=prep.items, users=prep.users, interactions=prep.interactions,
                   quarantine=prep.quarantine, train=train, valid=valid, test=test)
    counts = {**prep.counts, "train": train.height, "valid": valid.height, "test": test.height,
              "outside_splits": outside, "cold_items_held_out": len(cold)}
    run_dir.record(STAGE, key=key, config=cfg, outputs=outs, seconds=time.perf_counter() - t0, counts=counts,
                   source=source, quarantine_reasons=reasons, catalogue_quarantine_reasons=catalogue_reasons,
                   inputs=inputs, notes=list(notes))
    assert counts["read"] == counts["kept"] + counts["quarantined"], counts
    assert counts.get("catalogue_read", 0) == counts.get("catalogue_kept", 0) + counts.get("catalogue_quarantined", 0)
    log.info("data: %s — read %d = kept %d + quarantined %d; %d users, %d items; split %s: train %d / valid %d / test %d",
             source, counts["read"], counts["kept"], counts["quarantined"], counts["users"], counts["items"],
             cfg.split, counts["train"], counts["valid"], counts["test"])
    if require_text and counts["items_with_text"] == 0:
        raise no_text_error(cfg, notes)
    return counts
