"""PNG plots for the report (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from recsys.artifacts import atomic_path


def _plt():  # noqa: ANN202
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def colours(n: int) -> list[tuple[float, ...]]:
    """``n`` distinct colours: tab10 up to 10 rows, tab20 up to 20, then evenly spaced hues."""
    plt = _plt()
    if n <= 10:
        return [plt.get_cmap("tab10")(i) for i in range(n)]
    if n <= 20:
        return [plt.get_cmap("tab20")(i) for i in range(n)]
    return [plt.get_cmap("hsv")(i / n) for i in range(n)]


def recall_curves(curves: dict[str, dict[int, float]], path: Path) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for (name, pts), c in zip(curves.items(), colours(len(curves))):
        ks = sorted(pts)
        ax.plot(ks, [pts[k] for k in ks], marker="o", label=name, color=c)
    ax.set_xscale("log")
    ax.set_xlabel("K")
    ax.set_ylabel("Recall@K")
    ax.set_title("Recall@K, full ranking")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def slice_bars(frame: pl.DataFrame, *, metric: str, title: str, path: Path) -> Path:
    """``frame``: model, slice, <metric>."""
    plt = _plt()
    models = frame["model"].unique(maintain_order=True).to_list()
    slices = frame["slice"].unique(maintain_order=True).to_list()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    w = 0.8 / max(1, len(models))
    for j, (m, c) in enumerate(zip(models, colours(len(models)))):
        sub = frame.filter(pl.col("model") == m)
        vals = {s: v for s, v in zip(sub["slice"], sub[metric])}
        ax.bar([i + j * w for i in range(len(slices))], [vals.get(s) or 0.0 for s in slices], width=w, label=m,
               color=c)
    ax.set_xticks([i + 0.4 - w / 2 for i in range(len(slices))], slices)
    ax.set_ylabel(metric)
    ax.set_title(title)
    ax.legend(fontsize=7)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def ann_tradeoff(points: list[dict], path: Path) -> Path:
    """``points``: {"kind", "recall", "qps"} per index setting."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    kinds = sorted({p["kind"] for p in points})
    for kd in kinds:
        pts = sorted((p for p in points if p["kind"] == kd), key=lambda p: p["recall"])
        ax.plot([p["recall"] for p in pts], [p["qps"] for p in pts], marker="o", label=kd)
    ax.set_yscale("log")
    ax.set_xlabel("recall@10 of exact search")
    ax.set_ylabel("queries / second")
    ax.set_title("ANN recall vs speed")
    ax.grid(True, alpha=0.3)
    ax.legend()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path
