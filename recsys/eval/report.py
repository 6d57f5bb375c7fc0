"""report.md: the metrics table, gains, slices, what each stage did (from the manifest) and plots."""

from __future__ import annotations

from typing import Any

import polars as pl


def _fmt(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def table(rows: list[dict[str, Any]], cols: list[str]) -> str:
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    out += ["| " + " | ".join(_fmt(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(out)


def gains(rows: list[dict[str, Any]], *, metric: str = "ndcg@10") -> list[str]:
    by = {r["model"]: r[metric] for r in rows}
    pairs = [("student_kd", "student_no_kd"), ("student_kd", "teacher_raw"), ("student_kd", "teacher_adapted"),
             ("student_kd", "als"), ("teacher_adapted", "teacher_raw"), ("student_kd_ann", "student_kd"),
             ("union_rerank", "student_kd_ann"), ("union_rerank", "teacher_adapted"), ("union_rerank", "als"), ("student_kd_int8", "student_kd"),
             ("student_kd_pruned", "student_kd")]
    out = []
    for a, b in pairs:
        if a in by and b in by and by[b] > 0:
            out.append(f"- `{a}` vs `{b}`: {metric} {by[a]:.4f} vs {by[b]:.4f} ({(by[a] / by[b] - 1) * 100:+.1f}%)")
    return out


def _bytes(v: Any) -> str:
    return "–" if v is None else f"{v / 1e6:.2f} MB"


def size_section(sizes: dict[str, Any], rows: list[dict[str, Any]]) -> list[str]:
    """Quality vs size: the student as trained (fp32), its int8 item vectors, its pruned twin."""
    by = {r["model"]: r for r in rows}
    v = sizes.get("variant", "student_kd")
    cfg = sizes.get("config", {})
    out = ["### Quality vs size", "",
           f"`{v}_pruned`: dense sparsity {cfg.get('dense_sparsity')} ({cfg.get('scope')}), id rows of items with "
           f"fewer than {cfg.get('min_item_count')} training events dropped ({sizes['id_rows']['kept']:,} of "
           f"{sizes['id_rows']['of']:,} rows kept; {sizes['dense_weights']['kept']:,} of "
           f"{sizes['dense_weights']['of']:,} dense weights). Model = id/brand/category tables + dense weights "
           "(the pruned one as stored: kept rows + row ids, packed masks + kept values, biases); the teacher's "
           "text and carry vectors are inputs of every variant and not counted. int8 quantises the served item "
           "vectors only.", "",
           "| variant | row | ndcg@10 | recall@10 | tables | dense | model total | item vectors |",
           "|---|---|---|---|---|---|---|---|"]
    for name, row in (("fp32", v), ("int8", f"{v}_int8"), ("pruned", f"{v}_pruned")):
        s, r = sizes.get(name, {}), by.get(row, {})
        out.append(f"| {name} | `{row}` | {_fmt(r.get('ndcg@10', '–'))} | {_fmt(r.get('recall@10', '–'))} | "
                   f"{_bytes(s.get('tables'))} | {_bytes(s.get('dense'))} | {_bytes(s.get('total'))} | "
                   f"{_bytes(s.get('item_vectors'))} |")
    return [*out, ""]


def slice_table(frame: pl.DataFrame, *, metric: str) -> str:
    wide = frame.pivot(on="slice", index="model", values=metric, aggregate_function="first")
    cols = wide.columns
    return table(wide.to_dicts(), cols)


def render(*, dataset: str, protocol: str, rows: list[dict[str, Any]], ks: tuple[int, ...],
           pop_slices: pl.DataFrame, len_slices: pl.DataFrame, slice_counts: dict[str, int],
           overlap: dict[str, float], manifest: dict[str, Any], plots: list[str],
           served: dict[str, Any] | None = None, sizes: dict[str, Any] | None = None) -> str:
    cols = ["model", "kind"] + [f"{m}@{k}" for k in ks for m in ("recall", "ndcg")] + \
        [f"{m}@{ks[0]}" for m in ("hr", "mrr", "coverage")]
    md = [f"# recsys report — {dataset}", "",
          f"Protocol: {protocol}. Metrics are averaged over users with a target; the user's own history is "
          "excluded from every ranking; ties count against the target; non-finite scores never hit.", "",
          "## Results", "", table(rows, cols), ""]
    if served:
        md += [f"**Served: `{served['row']}`** — {served.get('reason', '')}.", ""]
        if served.get("valid"):
            md += [f"Gate figures (valid split, users the ranker never trained on, margin "
                   f"{served.get('margin', 0):g}): " + ", ".join(f"`{k}` {v:.4f}" for k, v in served["valid"].items()), ""]
    if sizes:
        md += size_section(sizes, rows)
    g = gains(rows)
    if g:
        md += ["### Relative gains", "", *g, ""]
    if overlap:
        md += ["### Teacher–student agreement", ""]
        md += [f"- {k}: {v:.3f}" for k, v in overlap.items()] + [""]
    md += ["## Slices", "",
           "Items by training popularity (head = top 20% of items with training events, tail = bottom 50%, cold = "
           "none); counts of test targets: " + ", ".join(f"{k} {v}" for k, v in slice_counts.items()) + ".", "",
           f"### NDCG@{ks[0]} by item popularity", "", slice_table(pop_slices, metric=f"ndcg@{ks[0]}"), "",
           f"### Recall@{ks[0]} by item popularity", "", slice_table(pop_slices, metric=f"recall@{ks[0]}"), "",
           f"### NDCG@{ks[0]} by user history length", "", slice_table(len_slices, metric=f"ndcg@{ks[0]}"), "",
           f"### Recall@{ks[0]} by user history length", "", slice_table(len_slices, metric=f"recall@{ks[0]}"), ""]
    md += ["## Stages", ""]
    for name, rec in manifest.get("stages", {}).items():
        extra = {k: v for k, v in rec.items() if k not in ("key", "config", "outputs", "finished_at")}
        md.append(f"- **{name}** ({rec.get('seconds', '?')} s): " + ", ".join(
            f"{k}={v}" for k, v in extra.items() if k != "seconds" and not isinstance(v, (dict, list)) or k == "counts"))
    md.append("")
    if plots:
        md += ["## Plots", ""] + [f"![{p}]({p})" for p in plots] + [""]
    return "\n".join(md)
