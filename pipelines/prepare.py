"""Load, validate, de-duplicate, k-core filter, id-map and split logs into <run>/tables.

    recsys prepare [-o RUN_DIR] [key=value ...]      e.g. data.source=uci, data.split=temporal

Prints read = kept + quarantined and the quarantine reasons; rejected rows are in tables/quarantine.parquet.
"""

from __future__ import annotations

import argparse

from pipelines.common import add_common_args, command_main, load_config, open_run, setup_logging
from recsys.artifacts import RunDir
from recsys.data.config import DataConfig


def add_arguments(ap: argparse.ArgumentParser, *, default_out: str = "runs/prepare") -> None:
    add_common_args(ap, default_out=default_out)


def main(argv: list[str] | None = None) -> int:
    return command_main(argv, prog="recsys prepare", doc=__doc__, add=add_arguments, run=run)


def run(args: argparse.Namespace) -> int:
    setup_logging(quiet=args.quiet, verbose=args.verbose)
    # accept both "data.source=x" and "source=x"
    args.overrides = [o.removeprefix("data.") for o in args.overrides]
    cfg = load_config(DataConfig, args)
    from recsys.data import stage

    with open_run(args.out):
        run_dir = RunDir(args.out)
        counts = stage.run(cfg, run_dir, force=args.force)
    rec = run_dir.stage_record("data") or {}
    print(f"read {counts['read']:,} = kept {counts['kept']:,} + quarantined {counts['quarantined']:,}")
    for reason, n in (rec.get("quarantine_reasons") or {}).items():
        print(f"  quarantined {n:>8,}  {reason}")
    print(f"{counts['users']:,} users, {counts['items']:,} items; train {counts['train']:,} / valid {counts['valid']:,}"
          f" / test {counts['test']:,} -> {run_dir.layout.tables}")
    for line in summary_extras(counts, notes=rec.get("notes") or [],
                               catalogue_reasons=rec.get("catalogue_quarantine_reasons") or {}):
        print(line)
    return 0


_SHOWN = {"read", "kept", "quarantined", "users", "items", "train", "valid", "test"}


def summary_extras(counts: dict[str, int], *, notes: list[str], catalogue_reasons: dict[str, int]) -> list[str]:
    """The stage's other counters (catalogue rows, converted timestamps, items without text, ...) and notes."""
    lines = []
    if "catalogue_read" in counts:
        lines.append(f"catalogue: read {counts['catalogue_read']:,} = kept {counts['catalogue_kept']:,} + "
                     f"quarantined {counts['catalogue_quarantined']:,}")
        lines += [f"  quarantined {n:>8,}  {reason}" for reason, n in catalogue_reasons.items()]
    skip = _SHOWN | {"catalogue_read", "catalogue_kept", "catalogue_quarantined"}
    lines += [f"  {k.replace('_', ' ')}: {v:,}" for k, v in counts.items() if k not in skip]
    return lines + [f"note: {n}" for n in notes]


if __name__ == "__main__":
    raise SystemExit(main())
