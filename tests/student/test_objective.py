"""The in-batch ranking-distillation list: the global batch's positives, plus the uniform negatives when
``negatives="mixed"`` (so the teacher's ordering of the catalogue's tail reaches the student too)."""

from __future__ import annotations

import dataclasses

import numpy as np
import torchrec  # noqa: F401  (a broken install must fail the suite, never skip it)
import torch

from recsys.artifacts import RunDir
from recsys.student.config import StudentConfig
from recsys.student.dataset import load_data, step_batch
from recsys.student.losses import in_batch_listwise_kl
from recsys.student.objective import StudentObjective
from recsys.student.towers import TwoTower

TINY = StudentConfig(dim=8, item_id_dim=8, brand_dim=4, category_dim=4, mlp=(16,), batch_size=16, nproc=1,
                     lambda_emb=0.0, lambda_rank=1.0, rank_candidates="in_batch", id_dropout=0.0)


def _teacher_side(data, step, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """The teacher's vectors of the step written out directly: each example's history prefix pooled over the
    L2-normed teacher item vectors (its recency pooling), and those item vectors of the positives [+ uniform]."""
    from recsys.student.batches import teacher_prefix_vectors

    if data.feats.carry is None:  # no carry: the objective reads the per-example teacher vectors of the step
        t_items = step.teacher_items if not step.n_uniform else torch.cat([step.teacher_items, step.teacher_uniform])
        return step.teacher_users, t_items
    t = data.feats.carry  # the adapted teacher's item vectors, L2-normed
    users, pos = data.ex_users[idx], data.ex_pos[idx]
    t_users = teacher_prefix_vectors(teacher=t, starts=data.train.ptr[users], ends=pos, flat=data.train.items,
                                     last_n=data.feats.carry_last_n, decay=data.feats.carry_decay)
    cols = step.batch.item_ids[:step.n_pos + step.n_uniform].numpy()
    return t_users, torch.from_numpy(t[cols])


def _losses(run: RunDir, cfg: StudentConfig) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    data = load_data(cfg=cfg, layout=run.layout, need_teacher=True)
    torch.manual_seed(0)
    towers = TwoTower(cfg=cfg, feats=data.feats, n_users=data.n_users, text_dim=data.feats.text.shape[1])
    obj = StudentObjective(cfg=cfg, towers=towers, teacher_dim=data.teacher.shape[1], teacher_scale=data.teacher_scale)
    step = step_batch(data=data, cfg=cfg, idx=np.arange(cfg.batch_size), rng=np.random.default_rng(0), rank=0, world=1)
    with torch.no_grad():
        out = obj(step)
        users, items = towers(step.batch)
        b, n_uni = step.n_pos, step.n_uniform
        t_users, t_items = _teacher_side(data, step, np.arange(cfg.batch_size))
        expect = in_batch_listwise_kl(users=users[:b], items=items[:b + n_uni], item_ids=step.batch.item_ids[:b + n_uni],
                                      teacher_users=t_users, teacher_items=t_items,
                                      student_scale=1.0 / cfg.temperature, teacher_scale=data.teacher_scale,
                                      temperature=cfg.rank_temperature)
    return out, expect


def test_in_batch_kd_list_is_the_batch_positives(tiny_run: RunDir) -> None:
    out, expect = _losses(tiny_run, TINY)
    assert torch.allclose(out["rank"], expect)


def test_kd_list_without_carry_reads_the_step_teacher_vectors(tiny_run: RunDir) -> None:
    cfg = dataclasses.replace(TINY, teacher_carry=0.0)
    out, expect = _losses(tiny_run, cfg)
    assert torch.allclose(out["rank"], expect)
    carried, _ = _losses(tiny_run, TINY)
    assert not torch.allclose(out["rank"], carried["rank"])  # other towers, other student scores


def test_mixed_negatives_join_the_kd_list(tiny_run: RunDir) -> None:
    cfg = dataclasses.replace(TINY, negatives="mixed", n_uniform_negatives=8)
    out, expect = _losses(tiny_run, cfg)
    assert torch.allclose(out["rank"], expect)
    plain, _ = _losses(tiny_run, TINY)
    assert not torch.allclose(out["rank"], plain["rank"])  # the extra columns change the distribution


def _reference(obj: StudentObjective, step, cfg: StudentConfig, data) -> dict[str, torch.Tensor]:
    """The objective's terms written out the direct way (one product per term, every column with autograd)."""
    from recsys.student.losses import embedding_alignment, relational_kl, sampled_softmax

    users, items = obj.towers(step.batch)
    b = step.n_pos
    u, pos, ids = users[:b], items[:b], step.batch.item_ids[:b]
    rec = sampled_softmax(users=u, items=pos, item_ids=ids, log_q=torch.from_numpy(step.log_q),
                          temperature=cfg.temperature)
    t = torch.from_numpy(step.teacher_pos)
    emb = embedding_alignment(student=obj.emb.proj(pos), teacher=t) + cfg.lambda_relational * relational_kl(
        student=pos, teacher=t, temperature=cfg.relational_temperature)
    t_users, t_items = _teacher_side(data, step, np.arange(cfg.batch_size))
    rank = in_batch_listwise_kl(users=u, items=pos, item_ids=ids, teacher_users=t_users,
                                teacher_items=t_items, student_scale=1.0 / cfg.temperature,
                                teacher_scale=obj.teacher_scale, temperature=cfg.rank_temperature)
    return {"rec": rec, "emb": emb, "rank": rank, "total": rec + cfg.lambda_emb * emb + cfg.lambda_rank * rank}


def test_shared_logits_and_frozen_carry_match_the_direct_terms(tiny_run: RunDir) -> None:
    """The objective computes L_rec and the in-batch L_rank from one score matrix and multiplies the carried teacher
    columns outside autograd: every term and every gradient is that of the direct computation."""
    cfg = dataclasses.replace(TINY, lambda_emb=0.1, teacher_carry=0.5, carry_count_k=10.0, id_dropout=0.2)
    data = load_data(cfg=cfg, layout=tiny_run.layout, need_teacher=True)
    torch.manual_seed(0)
    towers = TwoTower(cfg=cfg, feats=data.feats, n_users=data.n_users, text_dim=data.feats.text.shape[1])
    assert towers.carry_dim > 0
    obj = StudentObjective(cfg=cfg, towers=towers, teacher_dim=data.teacher.shape[1], teacher_scale=data.teacher_scale)
    step = step_batch(data=data, cfg=cfg, idx=np.arange(cfg.batch_size), rng=np.random.default_rng(0), rank=0, world=1)
    grads = []
    for fn in (lambda: obj(step), lambda: _reference(obj, step, cfg, data)):
        obj.zero_grad(set_to_none=True)
        out = fn()
        out["total"].backward()
        grads.append(({k: float(v.detach()) for k, v in out.items()},
                      {n: p.grad.clone() for n, p in obj.named_parameters() if p.grad is not None}))
    (got, g_got), (want, g_want) = grads
    for k in want:
        assert abs(got[k] - want[k]) <= 1e-5 * max(1.0, abs(want[k])), (k, got[k], want[k])
    assert g_got.keys() == g_want.keys()
    for n in g_want:
        assert torch.allclose(g_got[n], g_want[n], rtol=1e-4, atol=1e-6), n
