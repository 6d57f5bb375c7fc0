"""The student's training examples with a new window + replay (retraining) on a tiny synthetic run."""

from __future__ import annotations

import numpy as np
import polars as pl
import torchrec  # noqa: F401  (a broken install must fail the suite, never skip it)

from recsys.artifacts import RunDir
from recsys.student.config import StudentConfig
from recsys.student.dataset import load_data


def test_load_data_window_replay_and_log_q(tiny_run: RunDir) -> None:
    base = load_data(cfg=StudentConfig(), layout=tiny_run.layout, need_teacher=False)
    train = base.tables.train
    since = int(train["timestamp"].median())
    assert base.ex_window.tolist() == list(range(len(base.ex_users))) and base.ex_older.size == 0
    counts = np.bincount(base.train.items[base.ex_pos], minlength=base.tables.n_items) + 1.0
    np.testing.assert_array_equal(base.log_q, np.log(counts / counts.sum()).astype(np.float32))  # as before

    data = load_data(cfg=StudentConfig(train_since=since, replay_fraction=0.25), layout=tiny_run.layout,
                     need_teacher=False)
    # expected by hand: every train event but a user's first (pos 0) is a target; new = at/after `since`
    targets = train.filter(pl.col("pos") > 0)
    assert len(data.ex_window) == targets.filter(pl.col("timestamp") >= since).height > 0
    assert len(data.ex_older) == targets.filter(pl.col("timestamp") < since).height > 0
    ts = train.sort("user", "pos")["timestamp"].to_numpy()
    assert (ts[data.ex_pos[data.ex_window]] >= since).all() and (ts[data.ex_pos[data.ex_older]] < since).all()
    # logQ of what batches hold: window targets count 1, older ones round(0.25 * n_older) / n_older
    share = round(0.25 * len(data.ex_older)) / len(data.ex_older)
    items = data.train.items[data.ex_pos]
    want = (np.bincount(items[data.ex_window], minlength=data.tables.n_items)
            + share * np.bincount(items[data.ex_older], minlength=data.tables.n_items) + 1.0)
    np.testing.assert_allclose(data.log_q, np.log(want / want.sum()), rtol=1e-6)
    # histories are untouched: same CSR whether or not there is a window
    assert (data.train.items == base.train.items).all() and (data.train.ptr == base.train.ptr).all()


def test_a_window_after_every_target_falls_back_to_all_examples(tiny_run: RunDir) -> None:
    t = int(load_data(cfg=StudentConfig(), layout=tiny_run.layout, need_teacher=False)
            .tables.train["timestamp"].max())
    data = load_data(cfg=StudentConfig(train_since=t + 1), layout=tiny_run.layout, need_teacher=False)
    assert len(data.ex_window) == len(data.ex_users) and data.ex_older.size == 0


def test_warm_start_continues_the_optimizers_where_their_state_fits(tmp_path) -> None:
    from types import SimpleNamespace

    import torch

    from recsys.student import checkpoint
    from recsys.student.train import _warm_optimizers

    old_net = torch.nn.Linear(2, 2)
    old = torch.optim.AdamW(old_net.parameters(), lr=1.0)
    old_net(torch.ones(1, 2)).sum().backward()
    old.step()
    path = tmp_path / "last.rank0.pt"
    checkpoint.save(path, model={}, fused_opt={"t_item.momentum1": torch.tensor([1.0, 2.0, 3.0])},
                    dense_opt=old.state_dict(), meta={})
    fused = {"t_item.momentum1": torch.zeros(5)}  # the table grew by 2 rows: their accumulators stay fresh
    dmp = SimpleNamespace(fused_optimizer=SimpleNamespace(state_dict=lambda: fused))
    new = torch.optim.AdamW(torch.nn.Linear(2, 2).parameters(), lr=0.5)
    assert "dense continued" in _warm_optimizers(path, dmp=dmp, dense_opt=new)
    assert fused["t_item.momentum1"].tolist() == [1, 2, 3, 0, 0]
    exp_avg = [new.state[p]["exp_avg"] for p in new.param_groups[0]["params"]]
    want = [old.state[p]["exp_avg"] for p in old.param_groups[0]["params"]]
    assert all(torch.equal(a, b) for a, b in zip(exp_avg, want)) and new.param_groups[0]["lr"] == 0.5
    other = torch.optim.AdamW(torch.nn.Linear(3, 2).parameters(), lr=0.5)  # another architecture: left fresh
    assert "dense fresh" in _warm_optimizers(path, dmp=dmp, dense_opt=other) and not other.state
    assert _warm_optimizers(tmp_path / "none.pt", dmp=dmp, dense_opt=other).startswith("fresh")
