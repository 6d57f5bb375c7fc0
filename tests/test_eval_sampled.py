"""The eval stage on a seeded sample of users: every row carries an interval on every metric, which covers
the all-users figure; user blocks change nothing."""

from __future__ import annotations

import json

import pytest

from recsys.artifacts import RunDir
from recsys.data import stage as data_stage
from recsys.data.config import DataConfig
from recsys.eval import stage as eval_stage
from recsys.eval.config import EvalConfig
from stand_ins import write_stand_in_run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> RunDir:
    rd = RunDir(tmp_path_factory.mktemp("run"))
    data_stage.run(DataConfig(source="synthetic", synthetic_users=1500, synthetic_items=120), rd)
    write_stand_in_run(rd.root)
    return rd


def test_sampled_rows_have_intervals_that_cover_the_full_figure(run_dir: RunDir) -> None:
    full = {r["model"]: r for r in eval_stage.run(EvalConfig(plots=False, overlap_users=0), run_dir)["rows"]}
    blocked = eval_stage.run(EvalConfig(plots=False, overlap_users=0, block_users=13), run_dir)["rows"]
    for r in blocked:
        assert r["ndcg@10"] == pytest.approx(full[r["model"]]["ndcg@10"], rel=1e-12) and "ci" not in r
    sampled = eval_stage.run(EvalConfig(plots=False, overlap_users=0, sample_users=400, sample_seed=3), run_dir)
    rows = sampled["rows"]
    assert {r["model"] for r in rows} == set(full) and len(rows) >= 3  # teacher rows and the student
    for r in rows:
        assert r["sampled_users"] == 400 and r["population"] == full[r["model"]]["users"] and r["users"] <= 400
        for metric in ("recall@10", "ndcg@10", "hr@10", "mrr@10", "recall@20", "ndcg@20"):
            lo, hi = r["ci"][metric]
            assert lo <= r[metric] <= hi and hi > lo
            assert lo <= full[r["model"]][metric] <= hi, (r["model"], metric, lo, full[r["model"]][metric], hi)
    on_disk = json.loads(run_dir.layout.metrics.read_text())
    assert on_disk["rows"][0]["ci"] == rows[0]["ci"]


def test_systems_evaluated_two_at_a_time_give_the_same_rows(run_dir: RunDir) -> None:
    """``eval.workers``: threads change the time, never a number, the row order or the slices."""
    def strip(m: dict) -> dict:
        return {**m, "rows": [{k: v for k, v in r.items() if k != "eval_seconds"} for r in m["rows"]]}

    def approx(x):  # polars' group_by sums per-slice means in any order: the last bit moves run to run
        if isinstance(x, dict):
            return {k: approx(v) for k, v in x.items()}
        if isinstance(x, list):
            return [approx(v) for v in x]
        return pytest.approx(x, rel=1e-12) if isinstance(x, float) else x

    one = strip(eval_stage.run(EvalConfig(plots=False, workers=1), run_dir))
    two = strip(eval_stage.run(EvalConfig(plots=False, workers=2), run_dir))
    assert [r["model"] for r in two["rows"]] == [r["model"] for r in one["rows"]] and len(one["rows"]) >= 3
    assert two == approx(one)
