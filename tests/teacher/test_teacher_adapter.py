from __future__ import annotations

import math

import numpy as np
import polars as pl
import torch

from recsys.data.tables import load_tables
from recsys.teacher.adapter import Adapter, in_batch_softmax_loss, train_adapter, training_examples
from recsys.teacher.config import TeacherConfig


def test_in_batch_softmax_by_hand() -> None:
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    p = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    loss = in_batch_softmax_loss(q, p, torch.tensor([3, 4]), temperature=1.0)
    # row 0: logits [1, 1] -> -log(1/2); row 1: logits [0, 0] -> -log(1/2)
    assert math.isclose(float(loss), math.log(2), rel_tol=1e-6)
    # same item in both columns: the other column is not a negative -> zero loss
    assert float(in_batch_softmax_loss(q, p, torch.tensor([3, 3]), temperature=1.0)) < 1e-6
    # logQ: a popular column is penalised less as a negative
    lq = torch.log(torch.tensor([0.9, 0.1]))
    assert float(in_batch_softmax_loss(q, p, torch.tensor([3, 4]), temperature=1.0, log_q=lq)) != float(loss)


def test_training_examples_use_only_earlier_events() -> None:
    train = pl.DataFrame({"user": [0, 0, 0, 1, 1], "item": [5, 6, 7, 8, 9], "pos": [0, 1, 2, 0, 1]})
    rows, cols, w, tgt = training_examples(train, last_n=2, decay=0.5)
    assert tgt.tolist() == [6, 7, 9]
    ctx = sorted(zip(rows.tolist(), cols.tolist(), w.tolist()))
    assert ctx == [(0, 5, 1.0), (1, 5, 0.5), (1, 6, 1.0), (2, 8, 1.0)]


def test_adapter_starts_as_identity() -> None:
    x = torch.nn.functional.normalize(torch.randn(4, 8), dim=-1)
    for kind in ("linear", "mlp"):
        assert torch.allclose(Adapter(d_in=8, d_out=8, kind=kind)(x), x, atol=1e-6)
    # affine: the adapter of a weighted mean is the weighted mean of the adapted vectors
    a = Adapter(d_in=8, d_out=8)
    torch.nn.init.normal_(a.net.weight)
    torch.nn.init.normal_(a.net.bias)
    w = torch.tensor([[0.2], [0.3], [0.5]])
    assert torch.allclose(a((x[:3] * w).sum(0, keepdim=True)), (a(x[:3]) * w).sum(0, keepdim=True), atol=1e-5)
    assert Adapter(d_in=8, d_out=3)(x).shape == (4, 3)


def test_train_adapter_improves_on_synthetic(syn_run) -> None:
    t = load_tables(syn_run.layout)
    rng = np.random.default_rng(0)
    raw = rng.normal(size=(t.n_items, 16)).astype(np.float32)  # an uninformative teacher
    raw /= np.linalg.norm(raw, axis=1, keepdims=True)
    cfg = TeacherConfig(adapter_epochs=6, adapter_batch=128, adapter_lr=1e-2, adapter_patience=6)
    res = train_adapter(item_emb=raw, train=t.train, valid=t.valid, valid_history=t.history("valid"),
                        n_users=t.n_users, cfg=cfg)
    items = res.apply(raw)
    assert items.shape == raw.shape and items.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(items, axis=1), 1.0, atol=1e-5)
    assert not res.apply(np.zeros((2, 16), np.float32)).any()  # no history stays zero
    scores = [e["ndcg@10"] for e in res.epochs]
    assert res.best_epoch > 0 and max(scores) > scores[0]
