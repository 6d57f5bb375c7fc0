"""``fused.in_batch_losses`` = the direct terms (``softmax_of_logits`` + ``listwise_kl``), values and gradients."""

from __future__ import annotations

import pytest
import torch

from recsys.student.fused import in_batch_losses, relational_kl_of
from recsys.student.losses import candidate_mask, listwise_kl, softmax_of_logits


def _case(b: int = 6, c: int = 10, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    scores = torch.randn(b, c, generator=g, dtype=torch.float64)
    ids = torch.tensor([0, 1, 2, 1, 4, 5, 6, 0, 8, 1][:c])  # repeats: masked false negatives
    mask = candidate_mask(item_ids=ids, n_rows=b)
    log_q = torch.randn(c, generator=g, dtype=torch.float64)
    teacher = 3.0 * torch.randn(b, c, generator=g, dtype=torch.float64)
    return scores, mask, log_q, teacher


@pytest.mark.parametrize("with_teacher,with_logq,cols", [(True, True, 10), (True, False, 8), (False, True, 10)])
def test_values_and_gradients_are_the_direct_terms(with_teacher: bool, with_logq: bool, cols: int) -> None:
    scores, mask, log_q, teacher = _case()
    teacher = teacher[:, :cols] if with_teacher else None
    lq = log_q if with_logq else None
    a = scores.clone().requires_grad_(True)
    rec, rank = in_batch_losses(scores=a, mask=mask, temperature=0.07, log_q=lq, teacher=teacher,
                                rank_temperature=2.0)
    (1.3 * rec + 0.7 * rank).backward()
    d = scores.clone().requires_grad_(True)
    want_rec = softmax_of_logits(logits=d / 0.07, mask=mask, log_q=lq)
    want_rank = listwise_kl(student=(d / 0.07)[:, :cols], teacher=teacher, temperature=2.0, mask=mask[:, :cols]) \
        if with_teacher else torch.zeros((), dtype=d.dtype)
    (1.3 * want_rec + 0.7 * want_rank).backward()
    assert torch.allclose(rec, want_rec, rtol=1e-10) and torch.allclose(rank, want_rank, rtol=1e-10, atol=1e-12)
    assert torch.allclose(a.grad, d.grad, rtol=1e-9, atol=1e-12)
    if not with_teacher:
        assert float(rank) == 0.0


def test_hand_computed_two_by_two() -> None:
    """Two rows, two columns, no mask, no logQ, tau = 1: L_rec = mean(log(1 + e^(s_ij - s_ii)))."""
    s = torch.tensor([[2.0, 0.0], [1.0, 1.0]], dtype=torch.float64, requires_grad=True)
    rec, _ = in_batch_losses(scores=s, mask=torch.ones(2, 2, dtype=torch.bool), temperature=1.0)
    want = (torch.log1p(torch.exp(torch.tensor(-2.0, dtype=torch.float64))) + torch.log(torch.tensor(2.0, dtype=torch.float64))) / 2
    assert abs(float(rec) - float(want)) < 1e-12
    rec.backward()
    p0 = 1 / (1 + torch.exp(torch.tensor(-2.0, dtype=torch.float64)))  # softmax of row 0 at its positive
    expect = torch.tensor([[p0 - 1, 1 - p0], [0.5, -0.5]], dtype=torch.float64) / 2
    assert torch.allclose(s.grad, expect)


def test_shapes_are_checked() -> None:
    scores, mask, _, teacher = _case()
    with pytest.raises(ValueError, match="mask"):
        in_batch_losses(scores=scores, mask=mask[:, :4], temperature=1.0)
    with pytest.raises(ValueError, match="teacher"):
        in_batch_losses(scores=scores, mask=mask, temperature=1.0, teacher=teacher[:3])


def test_relational_kl_of_is_the_direct_kl() -> None:
    """KL(P_t || P_s) of the rows' softmaxes over the other rows, written out, and its gradient."""
    g = torch.Generator().manual_seed(1)
    cos_s = torch.randn(5, 5, generator=g, dtype=torch.float64)
    cos_t = torch.randn(5, 5, generator=g, dtype=torch.float64)
    a = cos_s.clone().requires_grad_(True)
    got = relational_kl_of(cos_s=a, cos_t=cos_t, temperature=0.1)
    got.backward()
    d = cos_s.clone().requires_grad_(True)
    eye = torch.eye(5, dtype=torch.bool)
    ls = torch.log_softmax((d / 0.1).masked_fill(eye, -1e9), 1)
    lt = torch.log_softmax((cos_t / 0.1).masked_fill(eye, -1e9), 1)
    want = (lt.exp() * (lt - ls)).masked_fill(eye, 0.0).sum(1).mean()
    want.backward()
    assert torch.allclose(got, want, rtol=1e-10)
    assert torch.allclose(a.grad, d.grad, rtol=1e-9, atol=1e-12)
    assert float(relational_kl_of(cos_s=cos_t, cos_t=cos_t, temperature=0.1)) == pytest.approx(0.0, abs=1e-12)
