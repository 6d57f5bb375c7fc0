"""The drift record a retrain writes beside the gate's decision, and the optional refusal on drift."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from pipeline_helpers import copy_root

from recsys.publish import store


def test_a_retrain_records_drift_against_the_published_version(incremented_root: Path) -> None:
    gate = json.loads((incremented_root / "versions" / "0002" / "gate.json").read_text())
    d = gate["drift"]
    assert d["users"] > 0 and d["k"] == 10 and d["users"] + d["users_without_published_vector"] >= d["users"]
    assert 0.0 <= d["changed_share"] <= 1.0 and 0.0 <= d["overlap"] <= 1.0 and 0.0 <= d["score_ks"] <= 1.0
    for side in ("candidate", "published"):
        s = d[side]
        assert 0.0 < s["coverage"] <= 1.0 and s["mean_log_popularity"] > 0 and 0.0 <= s["cold_share"] <= 1.0
    assert isinstance(d["warnings"], list)
    # the overlap is that of two real, different models: neither identical nor disjoint lists on average
    assert 0.0 < d["overlap"] < 1.0


def test_drift_thresholds_warn_and_refuse_when_asked(shop: dict, published_root: Path, tmp_path: Path,
                                                     capsys) -> None:
    from pipelines.retrain import REFUSED, main

    root = copy_root(published_root, tmp_path / "root")
    rc = main(["-q", "-o", str(root), f"logs={shop['batches'][0]}", *shop["overrides"],
               "gate.drift.max_changed_share=0.0", "gate.drift.refuse=true"])
    out = capsys.readouterr().out
    assert rc == REFUSED and "refused on drift" in out and "drift vs published 0001" in out
    gate = json.loads((root / "rejected" / "0002" / "gate.json").read_text())
    assert gate["passed"] is False and any("drift.max_changed_share" in w for w in gate["drift"]["warnings"])
    assert store.current_name(root) == "0001"
    assert np.isfinite(gate["drift"]["score_ks"])
