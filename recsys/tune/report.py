"""The trials table (polars frame + markdown) and the plot: valid NDCG@10 per trial and the best so far."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from recsys.tune.config import Choice, FloatRange, IntChoice, IntRange, SearchSpace
from recsys.tune.study import TrialRow


def _dtype(knob: object) -> pl.DataType:
    if isinstance(knob, FloatRange):
        return pl.Float64()
    if isinstance(knob, (IntRange, IntChoice)):
        return pl.Int64()
    assert isinstance(knob, Choice)
    return pl.String()


def frame(rows: list[TrialRow], *, space: SearchSpace) -> pl.DataFrame:
    """One row per trial: trial, state, one column per knob (every declared knob; null when it was off or not
    sampled), valid_ndcg@10, valid_recall@10, seconds, folder (student/trial_<folder>), baseline."""
    names = [f for f in space.__dataclass_fields__]
    schema: dict[str, pl.DataType] = {"trial": pl.Int32(), "state": pl.String(),
                                      **{n: _dtype(getattr(space, n)) for n in names},
                                      "valid_ndcg@10": pl.Float64(), "valid_recall@10": pl.Float64(),
                                      "seconds": pl.Float64(), "folder": pl.Int32(), "baseline": pl.Boolean()}
    data = [{"trial": r.number, "state": r.state, **{n: r.params.get(n) for n in names}, "valid_ndcg@10": r.ndcg,
             "valid_recall@10": r.recall, "seconds": r.seconds, "folder": r.folder, "baseline": r.baseline}
            for r in rows]
    return pl.DataFrame(data, schema=schema, orient="row") if data else pl.DataFrame(schema=schema)


def markdown(df: pl.DataFrame, *, best: int | None, title: str) -> str:
    """The table as markdown; the best trial in bold, the baseline marked."""
    cols = [c for c in df.columns if c not in ("folder", "baseline")]
    lines = [f"# {title}", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in df.iter_rows(named=True):
        cells = []
        for c in cols:
            v = r[c]
            cells.append("–" if v is None else f"{v:.4g}" if isinstance(v, float) and c not in
                         ("valid_ndcg@10", "valid_recall@10") else f"{v:.4f}" if isinstance(v, float) else str(v))
        if r["baseline"]:
            cells[0] += " (base)"
        if best is not None and r["trial"] == best:
            cells = [f"**{c}**" for c in cells]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(df: pl.DataFrame, *, path: Path, title: str) -> Path:
    """valid NDCG@10 of each completed trial (dots) and the best so far (a step line); one png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from recsys.artifacts import atomic_path

    done = df.filter(pl.col("state") == "COMPLETE").sort("trial")
    x, y = done["trial"].to_list(), done["valid_ndcg@10"].to_list()
    best, run = [], float("-inf")
    for v in y:
        run = max(run, v)
        best.append(run)
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(x, y, "o", label="trial")
    ax.step(x, best, where="post", label="best so far")
    base = done.filter(pl.col("baseline"))
    if base.height:
        ax.axhline(base["valid_ndcg@10"][0], color="grey", ls=":", label="base config")
    ax.set_xlabel("trial")
    ax.set_ylabel("valid NDCG@10")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return path
