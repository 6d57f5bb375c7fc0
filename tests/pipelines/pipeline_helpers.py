"""Helpers for the publish/retrain tests: tiny fake versions (a couple of recorded files, no models)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from recsys.artifacts import RunDir, file_sha256, write_json, write_npy
from recsys.publish import store


def fake_candidate(root: Path, *, value: int) -> RunDir:
    """A work dir with two recorded artifacts, as a finished retrain leaves it."""
    work = store.new_work(root)
    a = write_json(work.root / "student" / "student_kd" / "meta.json", {"value": value})
    b = write_npy(work.root / "student" / "student_kd" / "item_vectors.npy", np.full((4, 3), value, np.float32))
    work.record("student/student_kd", key=f"k{value}", config={}, outputs=[a, b], seconds=0.0)
    return work


def publish_fake(root: Path, *, value: int, keep: int = 3) -> str:
    work = fake_candidate(root, value=value)
    with store.locked(root):
        store.publish(root, work, keep=keep)
    return work.root.name


def tree_digest(path: Path) -> dict[str, str]:
    """{relative path: sha256} of every file under ``path`` (to show a version is unchanged)."""
    return {str(p.relative_to(path)): file_sha256(p) for p in sorted(path.rglob("*")) if p.is_file()}


def run_until_paused(code: str, *, pause_at: str, tmp: Path, timeout: float = 120.0,
                     env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start ``python -c code`` with the pause hook armed at ``pause_at``; return once it sits there."""
    flag = tmp / f"paused-{pause_at.replace(':', '_')}"
    flag.unlink(missing_ok=True)
    full_env = {**os.environ, store.PAUSE_S_ENV: "600", **(env or {}), store.PAUSE_ENV: pause_at,
                store.PAUSE_FLAG_ENV: str(flag)}
    out = open(tmp / f"{flag.name}.log", "w")  # a file, not a pipe: a full pipe would block the child
    proc = subprocess.Popen([sys.executable, "-c", code], env=full_env, stdout=out, stderr=subprocess.STDOUT)
    t0 = time.time()
    while not flag.exists():
        if proc.poll() is not None:
            raise AssertionError(f"process ended (rc {proc.returncode}) before {pause_at}:\n"
                                 f"{Path(out.name).read_text()[-3000:]}")
        if time.time() - t0 > timeout:
            proc.kill()
            raise AssertionError(f"process never reached {pause_at}")
        time.sleep(0.05)
    return proc


def sigkill(proc: subprocess.Popen) -> None:
    proc.kill()  # SIGKILL: no cleanup handlers run
    proc.wait(timeout=30)
    assert proc.returncode == -9, proc.returncode


DAY = 86_400


def write_shop_logs(dest: Path, *, users: int = 80, items: int = 40, seed: int = 0,
                    cuts_days: tuple[float, ...] = (30.0, 36.0)) -> tuple[Path, list[Path], Path]:
    """Synthetic shop logs as table files: (base log, [batch logs...], catalogue), cut by time.

    ``cuts_days`` are offsets from the first event: base = before the first cut, batch i = up to cut i+1
    (the last batch takes everything after the last cut).
    """
    import polars as pl

    from recsys.data.synthetic import make_shop

    shop = make_shop(n_users=users, n_items=items, seed=seed)
    ev = shop.interactions.select("user_id", "item_id", "timestamp")
    t0 = int(ev["timestamp"].min())
    bounds = [t0 + int(c * DAY) for c in cuts_days]
    dest.mkdir(parents=True, exist_ok=True)
    parts = [ev.filter(pl.col("timestamp") < bounds[0])]
    for lo, hi in zip(bounds, bounds[1:] + [2**62]):
        parts.append(ev.filter((pl.col("timestamp") >= lo) & (pl.col("timestamp") < hi)))
    paths = []
    for i, part in enumerate(parts):
        paths.append(dest / f"log_{i}.parquet")
        part.write_parquet(paths[-1])
    assert shop.items is not None
    shop.items.write_parquet(dest / "items.parquet")
    return paths[0], paths[1:], dest / "items.parquet"


def tiny_overrides(logs_dir: Path, cache: Path, *, rerank: bool = True) -> list[str]:
    """key=value overrides that make every stage of `recsys retrain` take seconds on tiny data."""
    return [
        "data.source=table", "data.split=temporal", f"data.items_path={logs_dir / 'items.parquet'}", "data.kcore=0",
        "student.lambda_emb=0.5", "student.lambda_rank=0.5",
        "data.valid_days=3", "data.test_days=3",
        f"teacher.cache_dir={cache}", "teacher.adapter_epochs=1", "teacher.topk=20", "teacher.threads=1",
        "student.epochs=4", "student.patience=5", "student.batch_size=64", "student.dim=16", "student.item_id_dim=16",
        "student.brand_dim=4", "student.category_dim=4", "student.mlp=32", "student.rank_k=10",
        "student.rank_users_per_step=16", "student.n_uniform_negatives=16", "student.quantize_int8=false",
        "index.kind=flat", "index.k=20", "index.tune_queries=50", f"rerank={'true' if rerank else 'false'}",
        # every item of this 40-item shop has fewer events than carry_count_k (10), so the per-item carry would
        # score them almost by the teacher alone and an untrained candidate could not be told from a trained
        # one with 13 test users (the gate tests need the student's own part to matter)
        "student.carry_count_k=0",
    ]


def copy_root(src: Path, dst: Path) -> Path:
    """Copy a published root (the `current` symlink stays a relative link)."""
    import shutil

    shutil.copytree(src, dst, symlinks=True)
    return dst


def assert_same_model(a: Path, b: Path) -> None:
    """Two versions hold the same tables, embeddings, vectors, candidates and gate decision.

    Parquet/FAISS files are compared byte for byte; arrays by value (safetensors headers order their
    metadata differently from run to run, so their bytes are not comparable)."""
    import json

    from safetensors.numpy import load_file

    da, db = tree_digest(a), tree_digest(b)
    for rel in sorted(set(da) | set(db)):
        if rel.endswith((".parquet", ".faiss")):
            assert da.get(rel) == db.get(rel), rel
        elif rel.endswith(".npy") and "/ckpt/" not in rel:
            np.testing.assert_array_equal(np.load(a / rel), np.load(b / rel), err_msg=rel)
        elif rel.endswith(".safetensors"):
            x, y = load_file(a / rel), load_file(b / rel)
            assert sorted(x) == sorted(y), rel
            for k in x:
                np.testing.assert_array_equal(x[k], y[k], err_msg=f"{rel}:{k}")
    assert json.loads((a / "gate.json").read_text()) == json.loads((b / "gate.json").read_text())


SINGLE_THREAD = "import torch; torch.set_num_threads(1)\n"


def single_thread() -> None:
    """Float reductions depend on the thread count: runs compared bit for bit use one thread each."""
    import torch

    torch.set_num_threads(1)
