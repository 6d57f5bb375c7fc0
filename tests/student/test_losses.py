"""Loss functions against values computed by hand on 2x3 / 3x3 tensors."""

from __future__ import annotations

import math

import pytest
import torch
import torchrec  # noqa: F401  (a broken install must fail the suite, never skip it)

from recsys.student.losses import (
    EmbeddingDistillLoss,
    RankingDistillLoss,
    candidate_mask,
    embedding_alignment,
    full_softmax,
    in_batch_listwise_kl,
    inner_products,
    listwise_kl,
    position_weights,
    relational_kl,
    sampled_softmax,
    softmax_of_logits,
)

E = math.e
U = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


def close(a: torch.Tensor, b: float) -> None:
    assert float(a.detach()) == pytest.approx(b, rel=1e-5, abs=1e-6)


def test_in_batch_softmax_plain() -> None:
    # logits [[1, 0], [0, 1]] -> each row: -log(e / (e + 1))
    close(sampled_softmax(users=U, items=U, temperature=1.0), math.log(1 + 1 / E))


def test_in_batch_softmax_logq() -> None:
    # log_q = [ln 2, 0]: row 0 logits [1 - ln2, 0], row 1 [-ln2, 1]
    lq = torch.tensor([math.log(2.0), 0.0])
    want = (math.log(1 + 2 / E) + math.log(1 + 1 / (2 * E))) / 2
    close(sampled_softmax(users=U, items=U, temperature=1.0, log_q=lq), want)


def test_in_batch_softmax_temperature_and_duplicates() -> None:
    close(sampled_softmax(users=U, items=U, temperature=0.5), math.log(1 + math.exp(-2)))
    # both rows have the same positive item: the other "negative" is masked, the loss is 0
    close(sampled_softmax(users=U, items=U, temperature=1.0, item_ids=torch.tensor([5, 5])), 0.0)


def test_mixed_negatives() -> None:
    extra = torch.tensor([[0.0, 0.0, 1.0]])
    # each row: logits [1, 0, 0] -> log((e + 2) / e)
    close(sampled_softmax(users=U, items=U, temperature=1.0, extra_items=extra, extra_ids=torch.tensor([9]),
                          item_ids=torch.tensor([0, 1])), math.log(1 + 2 / E))
    # an extra negative equal to the row's positive is masked
    close(sampled_softmax(users=U, items=U, temperature=1.0, extra_items=U[:1], extra_ids=torch.tensor([0]),
                          item_ids=torch.tensor([0, 1])), (math.log(1 + 1 / E) + math.log(1 + 2 / E)) / 2)


def test_full_softmax() -> None:
    all_items = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    close(full_softmax(users=U, all_items=all_items, targets=torch.tensor([0, 1]), temperature=1.0),
          math.log(1 + 2 / E))


def test_embedding_alignment() -> None:
    t = torch.tensor([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0]])
    close(embedding_alignment(student=U, teacher=t, kind="cosine"), (1 - 1 / math.sqrt(2)) / 2)
    close(embedding_alignment(student=U, teacher=t, kind="mse"), 1 - 1 / math.sqrt(2))


def test_relational_kl() -> None:
    s = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    t = torch.eye(3)  # teacher: uniform over the two others
    want = 2 / 3 * (math.log(0.5 * (1 + E)) - 0.5)
    close(relational_kl(student=s, teacher=t, temperature=1.0), want)
    close(relational_kl(student=t, teacher=t, temperature=1.0), 0.0)


