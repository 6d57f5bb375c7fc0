"""One end-to-end run of the main job on tiny synthetic data with the real teacher, TorchRec, FAISS and
LightGBM; then a re-run that must skip every stage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipelines.evaluate import main

ROWS = {"most_popular", "als", "teacher_raw", "teacher_adapted", "student_no_kd", "student_kd_emb",
        "student_kd_rank", "student_kd", "student_kd_pruned", "student_kd_ann", "union_rerank"}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("e2e") / "run"
    cache = tmp_path_factory.mktemp("cache")
    args = ["-o", str(out), "-q", "data.source=synthetic", "data.synthetic_users=150", "data.synthetic_items=60",
            f"teacher.cache_dir={cache}", "teacher.adapter_epochs=2", "baselines.als_factors=8",
            "student.epochs=2", "student.batch_size=128", "eval.overlap_users=50"]
    assert main(args) == 0
    return out


def test_main_job_writes_every_row_and_report(run_dir: Path) -> None:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    names = {r["model"] for r in metrics["rows"]}
    assert ROWS <= names, ROWS - names
    for r in metrics["rows"]:
        for key in ("recall@10", "recall@20", "ndcg@10", "ndcg@20"):
            assert 0.0 <= r[key] <= 1.0
    # popularity is a weak but real signal on the synthetic shop (Zipf items): it must find something
    pop = next(r for r in metrics["rows"] if r["model"] == "most_popular")
    assert pop["recall@20"] > 0
    report = (run_dir / "report.md").read_text()
    assert "| student_kd |" in report and (run_dir / "report" / "recall_at_k.png").exists()
    assert metrics["served"] in names and f"Served: `{metrics['served']}`" in report  # the rank gate's choice
    tail = next(r for r in metrics["rows"] if r["model"] == "student_kd")["slices"]["popularity"]
    assert list(tail) == ["head", "torso", "tail", "cold"] and {"ndcg@10", "recall@10", "targets"} <= set(tail["tail"])
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert metrics["served"] != "student_kd_pruned" and "### Quality vs size" in report  # a report row, not served
    assert metrics["sizes"]["pruned"]["total"] < metrics["sizes"]["fp32"]["total"]
    for stage in ("data", "teacher", "baselines", "student/student_kd", "prune/student_kd", "index", "rank"):
        assert stage in manifest["stages"], stage
    counts = manifest["stages"]["data"]["counts"]
    assert counts["read"] == counts["kept"] + counts["quarantined"]
    # student_kd on student.nproc (2) processes, sharded; the ablation twins on 1 process each (ablation_nproc 1),
    # in parallel lanes (one per core) that recorded their variants into one manifest
    worlds = {v: manifest["stages"][f"student/{v}"]["world_size"] for v in ROWS if v.startswith("student_")
              and f"student/{v}" in manifest["stages"]}
    assert worlds == {"student_kd": 2, "student_no_kd": 1, "student_kd_emb": 1, "student_kd_rank": 1}
    # every stage's CPU seconds (this process and its finished workers) beside its wall seconds
    assert set(manifest["cpu_seconds"]) == set(manifest["timings"]) >= {"teacher", "students", "rank", "evaluate"}
    assert manifest["cpu_seconds"]["students"] > 0 and manifest["cpu_seconds_total"] >= manifest["cpu_seconds"]["rank"]


def test_rerun_skips_every_stage(run_dir: Path) -> None:
    before = json.loads((run_dir / "manifest.json").read_text())["stages"]
    cache = json.loads((run_dir / "manifest.json").read_text())["config"]["teacher"]["cache_dir"]
    args = ["-o", str(run_dir), "-q", "data.source=synthetic", "data.synthetic_users=150", "data.synthetic_items=60",
            f"teacher.cache_dir={cache}", "teacher.adapter_epochs=2", "baselines.als_factors=8",
            "student.epochs=2", "student.batch_size=128", "eval.overlap_users=50"]
    assert main(args) == 0
    after = json.loads((run_dir / "manifest.json").read_text())["stages"]
    for stage, rec in before.items():
        assert after[stage]["finished_at"] == rec["finished_at"], f"{stage} re-ran"
