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
