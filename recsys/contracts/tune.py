"""tune/: the study journal (Optuna's own format), the trials table (parquet + markdown), its plot, and the
run-level best.toml. The tune records the table, plot and best.toml as stage ``tune`` after every trial."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from recsys.contracts import _checks as C
from recsys.contracts.layout import Layout
from recsys.contracts.manifests import verify

STAGE = "tune"
# fixed columns of trials.parquet; one more column per knob of the search space, named after it
COLUMNS = {"trial": "int", "state": "str", "valid_ndcg@10": "any", "valid_recall@10": "any", "seconds": "any",
           "folder": "int", "baseline": "any"}


def study_path(layout: Layout) -> Path:
    """The journal file Optuna reads and appends (never parsed by us)."""
    return layout.tune_study


def write_trials(*, layout: Layout, table: pl.DataFrame, markdown: str) -> list[Path]:
    from recsys.artifacts import write_parquet, write_text

    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"trials table lacks columns {missing}")
    return [write_parquet(layout.tune_trials, table), write_text(layout.tune_trials_md, markdown)]


def read_trials(*, layout: Layout) -> pl.DataFrame:
    """trials.parquet, verified against the digest the tune recorded: the fixed columns, unique trials."""
    p = verify(layout.tune_trials, layout=layout, stage=STAGE)
    df = C.load_parquet(p, stage=STAGE)
    C.check_columns(df, path=p, stage=STAGE, kinds=COLUMNS)
    C.check_unique(df, "trial", path=p, stage=STAGE)
    return df


def plot_path(layout: Layout) -> Path:
    return layout.tune_plot


def write_best(*, layout: Layout, text: str) -> Path:
    from recsys.artifacts import write_text

    return write_text(layout.best_config, text)
