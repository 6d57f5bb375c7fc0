"""Retrain demo on real logs: publish a first version, then retrain on each new week through the gate.

    recsys retrain-demo [-o runs/retrain_demo] [--increments 3] [--datasets uci,beauty] [key=value ...]

UCI Online Retail (embedded): the first ``--base-months`` months are version 1, then one retrain per week.
Amazon Beauty (embedded, day timestamps, events since ``--beauty-since``): everything before the last weeks
is version 1, then one retrain per week up to the end of the data (July 2014). After the increments, one deliberately broken retrain
(student.epochs=0 with a new output size, so the warm start cannot reuse the last layer, and no teacher carry) on the
following week checks that the gate refuses it and `current` stays.

Per increment, on the candidate's test window (the newest ``data.test_days`` of the new week, history
excluded, full ranking), report.md / report.json give NDCG@10 and Recall@10 of:
  incremental  the retrained candidate (append to the published tables -> teacher -> student)
  published    the published model re-applied to this week's histories, no training (the gate's baseline),
               and as served (its stored vectors, computed before the week)
  full         a retrain from scratch on all logs so far (data -> teacher -> student, own id maps)
  popular      most-popular items at the test point (context)
with the relative change incremental vs full and vs published and its 95 % paired-bootstrap interval over
the test users (a 3-day window holds a few dozen UCI customers: single weeks are noisy, so the report also
pools every week's test users), plus the gate decision and the seconds each took: for incremental and full
alike the steps both run (data -> teacher -> student, wall clock), the student's training (epochs x examples per epoch: the
incremental one trains on the new window + a replay sample, ``retrain.replay_fraction``, for at most
``retrain.incremental_epochs``), and the incremental retrain's total (+ gate, index, ranker).
key=value overrides apply to every retrain.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from pipelines.common import command_main, default_config_path, quiet_third_party, setup_logging
from recsys.artifacts import RunDir
from recsys.contracts import report as RP
from recsys.contracts import student as S
from recsys.contracts.layout import Layout
from recsys.config import load

log = logging.getLogger("recsys")
DAY = 86_400
# Budget: the whole demo in about 15 min on 2 shared cores (plus encoding the catalogues once: the
# teacher's text cache is shared by later runs). The teacher adapter is off (it costs ~1 min per retrain on
# UCI; the teacher is then the raw text model). The student keeps its own epochs (5, early stopping) so the
# full retrain and the incremental one (at most retrain.incremental_epochs on new window + replay) train as
# they would in use. Exact (flat) index, no recall/QPS sweep of the other kinds. key=value overrides these.
# The deliberately broken retrain: an untrained student (a new output size, so the warm start cannot reuse the last
# layer) that carries nothing of the teacher either (with the default carry an untrained student still scores
# half the teacher's cosine, which a 30-customer window cannot tell from an honest retrain).
SABOTAGE = ["student.epochs=0", "student.dim=8", "student.teacher_carry=0"]
FAST = ["teacher.adapter_epochs=0", "student.rank_users_per_step=64", "student.history_len=20",
        "index.kind=flat", "index.tradeoff=false", "data.kcore=0", "publish.keep=3"]


def _ts(df: pl.DataFrame, col: str) -> pl.Series:
    s = df[col]
    return s.str.to_datetime(strict=False).dt.epoch("s") if s.dtype == pl.String else s


def cut_uci(dest: Path, *, base_months: int, weeks: int) -> list[Path]:
    """Embedded UCI log -> part_00 (first ``base_months`` months), part_01.. (one week each), raw columns."""
    from recsys.data.loaders.uci import embedded_path

    raw = pl.read_parquet(embedded_path())
    t = _ts(raw, "InvoiceDate")
    first = dt.datetime.fromtimestamp(int(t.min()), dt.timezone.utc)
    y, m = divmod(first.month - 1 + base_months, 12)
    base_end = int(dt.datetime(first.year + y, m + 1, 1, tzinfo=dt.timezone.utc).timestamp())
    return _write_parts(raw, t, dest, cuts=[base_end + k * 7 * DAY for k in range(weeks + 1)])


def cut_beauty(dest: Path, *, weeks: int, since: str) -> tuple[list[Path], Path]:
    """Embedded Beauty from ``since`` -> table-source parts: all before the last ``weeks`` weeks, then one per week."""
    from recsys.data.loaders.beauty import embedded_path

    start = int(dt.datetime.fromisoformat(since).replace(tzinfo=dt.timezone.utc).timestamp())
    raw = pl.read_parquet(embedded_path("beauty_interactions.parquet")).filter(pl.col("timestamp") >= start)
    end = int(raw["timestamp"].max()) + DAY
    parts = _write_parts(raw, raw["timestamp"], dest, cuts=[end - (weeks - k) * 7 * DAY for k in range(weeks + 1)])
    items = dest / "catalogue.parquet"
    if not items.exists():  # the products sold in the period (encoding all 12k would dominate the demo's time)
        sold = raw.select("item_id").unique()
        pl.read_parquet(embedded_path("beauty_items.parquet")).join(sold, on="item_id", how="semi").write_parquet(items)
    return parts, items


def _write_parts(raw: pl.DataFrame, t: pl.Series, dest: Path, *, cuts: list[int]) -> list[Path]:
    dest.mkdir(parents=True, exist_ok=True)
    bounds = [-(2**62), *cuts[:-1], cuts[-1]]
    paths = []
    for k, (lo, hi) in enumerate(zip(bounds, bounds[1:])):
        p = dest / f"part_{k:02d}.parquet"
        if not p.exists():
            raw.filter(((t >= lo) & (t < hi)).to_numpy()).write_parquet(p)
        paths.append(p)
    return paths


def _window(path: Path, source: str) -> str:
    df = pl.read_parquet(path)
    t = _ts(df, "InvoiceDate" if source == "uci" else "timestamp")
    day = lambda x: dt.datetime.fromtimestamp(int(x), dt.timezone.utc).strftime("%Y-%m-%d")  # noqa: E731
    return f"{day(t.min())}..{day(t.max())} ({df.height:,} rows)"


def full_retrain(cfg: Any, out: Path, parts: list[Path]) -> tuple[Path, float]:
    """From scratch on all parts so far: data -> teacher -> student in a fresh run dir."""
    from recsys.data import stage as data
    from recsys.student import stage as student
    from recsys.teacher import stage as teacher

    folder = out / "logs"
    folder.mkdir(parents=True, exist_ok=True)
    for p in parts:
        if not (folder / p.name).exists():
            (folder / p.name).symlink_to(p.resolve())
    rd = RunDir(out)
    t0 = time.perf_counter()
    data.run(dataclasses.replace(cfg.data, path=str(folder)), rd)
    teacher.run(cfg.teacher, rd)
    student.run(cfg.student, rd, variant=cfg.variant)
    return out, round(time.perf_counter() - t0, 1)


def student_work(run: Path, variant: str) -> dict[str, Any]:
    """What the student of a run dir trained on: epochs run, examples per epoch, seconds of its epochs."""
    meta = S.read_meta(layout=Layout(run), variant=variant)
    ex = meta.get("examples") or {}
    return {"epochs": meta.get("epochs_run"), "train_seconds": meta.get("train_seconds"),
            "examples_per_epoch": (ex.get("window", 0) + ex.get("replay_per_epoch", 0)) or None}


def popular(tables: Any) -> dict[str, float]:
    from recsys.metrics import evaluate_scores

    h = tables.history("test")
    counts = np.bincount(h["item"].to_numpy(), minlength=tables.n_items).astype(np.float32)
    res = evaluate_scores(score_fn=lambda u: np.broadcast_to(counts, (len(u), len(counts))),
                          targets=tables.targets("test"), history=h, n_items=tables.n_items)
    return res.summary(ks=(10, 20))


def candidate_dir(root: Path, version: str) -> Path:
    from recsys.publish import store

    v = store.version_dir(root, version)
    return v if v.exists() else root / store.REJECTED / version


def run_dataset(name: str, *, out: Path, increments: int, base_months: int, since: str,
                overrides: list[str]) -> dict[str, Any]:
    from pipelines.config import RetrainConfig
    from pipelines.retrain import retrain
    from recsys.data.tables import load_tables
    from recsys.metrics import paired_change
    from recsys.publish import store
    from recsys.publish.gate import evaluate_result, paired_values, summary, system_vectors

    logs = out / "logs" / name
    if name == "uci":
        parts, ds = cut_uci(logs, base_months=base_months, weeks=increments + 1), ["data.source=uci"]
    else:
        parts, items = cut_beauty(logs, weeks=increments + 1, since=since)
        ds = ["data.source=table", f"data.items_path={items}", "data.columns.item_description=none",
              "data.columns.item_price=none"]
    root = out / "published" / name

    def conf(extra: list[str]) -> Any:
        return load(RetrainConfig, path=default_config_path("retrain_default.toml"),
                    overrides=[*FAST, *ds, *overrides, *extra])

    rows, pooled = [], []
    for k, part in enumerate(parts):
        sabotage = k == len(parts) - 1
        cfg = conf([f"logs={part}", *(SABOTAGE if sabotage else [])])
        before = store.current_name(root)
        t0 = time.perf_counter()
        outcome, info = retrain(cfg, root)
        secs = round(time.perf_counter() - t0, 1)
        broken = ", ".join(o.removeprefix("student.") for o in SABOTAGE)
        row: dict[str, Any] = {"step": f"sabotage (untrained: {broken})" if sabotage else
                               ("initial" if k == 0 else f"week {k}"), "logs": _window(part, name),
                               "outcome": outcome, "current_before": before,
                               "current_after": store.current_name(root), "seconds_incremental": secs}
        cand = candidate_dir(root, info["version"])
        gate = info.get("gate") or RP.read_gate(layout=Layout(cand))  # re-run: already published
        row.update(gate_passed=gate.get("passed"), gate_reason=gate.get("reason"),
                   incremental=gate.get("candidate"), published=gate.get("published"),
                   published_as_served=gate.get("published_as_served"), incr_vs_published=gate.get("change"),
                   drift=gate.get("drift"))
        man = store.read_manifest(cand)
        row["data"] = (man.get("stages", {}).get("data") or {}).get("counts")
        timings = man.get("timings") or info.get("timings") or {}
        row["seconds_incremental_model"] = round(sum(timings.get(s, 0.0) for s in
                                                     ("data", "teacher", S.stage_of(cfg.variant))), 1)
        row["student_incremental"] = student_work(cand, cfg.variant)
        if k > 0 and not sabotage:
            full, row["seconds_full"] = full_retrain(conf([]), out / "full" / name / f"{k:02d}", parts[:k + 1])
            row["student_full"] = student_work(full, cfg.variant)
            tables = load_tables(RunDir(cand).layout)
            res_full = evaluate_result(system_vectors(full, variant=cfg.variant, tables=tables), tables=tables)
            res_incr = evaluate_result(system_vectors(cand, variant=cfg.variant, tables=tables), tables=tables)
            row["full"] = summary(res_full)
            pair = paired_values(res_incr, res_full, metric="ndcg@10")
            row["incr_vs_full"] = paired_change(pair["a"].to_numpy(), pair["b"].to_numpy()).as_dict(digits=4)
            pooled.append(pair)
            row["popular"] = popular(tables)
        rows.append(row)
        log.info("retrain-demo %s %s: %s", name, row["step"], row.get("gate_reason"))
    out_d: dict[str, Any] = {"dataset": name, "root": str(root), "rows": rows}
    if pooled:  # every week's test users (a user in two weeks counts twice: two predictions)
        both = pl.concat(pooled)
        change = paired_change(both["a"].to_numpy(), both["b"].to_numpy())
        out_d["pooled_incr_vs_full"] = {**change.as_dict(digits=4),
                                        "ndcg@10_incremental": round(float(both["a"].mean()), 4),
                                        "ndcg@10_full": round(float(both["b"].mean()), 4),
                                        "weeks": len(pooled)}
    return out_d


def _f(m: dict[str, float] | None, key: str) -> str:
    return "—" if not m else f"{m.get(key, 0.0):.4f}"


def _ci(c: dict[str, float] | None) -> str:
    return "—" if not c else f"{c['relative']:+.0%} [{c['low']:+.0%}, {c['high']:+.0%}]"


def _work(w: dict[str, Any] | None) -> str:
    if not w or w.get("examples_per_epoch") is None:
        return "—"
    return f"{w['epochs']} × {w['examples_per_epoch']:,} ({w['train_seconds']:.0f})"


def _drift(d: dict[str, Any] | None) -> str:
    """Drift vs the published version: top-10 changed, overlap, coverage publ → incr, warnings."""
    if not d or not d.get("users"):
        return "—"
    warn = f", **{len(d['warnings'])} warning(s)**" if d.get("warnings") else ""
    return (f"{d['changed_share']:.0%} · {d['overlap']:.0%} · {d['published']['coverage']:.0%} → "
            f"{d['candidate']['coverage']:.0%}{warn}")


def render(results: list[dict[str, Any]], *, seconds: float) -> str:
    lines = ["# Retrain demo", "", f"Total {seconds:.0f}s. Metrics on each candidate's test window (newest days of "
             "the new week; full ranking, history excluded). `publ` = the published model re-applied to this "
             "week's histories without training (the gate's baseline); `served` = its vectors as served before "
             "the week. Changes are relative NDCG@10 with a 95 % paired-bootstrap interval over the test users. "
             "`drift` (vs the published version as served, the gate record's `drift`): share of users whose top-10 "
             "changed · mean top-10 overlap · catalogue coverage publ → incr.", ""]
    for r in results:
        lines += [f"## {r['dataset']} (root `{r['root']}`)", "",
                  "| step | logs | test users | NDCG@10 incr / publ / served / full / pop | Recall@10 incr / publ / full "
                  "| incr vs full | incr vs publ | gate | current | s data→student incr / full "
                  "| student epochs × examples (s) incr / full | s incr total | drift |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for x in r["rows"]:
            nd = " / ".join(_f(x.get(s), "ndcg@10") for s in
                            ("incremental", "published", "published_as_served", "full", "popular"))
            rc = " / ".join(_f(x.get(s), "recall@10") for s in ("incremental", "published", "full"))
            gate = "pass" if x["gate_passed"] else "REFUSED"
            work = " / ".join(_work(x.get(s)) for s in ("student_incremental", "student_full"))
            users = int((x.get("incremental") or {}).get("users", 0))
            lines.append(f"| {x['step']} | {x['logs']} | {users} | {nd} | {rc} | {_ci(x.get('incr_vs_full'))} | "
                         f"{_ci(x.get('incr_vs_published'))} | {gate} | {x['current_before']} → "
                         f"{x['current_after']} | {x.get('seconds_incremental_model', '—')} / "
                         f"{x.get('seconds_full', '—')} | {work} | {x['seconds_incremental']} | "
                         f"{_drift(x.get('drift'))} |")
        p = r.get("pooled_incr_vs_full")
        if p:
            lines += ["", f"All {p['weeks']} weeks pooled ({p['users']} test users): NDCG@10 incremental "
                          f"{p['ndcg@10_incremental']:.4f} vs full retrain {p['ndcg@10_full']:.4f}, change {_ci(p)}."]
        lines.append("")
    return "\n".join(lines) + "\n"


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="applied to every retrain")
    ap.add_argument("-o", "--out", type=Path, default=Path("runs/retrain_demo"))
    ap.add_argument("--increments", type=int, default=4, help="weekly retrains per dataset (default 4)")
    ap.add_argument("--datasets", default="uci,beauty", help="comma-separated: uci, beauty")
    ap.add_argument("--base-months", type=int, default=2, help="UCI: months in the first version (default 2)")
    ap.add_argument("--beauty-since", default="2014-01-01", help="Beauty: events from this day on (default 2014)")
    ap.add_argument("-q", "--quiet", action="store_true")


def main(argv: list[str] | None = None) -> int:
    return command_main(argv, prog="recsys retrain-demo", doc=__doc__, add=add_arguments, run=run)


def run(args: argparse.Namespace) -> int:
    setup_logging(quiet=args.quiet)
    quiet_third_party()
    t0 = time.perf_counter()
    names = [d.strip() for d in args.datasets.split(",") if d.strip()]
    results = [run_dataset(d, out=args.out, increments=args.increments, base_months=args.base_months,
                           since=args.beauty_since, overrides=list(args.overrides)) for d in names]
    seconds = time.perf_counter() - t0
    text = render(results, seconds=seconds)
    paths = RP.write_demo_report(directory=args.out, result={"seconds": round(seconds, 1), "datasets": results},
                                 text=text)
    print(text)
    print(f"-> {', '.join(str(p) for p in paths)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
