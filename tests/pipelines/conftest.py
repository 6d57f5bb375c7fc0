"""Session fixtures: tiny synthetic shop logs and a root with version 0001 published from them."""

from __future__ import annotations

from pathlib import Path

import pytest
from pipeline_helpers import tiny_overrides, write_shop_logs


@pytest.fixture(scope="session")
def shop(tmp_path_factory: pytest.TempPathFactory) -> dict:
    d = tmp_path_factory.mktemp("shop")
    base, batches, items = write_shop_logs(d / "logs")
    return {"base": base, "batches": batches, "items": items,
            "overrides": tiny_overrides(d / "logs", d / "teacher_cache", rerank=False)}


@pytest.fixture(scope="session")
def published_root(shop: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Version 0001 built from the base log (teacher, student, gate, index), published."""
    from pipelines.retrain import main

    root = tmp_path_factory.mktemp("published") / "root"
    assert main(["-q", "-o", str(root), f"logs={shop['base']}", *shop["overrides"]]) == 0
    return root


@pytest.fixture(scope="session")
def incremented_root(shop: dict, published_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of ``published_root`` after one uninterrupted retrain on the first new batch (-> 0002)."""
    from pipeline_helpers import copy_root, single_thread

    from pipelines.retrain import main

    single_thread()
    root = copy_root(published_root, tmp_path_factory.mktemp("incremented") / "root")
    assert main(["-q", "-o", str(root), f"logs={shop['batches'][0]}", *shop["overrides"]]) == 0
    return root
