"""The student benchmark's synthetic data: the Zipf law it claims, and a plain nn.EmbeddingBag model that reads
exactly the bags the TorchRec EmbeddingBagCollection reads (else the two sides would not train the same model)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import student_synth as S


def test_zipf_log_p_is_the_law_it_draws() -> None:
    z = S.Zipf(n=3, s=0.5, seed=0)
    # P(r) = ((r + 2)^0.5 - (r + 1)^0.5) / (4^0.5 - 1): 0.4142, 0.3178, 0.2679
    np.testing.assert_allclose(np.exp(z.log_p(np.arange(3))), [0.41421, 0.31784, 0.26795], atol=1e-4)
    draws = z.ranks(np.random.default_rng(1), 200_000)
    assert draws.min() == 0 and draws.max() == 2
    np.testing.assert_allclose(np.bincount(draws) / len(draws), [0.41421, 0.31784, 0.26795], atol=5e-3)
    assert sorted(z.perm.tolist()) == [0, 1, 2]


def test_plain_bags_pool_like_the_torchrec_collection() -> None:
    torch = pytest.importorskip("torch")
    pytest.importorskip("torchrec")
    from torch import nn

    from recsys.student.config import StudentConfig
    from recsys.student.towers import TwoTower

    sizes = S.SynthSizes(n_items=50, n_users=30, n_brands=5, n_cats=100, hist_cap=7)
    feats = S.features(sizes)
    cfg = StudentConfig(use_text=False, batch_size=8, user_id_dim=4, item_id_dim=4, brand_dim=2, category_dim=2,
                        history_len=7, teacher_carry=0.0, lambda_emb=0.0, lambda_rank=0.0)
    step = S.steps(feats=feats, sizes=sizes, cfg=cfg, n=1)[0]
    assert step.n_pos == 8 and step.log_q.shape == (8,)
    towers = TwoTower(cfg=cfg, feats=feats, n_users=sizes.n_users, text_dim=0)
    pooled = towers.ebc(step.batch.kjt).to_dict()
    tables = {"item": ("hist_item", "recent_item", "item"), "brand": ("hist_brand", "brand"),
              "cat": ("hist_cat", "cat"), "user": ("user",)}
    n = step.batch.n_user_rows
    for t, (vals, offs, parts) in S.plain_inputs(step, tables=tables).items():
        bag = nn.EmbeddingBag.from_pretrained(towers.ebc.embedding_bags[f"t_{t}"].weight.detach(), mode="mean", freeze=True)
        out, i = bag(vals, offs), 0
        for f, k in parts:
            rows = slice(0, n) if f in ("hist_item", "recent_item", "hist_brand", "hist_cat", "user") else slice(n, None)
            torch.testing.assert_close(out[i:i + k], pooled[f][rows])
            i += k
        assert i == len(offs)
