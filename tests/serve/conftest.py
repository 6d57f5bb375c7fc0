"""A tiny published root (two real versions built by `recsys retrain`) and a service on 127.0.0.1."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pipelines"))

@pytest.fixture(scope="session")
def roots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``one``: version 0001 published (with ranker); ``two``: a copy retrained on the next batch -> 0002."""
    from pipeline_helpers import copy_root, tiny_overrides, write_shop_logs

    from pipelines.retrain import main

    d = tmp_path_factory.mktemp("serve")
    base, batches, _ = write_shop_logs(d / "logs")
    ov = tiny_overrides(d / "logs", d / "teacher_cache", rerank=True)
    assert main(["-q", "-o", str(d / "one"), f"logs={base}", *ov]) == 0
    copy_root(d / "one", d / "two")
    assert main(["-q", "--accept", "-o", str(d / "two"), f"logs={batches[0]}", *ov]) == 0
    return {"one": d / "one", "two": d / "two"}