def _carried(n: int, *, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, 3 + 5) rows ``[constant teacher part, trainable residual]`` (as the towers' carry) and the residual leaf."""
    g = torch.Generator().manual_seed(seed)
    r = torch.randn(n, 5, generator=g).requires_grad_(True)
    return torch.cat([torch.randn(n, 3, generator=g), r * 0.7], dim=1), r


def test_frozen_columns_give_the_same_values_and_gradients() -> None:
    """``frozen``: the constant leading columns are multiplied outside autograd; values and gradients are those
    of the plain products (relational_kl, inner_products)."""
    for fn in (lambda x, k: relational_kl(student=x, teacher=torch.randn(6, 4, generator=torch.Generator().manual_seed(1)),
                                          temperature=0.1, frozen=k),
               lambda x, k: (inner_products(x, x.flip(0), frozen=k) ** 2).sum()):
        x, r = _carried(6, seed=0)
        want = fn(x, 0)
        want.backward()
        g_want = r.grad.clone()
        x, r = _carried(6, seed=0)
        got = fn(x, 3)
        got.backward()
        assert torch.allclose(got, want, rtol=1e-5, atol=1e-6)
        assert torch.allclose(r.grad, g_want, rtol=1e-4, atol=1e-6)


def test_relational_kl_is_the_normalised_form() -> None:
    """The Gram-over-norms form equals KL(softmax(t t'/T) || softmax(s s'/T)) of the L2-normalised rows."""
    g = torch.Generator().manual_seed(3)
    s, t = torch.randn(7, 4, generator=g) * 3, torch.randn(7, 5, generator=g)
    sn, tn = torch.nn.functional.normalize(s, dim=1), torch.nn.functional.normalize(t, dim=1)
    eye = torch.eye(7, dtype=torch.bool)
    ls = torch.log_softmax((sn @ sn.T / 0.2).masked_fill(eye, -1e9), 1)
    lt = torch.log_softmax((tn @ tn.T / 0.2).masked_fill(eye, -1e9), 1)
    want = (lt.exp() * (lt - ls)).masked_fill(eye, 0.0).sum(1).mean()
    close(relational_kl(student=s, teacher=t, temperature=0.2), float(want))


def test_softmax_of_logits_is_sampled_softmax() -> None:
    """The objective's shared-logits form of L_rec: same value as ``sampled_softmax`` with logQ, duplicates and
    uniform extras."""
    g = torch.Generator().manual_seed(4)
    u, v, ex = torch.randn(4, 3, generator=g), torch.randn(6, 3, generator=g), torch.randn(2, 3, generator=g)
    ids, ex_ids = torch.tensor([1, 2, 1, 3, 2, 5]), torch.tensor([3, 7])
    lq, ex_lq = torch.randn(6, generator=g), torch.full((2,), -1.5)
    want = sampled_softmax(users=u, items=v, temperature=0.5, item_ids=ids, log_q=lq, extra_items=ex, extra_ids=ex_ids,
                           extra_log_q=ex_lq)
    cols = torch.cat([ids, ex_ids])
    got = softmax_of_logits(logits=u @ torch.cat([v, ex]).T / 0.5, mask=candidate_mask(item_ids=cols, n_rows=4),
                            log_q=torch.cat([lq, ex_lq]))
    close(got, float(want))
    assert candidate_mask(item_ids=torch.tensor([1, 2, 1]), n_rows=2).tolist() == [[True, True, False],
                                                                                   [True, True, True]]


def test_embedding_distill_module_identity_projection() -> None:
    loss = EmbeddingDistillLoss(dim=3, teacher_dim=3, lambda_relational=0.0)
    with torch.no_grad():
        loss.proj.weight.copy_(torch.eye(3))
    close(loss(student=U, teacher=U), 0.0)


def test_listwise_kl() -> None:
    s, t = torch.tensor([[1.0, 0.0, 0.0]]), torch.zeros(1, 3)
    close(listwise_kl(student=s, teacher=t), math.log((E + 2) / 3) - 1 / 3)
    close(listwise_kl(student=s, teacher=t, temperature=2.0), 4 * (math.log((math.sqrt(E) + 2) / 3) - 1 / 6))
    close(listwise_kl(student=s, teacher=t, mask=torch.tensor([[True, True, False]])), math.log((E + 1) / 2) - 0.5)
    close(listwise_kl(student=s, teacher=t, weights=torch.tensor([1.0, 0.0, 0.0])), math.log((E + 2) / 3) - 1)
    close(listwise_kl(student=t, teacher=t), 0.0)


def test_ranking_module_two_rows_and_position_weights() -> None:
    s = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    close(RankingDistillLoss()(student=s, teacher=torch.zeros(2, 3)), (math.log((E + 2) / 3) - 1 / 3) / 2)
    w = position_weights(3, scale=1.0)
    assert torch.allclose(w, torch.tensor([1.0, math.exp(-1), math.exp(-2)]))


def test_in_batch_listwise_kl() -> None:
    z = torch.zeros(2, 4)
    # student logits [[1, 0], [0, 1]] vs a uniform teacher: each row log((1 + e) / 2) - 1/2
    close(in_batch_listwise_kl(users=U, items=U, teacher_users=z, teacher_items=z, student_scale=1.0,
                               teacher_scale=1.0), math.log((1 + E) / 2) - 0.5)
    # scales multiply the cosines: student logits [[2, 0], [0, 2]] -> log((1 + e²) / 2) - 1
    close(in_batch_listwise_kl(users=U, items=U, teacher_users=z, teacher_items=z, student_scale=2.0,
                               teacher_scale=5.0), math.log((1 + E**2) / 2) - 1.0)
    # teacher logits [[3, 0], [0, 3]] = student's [[3, 0], [0, 3]]: no loss
    t = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]])
    close(in_batch_listwise_kl(users=U, items=U, teacher_users=t, teacher_items=t, student_scale=3.0,
                               teacher_scale=3.0), 0.0)
    # both rows hold the same item: the other column is masked, one candidate left, KL 0
    close(in_batch_listwise_kl(users=U, items=U, teacher_users=z, teacher_items=z, student_scale=1.0,
                               teacher_scale=1.0, item_ids=torch.tensor([5, 5])), 0.0)
    # temperature 2 on both sides, times 4: 4 * (log((1 + sqrt(e)) / 2) - 1/4)
    close(RankingDistillLoss(temperature=2.0).in_batch(users=U, items=U, teacher_users=z, teacher_items=z,
                                                       student_scale=1.0, teacher_scale=1.0),
          4 * (math.log((1 + math.sqrt(E)) / 2) - 0.25))


