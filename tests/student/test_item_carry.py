"""Per-item teacher carry (``recsys.student.carry``): weights by training count, the tower's scaled item side."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from recsys.student.carry import item_scales, item_weights


def test_weights_follow_the_training_count_by_hand() -> None:
    # a = 0.5, k = 1: w = n / (n + 1) = 0, 1/2, 3/4; beta = 0.5 w; alpha = 0.5 + shift * 0.5 (1 - w)
    alpha, beta = item_weights(counts=np.array([0, 1, 3]), carry=0.5, k=1.0, shift=1.0)
    np.testing.assert_allclose(beta, [0.0, 0.25, 0.375])
    np.testing.assert_allclose(alpha, [1.0, 0.75, 0.625])
    alpha, beta = item_weights(counts=np.array([0, 1, 3]), carry=0.5, k=1.0, shift=0.5)
    np.testing.assert_allclose(alpha, [0.75, 0.625, 0.5625])
    np.testing.assert_allclose(beta, [0.0, 0.25, 0.375])
    alpha, beta = item_weights(counts=np.array([0, 1, 3]), carry=0.5, k=1.0, shift=0.0)
    np.testing.assert_allclose(alpha, [0.5, 0.5, 0.5])  # the residual only shrinks


def test_scales_are_relative_to_the_constant_carry_and_off_at_k0() -> None:
    # a = 0.25, k = 2, shift = 1, n = 0 / 2: w = 0 / 0.5 -> alpha = 1 / 0.625, beta = 0 / 0.375
    np.testing.assert_allclose(item_scales(counts=np.array([0, 2]), carry=0.25, k=2.0, shift=1.0),
                               [[4.0, 0.0], [2.5, 0.5]])
    np.testing.assert_allclose(item_scales(counts=np.array([0, 7]), carry=0.25, k=0.0, shift=1.0), np.ones((2, 2)))
    with pytest.raises(ValueError, match="teacher_carry"):
        item_scales(counts=np.array([1]), carry=0.0, k=1.0, shift=1.0)


def test_tower_scores_are_alpha_cos_teacher_plus_beta_cos_student(tiny_run) -> None:
    pytest.importorskip("torchrec")
    from recsys.student.config import StudentConfig
    from recsys.student.dataset import load_data
    from recsys.student.encode import encode_items, encode_users
    from recsys.student.towers import TwoTower

    base = StudentConfig(dim=8, item_id_dim=8, brand_dim=4, category_dim=4, mlp=(16,), batch_size=16, nproc=1,
                         lambda_emb=0.0, lambda_rank=0.0, id_dropout=0.0, teacher_carry=0.25,
                         carry_count_k=0.0)
    cfg = dataclasses.replace(base, carry_count_k=2.0, carry_shift=1.0)
    data = load_data(cfg=cfg, layout=tiny_run.layout, need_teacher=True)
    counts = data.feats.train_count.copy()
    counts[:2] = [0, 1]  # one item without events, one with a single event, whatever the synthetic data holds
    data = dataclasses.replace(data, feats=dataclasses.replace(data.feats, train_count=counts))
    torch.manual_seed(0)
    towers = TwoTower(cfg=cfg, feats=data.feats, n_users=data.n_users, text_dim=data.feats.text.shape[1])
    towers.eval()
    items = encode_items(towers=towers, feats=data.feats, cfg=cfg)
    plain = encode_items(towers=towers, feats=data.feats, cfg=base)  # same weights, constant carry
    users = encode_users(towers=towers, feats=data.feats, hist=data.train, cfg=cfg)
    np.testing.assert_allclose(users, encode_users(towers=towers, feats=data.feats, hist=data.train, cfg=base))
    dt = data.feats.carry.shape[1]
    t_u, r_u = users[:, :dt] / math.sqrt(0.25), users[:, dt:] / math.sqrt(0.75)
    t_i, r_i = plain[:, :dt] / math.sqrt(0.25), plain[:, dt:] / math.sqrt(0.75)
    alpha, beta = item_weights(counts=counts, carry=0.25, k=2.0, shift=1.0)
    np.testing.assert_allclose(users @ items.T, alpha * (t_u @ t_i.T) + beta * (r_u @ r_i.T), atol=1e-5)
    cold = np.flatnonzero(counts == 0)
    # an item without events is its teacher vector alone (shift 1: alpha = 1): score = cos(teacher user, teacher item)
    np.testing.assert_allclose(users @ items[cold].T, t_u @ data.feats.carry[cold].T, atol=1e-5)
    np.testing.assert_allclose(items[cold, dt:], 0.0)
