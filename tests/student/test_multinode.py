"""Multi-node as a command: two torchrun agents (2 nodes x 1 process) joined by a c10d rendezvous on
127.0.0.1 train the same student as one node with 2 processes; the flags are checked before anything runs."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

pytest.importorskip("torchrec")

from recsys.artifacts import RunDir  # noqa: E402
from recsys.config import ConfigError  # noqa: E402
from recsys.student.config import StudentConfig  # noqa: E402
from recsys.student.launch import torchrun_command  # noqa: E402
from recsys.student.stage import run  # noqa: E402
from recsys.torchrun import Rendezvous  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TINY = {"dim": 16, "item_id_dim": 16, "brand_dim": 8, "category_dim": 8, "mlp": (32,), "batch_size": 64,
        "epochs": 2, "patience": 5, "rank_users_per_step": 16, "rank_k": 10, "eval_batch_size": 256,
        "sharding": "column_wise"}
OVERRIDES = ["dim=16", "item_id_dim=16", "brand_dim=8", "category_dim=8", "mlp=32", "batch_size=64", "epochs=2",
             "patience=5", "rank_users_per_step=16", "rank_k=10", "eval_batch_size=256", "sharding=column_wise"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _copy_run(src: RunDir, dst: Path) -> RunDir:
    shutil.copytree(src.root, dst, ignore=shutil.ignore_patterns("student"))
    return RunDir(dst)


def test_two_nodes_of_one_process_match_one_node_of_two(tiny_run: RunDir, tmp_path: Path) -> None:
    one_node = _copy_run(tiny_run, tmp_path / "one_node")
    rec1 = run(StudentConfig(nproc=2, **TINY), one_node, variant="student_kd")

    two_nodes = _copy_run(tiny_run, tmp_path / "two_nodes")
    port, job = _free_port(), f"recsys-test-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo"}
    procs = []
    for node in (0, 1):
        log = open(tmp_path / f"node{node}.log", "w")
        cmd = [sys.executable, "-m", "pipelines.student", "-o", str(two_nodes.root), "--nproc", "1", "--nnodes", "2",
               "--node-rank", str(node), "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", job, *OVERRIDES]
        procs.append((subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT), log))
    for p, log in procs:
        try:
            rc = p.wait(timeout=600)
        finally:
            if p.poll() is None:
                p.kill()
            log.close()
        assert rc == 0, Path(log.name).read_text()[-4000:]

    rec2 = json.loads(two_nodes.layout.manifest.read_text())["stages"]["student/student_kd"]
    assert rec2["world_size"] == 2 and rec2["plan"]["world_size"] == 2  # one job of 2, not two jobs of 1
    assert rec2["key"] == rec1["key"]  # every node computed the same stage key from the shared files
    for split in ("valid", "test"):
        for m in ("ndcg@10", "recall@10"):
            assert rec2[split][m] == pytest.approx(rec1[split][m], abs=0.02), (split, m, rec1[split], rec2[split])
    # rank 0 of the two-node job recorded the stage once; the node-0 command's summary printed it
    assert "student_kd" in (tmp_path / "node0.log").read_text()


def test_rendezvous_flags_are_checked_before_launch() -> None:
    assert Rendezvous().torchrun_args(nproc=2) == ["--standalone", "--nproc_per_node=2"]
    r = Rendezvous(nnodes="2:4", endpoint="host0:29500", rdzv_id="job1")
    assert r.multi_node and r.max_nodes == 4
    assert r.torchrun_args(nproc=8) == ["--nnodes=2:4", "--nproc_per_node=8", "--rdzv-backend=c10d",
                                        "--rdzv-endpoint=host0:29500", "--rdzv-id=job1"]
    cmd = torchrun_command(jobs=[("student_kd", StudentConfig(nproc=8), "k")], run_dir=Path("/shared/run"),
                           rdzv=Rendezvous(nnodes="4", node_rank=3, endpoint="h:1", rdzv_id="j"))
    assert "--node-rank=3" in cmd and "--standalone" not in cmd and cmd[cmd.index("-m", 3) + 1] == "recsys.student.worker"
    with pytest.raises(ConfigError, match="--rdzv-endpoint"):
        Rendezvous(nnodes="2", rdzv_id="j")
    with pytest.raises(ConfigError, match="--rdzv-id"):
        Rendezvous(nnodes="2", endpoint="h:1")
    with pytest.raises(ConfigError, match="--nnodes"):
        Rendezvous(nnodes="4:2")
    with pytest.raises(ConfigError, match="--node-rank 2"):
        Rendezvous(nnodes="2", node_rank=2, endpoint="h:1", rdzv_id="j")


def test_cli_refuses_a_multinode_job_without_endpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pipelines.student import main

    assert main(["-o", str(tmp_path / "r"), "--nnodes", "2", "--rdzv-id", "j"]) == 2
    assert "--rdzv-endpoint" in capsys.readouterr().err