def test_teacher_prefix_vectors() -> None:
    import numpy as np

    from recsys.student.dataset import teacher_prefix_vectors

    teacher = np.eye(3, dtype=np.float32)
    flat = np.array([0, 1, 2, 2, 0])
    # row 0: last 2 of [0, 1, 2] = [1, 2], weights 0.5, 1 -> (0, .5, 1)/|.|; row 1: [2, 0] -> (1, 0, .5)/|.|;
    # row 2: empty prefix -> zeros
    out = teacher_prefix_vectors(teacher=teacher, starts=np.array([0, 3, 3]), ends=np.array([3, 5, 3]), flat=flat,
                                 last_n=2, decay=0.5)
    want = torch.tensor([[0.0, 0.5, 1.0], [1.0, 0.0, 0.5], [0.0, 0.0, 0.0]])
    want = want / want.norm(dim=1, keepdim=True).clamp_min(1e-12)
    assert torch.allclose(out, want, atol=1e-6)


def test_gradients_flow() -> None:
    u = U.clone().requires_grad_(True)
    sampled_softmax(users=u, items=U, temperature=0.1).backward()
    assert u.grad is not None and torch.isfinite(u.grad).all()


def test_copy_grown_copies_equal_shapes_and_grows_tables() -> None:
    """Warm start: same shapes copy, tables with more rows get the old rows first, others stay fresh."""
    from recsys.student.checkpoint import copy_grown

    live = {"t": torch.zeros(4, 2), "w": torch.zeros(3), "new": torch.ones(2)}
    saved = {"t": torch.tensor([[1.0, 2.0], [3.0, 4.0]]), "w": torch.tensor([5.0, 6.0, 7.0]), "gone": torch.ones(1)}
    counts = copy_grown(live, saved)
    assert counts == {"copied": 1, "grown": 1, "kept_fresh": 1}
    assert live["t"].tolist() == [[1, 2], [3, 4], [0, 0], [0, 0]]
    assert live["w"].tolist() == [5, 6, 7] and live["new"].tolist() == [1, 1]
