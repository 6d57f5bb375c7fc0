"""Retraining: appending logs (stable ids, quarantine, re-split), the gate, and `recsys retrain` end to end."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from pipeline_helpers import copy_root, tree_digest

from recsys.artifacts import RunDir
from recsys.data.config import DataConfig
from recsys.data.schema import INTERACTIONS, ITEMS, Loaded, conform
from recsys.data.stage import run as run_data
from recsys.publish import store
from recsys.publish.config import GateConfig
from recsys.publish.gate import Vectors, align_rows, decide, evaluate_vectors

DAY = 86_400


def _loaded(rows: list[tuple[str, str, int]], items: list[tuple[str, str]] | None = None) -> Loaded:
    inter = pl.DataFrame([(u, i, t, "purchase", 1.0, None, "new.csv", r + 1) for r, (u, i, t) in enumerate(rows)],
                         schema=list(INTERACTIONS), orient="row")
    cat = None if items is None else conform(pl.DataFrame(items, schema=["item_id", "title"], orient="row"), ITEMS)
    q = pl.DataFrame(schema={"source_file": pl.String, "row": pl.Int64, "column": pl.String, "reason": pl.String,
                             "raw": pl.String})
    return Loaded(interactions=conform(inter, INTERACTIONS), items=cat, quarantine=q, n_read=len(rows), source="t")


@pytest.fixture()
def base(tmp_path: Path) -> RunDir:
    rd = RunDir(tmp_path / "base")
    run_data(DataConfig(source="synthetic", synthetic_users=30, synthetic_items=20, kcore=0), rd)
    return rd


def test_append_keeps_ids_gives_new_users_and_items_the_next_ids_and_counts_every_row(base: RunDir) -> None:
    from recsys.data.append import append

    old_items, old_users = pl.read_parquet(base.layout.items), pl.read_parquet(base.layout.users)
    old = pl.read_parquet(base.layout.interactions)
    t = int(old["timestamp"].max()) + DAY
    first = old.join(old_users, on="user").join(old_items, on="item").row(0, named=True)
    rows = [("u0", "i3", t), ("zz_new_user", "i1", t + 1), ("u1", "brand_new_item", t + 2),
            ("u1", "brand_new_item", t + 2),  # exact repeat inside the batch
            (first["user_id"], first["item_id"], first["timestamp"])]  # repeat of a published event
    a = append(base=base.layout, loaded=_loaded(rows, items=[("i3", "a new title for i3"), ("brand_new_item", "x")]),
               kcore_k=0, require_catalogue=False)
    assert a.counts["read"] == a.counts["kept"] + a.counts["quarantined"] == 5
    assert a.counts["kept"] == 3 and sorted(a.quarantine["reason"].to_list()) == [
        "duplicate event (same user, item, time, event)", "repeat of an event already in the published tables"]
    # stable ids: the published rows are unchanged prefixes of the new maps
    assert a.users.head(old_users.height)["user_id"].to_list() == old_users["user_id"].to_list()
    assert a.items.head(old_items.height)["item_id"].to_list() == old_items["item_id"].to_list()
    assert a.users.tail(1).to_dicts() == [{"user": old_users.height, "user_id": "zz_new_user"}]
    assert a.items.tail(1)["item"].item() == old_items.height and a.counts["new_items"] == 1
    assert a.counts["edited_items"] == 1
    assert a.items.filter(pl.col("item_id") == "i3")["title"].item() == "a new title for i3"
    # published events keep their positions; new ones come after
    merged = a.interactions.join(old.select("user", "item", "timestamp", pl.col("pos").alias("old_pos")),
                                 on=["user", "item", "timestamp"])
    assert (merged["pos"] == merged["old_pos"]).all() and a.interactions.height == old.height + 3
    assert a.interactions.group_by("user").agg(ok=(pl.col("pos").sort() == pl.int_range(pl.len())).all())["ok"].all()


def test_catalogue_text_from_log_lines_only_fills_gaps_but_a_catalogue_file_rewrites_it() -> None:
    from recsys.data.append import merge_catalogue

    old = conform(pl.DataFrame({"item_id": ["a", "b"], "title": ["old a", None]}), ITEMS).with_row_index("item")
    old = old.with_columns(pl.col("item").cast(pl.Int32))
    new = pl.DataFrame({"item_id": ["a", "b", "c"], "title": ["new a", "new b", "new c"]})
    kept, n_kept = merge_catalogue(old, new, overwrite=False)
    assert kept["title"].to_list() == ["old a", "new b", "new c"] and n_kept == 1
    assert kept["item"].to_list() == [0, 1, None]  # the new item gets its id later
    rewritten, n_rewritten = merge_catalogue(old, new, overwrite=True)
    assert rewritten["title"].to_list() == ["new a", "new b", "new c"] and n_rewritten == 2


def test_append_kcore_counts_published_plus_new_events(base: RunDir) -> None:
    from recsys.data.append import append

    t = int(pl.read_parquet(base.layout.interactions)["timestamp"].max()) + DAY
    rows = [("u0", "i1", t), ("u0", "i2", t + 1), ("lonely", "i1", t + 2)]  # "lonely" has 1 event < k=2
    a = append(base=base.layout, loaded=_loaded(rows), kcore_k=2, require_catalogue=False)
    assert a.counts["kept"] + a.counts["quarantined"] == 3
    assert a.quarantine["reason"].to_list() == ["filtered by 2-core (user or item has < 2 events)"]


def test_append_stage_resplits_so_the_newest_days_are_the_test_window(base: RunDir, tmp_path: Path) -> None:
    from recsys.data import append

    old = pl.read_parquet(base.layout.interactions)
    users = pl.read_parquet(base.layout.users)["user_id"].to_list()
    t = int(old["timestamp"].max()) + 10 * DAY
    logs = tmp_path / "new.csv"
    pl.DataFrame({"user_id": users[:10], "item_id": ["i5"] * 10, "timestamp": [t] * 10}).write_csv(logs)
    cfg = DataConfig(source="table", split="temporal", valid_days=2, test_days=2, kcore=0)
    rd = RunDir(tmp_path / "cand")
    counts = append.run(cfg, rd, base=base, logs=str(logs))
    assert counts["read"] == 10 and counts["test"] > 0
    test = pl.read_parquet(rd.layout.split("test"))
    i5 = pl.read_parquet(rd.layout.items).filter(pl.col("item_id") == "i5")["item"].item()
    assert (test["timestamp"] == t).all() and (test["item"] == i5).all()
    assert rd.stage_record("data")["key"] == append.input_key(cfg, base=base, logs=str(logs))
    assert append.run(cfg, rd, base=base, logs=str(logs)) == counts  # unchanged inputs: skipped


def test_gate_relative_and_absolute_tolerance() -> None:
    pub = {"ndcg@10": 0.100, "users": 50.0}
    assert decide(GateConfig(tolerance=0.02, decision="point"), candidate={"ndcg@10": 0.0981, "users": 50.0}, published=pub).passed
    d = decide(GateConfig(tolerance=0.02, decision="point"), candidate={"ndcg@10": 0.0979, "users": 50.0}, published=pub)
    assert not d.passed and d.threshold == pytest.approx(0.098) and "<" in d.reason
    assert decide(GateConfig(tolerance=0.0, abs_tolerance=0.01, decision="point"), candidate={"ndcg@10": 0.091, "users": 50.0},
                  published=pub).passed
    assert decide(GateConfig(), candidate={"ndcg@10": 0.0, "users": 5.0}, published=None).passed  # first version
    assert not decide(GateConfig(min_users=10, decision="point"), candidate={"ndcg@10": 1.0, "users": 5.0}, published=pub).passed


def test_gate_bootstrap_refuses_only_a_confident_regression_and_records_the_interval() -> None:
    pub = {"ndcg@10": 0.100, "users": 30.0}
    cand = {"ndcg@10": 0.080, "users": 30.0}  # -20 %: a point gate refuses
    cfg = GateConfig(tolerance=0.02, decision="bootstrap")
    noisy = {"relative": -0.2, "low": -0.5, "high": 0.15, "confidence": 0.95, "users": 30}
    d = decide(cfg, candidate=cand, published=pub, change=noisy, baseline="refreshed")
    assert d.passed and "not confidently below -2%" in d.reason and d.change == noisy and d.baseline == "refreshed"
    sure = {**noisy, "low": -0.3, "high": -0.1}
    assert not decide(cfg, candidate=cand, published=pub, change=sure).passed
    assert not decide(GateConfig(tolerance=0.02, decision="point"), candidate=cand, published=pub,
                      change=noisy).passed
    with pytest.raises(ValueError, match="bootstrap"):
        decide(cfg, candidate=cand, published=pub)
    # a collapse the window is too small to make confident is refused by the point guard (gate.max_drop = 0.5)
    broken = {"ndcg@10": 0.029, "users": 30.0}
    wide = {"relative": -0.71, "low": -1.0, "high": -0.019, "confidence": 0.95, "users": 30}
    d = decide(cfg, candidate=broken, published=pub, change=wide)
    assert not d.passed and "not confidently below -2%" in d.reason and "gate.max_drop=50%" in d.reason
    assert decide(GateConfig(max_drop=1.0), candidate=broken, published=pub, change=wide).passed  # guard off
    assert decide(cfg, candidate={"ndcg@10": 0.051, "users": 30.0}, published=pub, change=wide).passed  # -49 %


def test_gate_aligns_by_raw_ids_and_never_recommends_items_the_model_does_not_know() -> None:
    vec = np.arange(6, dtype=np.float32).reshape(3, 2)
    out, found = align_rows(vec, src_ids=pl.Series(["a", "b", "c"]), dst_ids=pl.Series(["c", "x", "a"]))
    assert found.tolist() == [True, False, True] and out.tolist() == [[4, 5], [0, 0], [0, 1]]

    from recsys.data.tables import Tables

    items = pl.DataFrame({"item": [0, 1, 2], "item_id": ["a", "b", "c"]})
    users = pl.DataFrame({"user": [0], "user_id": ["u"]})
    hist = pl.DataFrame({"user": [0], "item": [0], "timestamp": [0], "pos": [0]},
                        schema={"user": pl.Int32, "item": pl.Int32, "timestamp": pl.Int64, "pos": pl.Int32})
    test = hist.with_columns(pl.lit(2, pl.Int32).alias("item"), pl.lit(1, pl.Int32).alias("pos"))
    tables = Tables(items=items, users=users, train=hist, valid=hist.clear(), test=test)
    u = np.array([[1.0]], np.float32)
    it = np.array([[0.0], [0.5], [1.0]], np.float32)
    assert evaluate_vectors(Vectors(u, it, np.array([True, True, True])), tables=tables)["ndcg@10"] == 1.0
    assert evaluate_vectors(Vectors(u, it, np.array([True, True, False])), tables=tables)["ndcg@10"] == 0.0


def test_gate_refuses_a_worse_candidate_and_current_stays(shop: dict, published_root: Path, tmp_path: Path,
                                                          capsys) -> None:
    from pipelines.retrain import REFUSED, main

    root = copy_root(published_root, tmp_path / "root")
    before = tree_digest(root / "versions" / "0001")
    rc = main(["-q", "-o", str(root), f"logs={shop['batches'][0]}", *shop["overrides"], "student.epochs=0",
               "student.dim=8"])  # untrained: a new output size leaves the warm-started last layer fresh
    assert rc == REFUSED and "refused by the gate" in capsys.readouterr().out
    assert store.current_name(root) == "0001" and store.list_versions(root) == ["0001"]
    assert tree_digest(root / "versions" / "0001") == before
    gate = json.loads((root / "rejected" / "0002" / "gate.json").read_text())
    assert gate["passed"] is False and gate["candidate"]["ndcg@10"] < gate["published"]["ndcg@10"]
    assert gate["baseline"] == "refreshed" and gate["published_as_served"]["users"] == gate["candidate"]["users"]
    assert gate["change"]["low"] <= gate["change"]["relative"] <= gate["change"]["high"]
    assert store.load_current(root).root.name == "0001"
    # the published model re-applied to the candidate's tables: same weights, so the items it knew keep
    # their vectors (those with training events in both; the others have no id vector in one of them)
    pub_dir, ref_dir = root / "versions" / "0001" / "student" / "student_kd", \
        root / "rejected" / "0002" / "student" / "published_student_kd"
    old = np.load(pub_dir / "item_vectors.npy")
    new = np.load(ref_dir / "item_vectors.npy")[:len(old)]
    # with teacher carry the vectors are [sqrt(a) t, sqrt(1 - a) r]: t is the candidate's re-fitted teacher, so
    # only the student's own part r (the last student.dim columns) is the published model's
    d = json.loads((pub_dir / "meta.json").read_text())["config"]["dim"]
    assert np.isclose(old[:, -d:], new[:, -d:], atol=1e-5).all(1).mean() > 0.8

    # the refused batch's events are not lost: the next retrain appends to the refused candidate's tables
    # 5 test users: the bootstrap gate (refuse only a confident regression) is the one for such windows
    assert main(["-q", "-o", str(root), f"logs={shop['batches'][1]}", *shop["overrides"], "gate.decision=bootstrap"]) == 0
    m = store.load_current(root).manifest()
    assert store.current_name(root) == "0003" and m["retrain"]["carried"] == ["0002"]
    refused_rows = pl.read_parquet(shop["batches"][0]).height
    counts = [store.read_manifest(d)["stages"]["data"]["counts"] for d in
              (root / "rejected" / "0002", root / "versions" / "0003")]
    kept_0002 = counts[0]["kept"]
    assert 0 < kept_0002 <= refused_rows
    assert counts[1]["events"] == counts[0]["events"] + counts[1]["kept"]  # 0001 + refused batch + this batch


def test_retrain_publishes_a_better_or_equal_candidate_then_a_rerun_does_nothing(shop: dict, incremented_root: Path,
                                                                                 tmp_path: Path, capsys) -> None:
    from pipelines.retrain import main

    assert store.current_name(incremented_root) == "0002"
    m = store.load_current(incremented_root).manifest()
    assert m["publish"]["parent"] == "0001" and m["publish"]["gate"]["passed"] is True
    assert m["retrain"]["warm_start"] is True and "student_training" in m["retrain"]
    ex = m["retrain"]["examples"]  # new window + replay sample of the older examples
    assert ex["window"] > 0 and ex["window"] + ex["older"] == ex["all"]
    assert ex["replay_per_epoch"] == round(0.5 * ex["older"])
    assert ex["train_since"] == m["retrain"]["train_since"]
    counts = m["stages"]["data"]["counts"]
    assert counts["read"] == counts["kept"] + counts["quarantined"] and counts["kept"] > 0
    adapter = m["stages"]["teacher"]["stats"]["adapter"]  # the published version's adapter applied, not refitted
    assert adapter["reused_from"] and Path(adapter["reused_from"]).name == "0001" and adapter["epochs"] == []
    root = copy_root(incremented_root, tmp_path / "root")
    events = store.events(root)
    capsys.readouterr()
    assert main(["-q", "-o", str(root), f"logs={shop['batches'][0]}", *shop["overrides"]]) == 0
    assert "up to date" in capsys.readouterr().out
    assert store.events(root) == events and store.list_versions(root) == ["0001", "0002"]
    assert not list((root / "work").iterdir())


def test_incremental_teacher_config_applies_the_published_adapter_unless_told_to_refit(tmp_path: Path) -> None:
    from pipelines.retrain import RetrainConfig, teacher_config
    from recsys.contracts import teacher as T
    from recsys.teacher.config import TeacherConfig

    parent = RunDir(tmp_path / "0001")
    cfg = RetrainConfig(teacher=TeacherConfig(adapter_epochs=2))
    assert teacher_config(cfg, None) == cfg.teacher  # the first version fits its own
    assert teacher_config(cfg, parent) == cfg.teacher  # a published version without an adapter: fit one
    out = T.write_adapter(layout=parent.layout, state={"net.weight": np.eye(2, dtype=np.float32)}, kind="linear")
    parent.record("teacher", key="k", config={}, outputs=[out], seconds=0.0)
    assert teacher_config(cfg, parent).adapter_from == str(parent.root)
    assert teacher_config(dataclasses.replace(cfg, refit_adapter=True), parent) == cfg.teacher
    off = dataclasses.replace(cfg, teacher=TeacherConfig(adapter_epochs=0))
    assert teacher_config(off, parent) == off.teacher  # no adapter at all: nothing to apply


def test_incremental_student_config_trains_on_what_the_published_student_never_saw(tmp_path: Path) -> None:
    from pipelines.retrain import RetrainConfig, student_config
    from recsys.data import stage as data_stage
    from recsys.data.config import DataConfig
    from recsys.data.tables import load_tables
    from recsys.student.config import StudentConfig

    parent = RunDir(tmp_path / "0001")
    data_stage.run(DataConfig(source="synthetic", synthetic_users=20, synthetic_items=10), parent)
    newest = int(load_tables(parent.layout).train["timestamp"].max())
    cfg = RetrainConfig(student=StudentConfig(epochs=5), replay_fraction=0.3, incremental_epochs=2)
    assert student_config(cfg, None) == (cfg.student, False)  # first version: everything, from scratch
    inc, warm = student_config(cfg, parent)
    assert warm and inc.train_since == newest + 1 and inc.replay_fraction == 0.3 and inc.epochs == 2
    assert inc.init_from == str(parent.root / "student" / "student_kd")
    assert student_config(dataclasses.replace(cfg, incremental_epochs=0), parent)[0].epochs == 5
    assert student_config(dataclasses.replace(cfg, student=StudentConfig(epochs=1)), parent)[0].epochs == 1


def test_retrain_help_is_instant_and_names_the_steps(capsys) -> None:
    from pipelines.retrain import main

    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0 and "gate" in capsys.readouterr().out


@pytest.mark.slow
def test_retrain_with_the_ranker_publishes_every_stage_and_rollback_restores_the_first(shop: dict,
                                                                                      tmp_path: Path) -> None:
    from pipelines.retrain import RetrainConfig, main, required_stages, rollback_main

    root = tmp_path / "root"
    ov = [o for o in shop["overrides"] if not o.startswith("rerank=")] + ["rerank=true"]
    assert main(["-q", "-o", str(root), f"logs={shop['base']}", *ov]) == 0
    assert main(["-q", "-o", str(root), f"logs={shop['batches'][0]}", *ov]) == 0
    required = required_stages(RetrainConfig(rerank=True))
    assert "rank" in required and store.load_current(root, required=required).root.name == "0002"
    assert (root / "current" / "rank" / "reranked_test.parquet").exists()
    assert rollback_main(["-o", str(root)]) == 0 and store.load_current(root, required=required).root.name == "0001"


@pytest.mark.parametrize("path", sorted(Path(__file__).parents[2].joinpath("pipelines", "configs").glob("retrain_*.toml")),
                         ids=lambda p: p.name)
def test_every_retrain_config_loads_with_a_temporal_split(path: Path) -> None:
    from pipelines.retrain import RetrainConfig
    from recsys.config import load

    cfg = load(RetrainConfig, path=path)
    assert cfg.data.split == "temporal" and cfg.student.lambda_emb > 0 and cfg.publish.keep >= 2


def test_retrain_demo_report_gives_each_change_with_its_interval_and_pools_the_weeks() -> None:
    from pipelines.retrain_demo import render

    row = {"step": "week 1", "logs": "2011-02-01..2011-02-07 (6,746 rows)", "outcome": "published",
           "current_before": "0001", "current_after": "0002", "seconds_incremental": 40.0,
           "gate_passed": True, "incremental": {"ndcg@10": 0.055, "recall@10": 0.03, "users": 28.0},
           "published": {"ndcg@10": 0.05, "recall@10": 0.02}, "full": {"ndcg@10": 0.06, "recall@10": 0.03},
           "incr_vs_full": {"relative": -0.0833, "low": -0.41, "high": 0.3, "users": 28},
           "incr_vs_published": {"relative": 0.1, "low": -0.2, "high": 0.5, "users": 28},
           "drift": {"users": 28, "changed_share": 0.75, "overlap": 0.42, "warnings": ["coverage fell"],
                     "published": {"coverage": 0.3}, "candidate": {"coverage": 0.12}}}
    pooled = {"relative": -0.02, "low": -0.1, "high": 0.07, "users": 120, "ndcg@10_incremental": 0.061,
              "ndcg@10_full": 0.0622, "weeks": 4}
    text = render([{"dataset": "uci", "root": "/r", "rows": [row], "pooled_incr_vs_full": pooled}], seconds=1.0)
    line = next(ln for ln in text.splitlines() if ln.startswith("| week 1"))
    assert "| 28 |" in line and "-8% [-41%, +30%]" in line and "+10% [-20%, +50%]" in line
    assert "0.0550 / 0.0500 / — / 0.0600 / —" in line  # incr / publ / served (absent) / full / pop (absent)
    assert line.endswith("| 75% · 42% · 30% → 12%, **1 warning(s)** |")  # drift vs the published version
    assert "All 4 weeks pooled (120 test users)" in text and "-2% [-10%, +7%]" in text
