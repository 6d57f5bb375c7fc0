"""Teacher carry (scores = a cos_teacher + (1 - a) cos_student) and the full-catalogue softmax."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

pytest.importorskip("torchrec")

from recsys.artifacts import RunDir  # noqa: E402
from recsys.student.batches import teacher_prefix_vectors  # noqa: E402
from recsys.student.config import StudentConfig  # noqa: E402
from recsys.student.dataset import full_slice, load_data, step_batch  # noqa: E402
from recsys.student.losses import full_softmax  # noqa: E402
from recsys.student.objective import StudentObjective  # noqa: E402
from recsys.student.towers import TwoTower  # noqa: E402

TINY = StudentConfig(dim=8, item_id_dim=8, brand_dim=4, category_dim=4, mlp=(16,), batch_size=16, nproc=1,
                     lambda_emb=0.0, lambda_rank=0.0, id_dropout=0.0)


def test_full_slice_covers_the_catalogue_once_across_ranks() -> None:
    parts = [full_slice(5, rank=r, world=2) for r in range(2)]
    assert [p.tolist() for p in parts] == [[0, 1, 2], [3, 4, 0]]  # padded with item 0, trimmed after the gather
    assert np.concatenate(parts)[:5].tolist() == [0, 1, 2, 3, 4]


def test_teacher_carry_scores_are_the_weighted_sum_of_both_cosines(tiny_run: RunDir) -> None:
    cfg = dataclasses.replace(TINY, teacher_carry=0.25)
    data = load_data(cfg=cfg, layout=tiny_run.layout, need_teacher=True)
    torch.manual_seed(0)
    towers = TwoTower(cfg=cfg, feats=data.feats, n_users=data.n_users, text_dim=data.feats.text.shape[1])
    step = step_batch(data=data, cfg=cfg, idx=np.arange(cfg.batch_size), rng=np.random.default_rng(0), rank=0, world=1)
    with torch.no_grad():
        users, items = towers(step.batch)
    dt = data.feats.carry.shape[1]
    assert towers.out_dim == users.shape[1] == items.shape[1] == cfg.dim + dt
    t_u, r_u = users[:, :dt] / math.sqrt(0.25), users[:, dt:] / math.sqrt(0.75)
    t_i, r_i = items[:, :dt] / math.sqrt(0.25), items[:, dt:] / math.sqrt(0.75)
    torch.testing.assert_close(users @ items.T, 0.25 * t_u @ t_i.T + 0.75 * r_u @ r_i.T)
    # the carried item part is the item's own L2-normed teacher vector; the user part its pooled history
    emb = data.feats.carry
    torch.testing.assert_close(t_i, torch.from_numpy(emb[step.batch.item_ids.numpy()]))
    b = step.n_pos
    starts, ends = data.train.ptr[data.ex_users[:b]], data.ex_pos[:b]
    want = teacher_prefix_vectors(teacher=emb, starts=starts, ends=ends, flat=data.train.items,
                                  last_n=data.feats.carry_last_n, decay=data.feats.carry_decay)
    torch.testing.assert_close(t_u[:b], want)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)


def test_full_negatives_score_the_whole_catalogue(tiny_run: RunDir) -> None:
    cfg = dataclasses.replace(TINY, negatives="full")
    data = load_data(cfg=cfg, layout=tiny_run.layout, need_teacher=True)
    torch.manual_seed(0)
    towers = TwoTower(cfg=cfg, feats=data.feats, n_users=data.n_users, text_dim=data.feats.text.shape[1])
    obj = StudentObjective(cfg=cfg, towers=towers, teacher_dim=data.teacher.shape[1] if data.teacher is not None
                           else 0, n_items=data.feats.n_items)
    step = step_batch(data=data, cfg=cfg, idx=np.arange(cfg.batch_size), rng=np.random.default_rng(0), rank=0, world=1)
    assert step.n_full == data.feats.n_items
    with torch.no_grad():
        loss = obj(step)["rec"]
        users, items = towers(step.batch)
    b = step.n_pos
    cat = items[b:b + step.n_full]
    want = full_softmax(users=users[:b], all_items=cat, targets=step.batch.item_ids[:b], temperature=cfg.temperature)
    torch.testing.assert_close(loss, want)
    assert step.batch.item_ids[b:b + step.n_full].tolist() == list(range(data.feats.n_items))
