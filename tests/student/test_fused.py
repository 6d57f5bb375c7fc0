"""``fused.in_batch_losses`` = the direct terms (``softmax_of_logits`` + ``listwise_kl`` of ``users @ cols.T``), values
and gradients; ``duplicate_pairs`` = the cells ``candidate_mask`` drops."""

from __future__ import annotations

import pytest
import torch

from recsys.student.fused import duplicate_pairs, in_batch_losses, relational_kl_of
from recsys.student.losses import candidate_mask, listwise_kl, softmax_of_logits


def _case(b: int = 6, c: int = 10, d: int = 4, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    users = torch.randn(b, d, generator=g, dtype=torch.float64)
    cols = torch.randn(c, d, generator=g, dtype=torch.float64)
    ids = torch.tensor([0, 1, 2, 1, 4, 5, 6, 0, 8, 1][:c])  # repeats: masked false negatives
    log_q = torch.randn(c, generator=g, dtype=torch.float64)
    teacher = 3.0 * torch.randn(b, c, generator=g, dtype=torch.float64)
    fixed = torch.randn(b, c, generator=g, dtype=torch.float64)
    return users, cols, ids, log_q, teacher, fixed


@pytest.mark.parametrize("with_teacher,with_logq,n_cols,with_fixed", [
    (True, True, 10, False), (True, False, 8, False), (False, True, 10, False), (True, True, 7, True),
    (False, False, 10, True)])
def test_values_and_gradients_are_the_direct_terms(with_teacher: bool, with_logq: bool, n_cols: int,
                                                   with_fixed: bool) -> None:
    users, cols, ids, log_q, teacher, fixed = _case()
    teacher = teacher[:, :n_cols] if with_teacher else None
    lq = log_q if with_logq else None
    fx = fixed if with_fixed else None
    mask = candidate_mask(item_ids=ids, n_rows=len(users))
    a_u, a_c = users.clone().requires_grad_(True), cols.clone().requires_grad_(True)
    rec, rank = in_batch_losses(users=a_u, cols=a_c, item_ids=ids, fixed=fx, temperature=0.07, log_q=lq,
                                teacher=teacher, rank_temperature=2.0)
    (1.3 * rec + 0.7 * rank).backward()
    d_u, d_c = users.clone().requires_grad_(True), cols.clone().requires_grad_(True)
    scores = d_u @ d_c.T + (fixed if with_fixed else 0.0)
    want_rec = softmax_of_logits(logits=scores / 0.07, mask=mask, log_q=lq)
    want_rank = listwise_kl(student=(scores / 0.07)[:, :n_cols], teacher=teacher, temperature=2.0,
                            mask=mask[:, :n_cols]) if with_teacher else torch.zeros((), dtype=users.dtype)
    (1.3 * want_rec + 0.7 * want_rank).backward()
    assert torch.allclose(rec, want_rec, rtol=1e-10) and torch.allclose(rank, want_rank, rtol=1e-10, atol=1e-12)
    assert torch.allclose(a_u.grad, d_u.grad, rtol=1e-9, atol=1e-12)
    assert torch.allclose(a_c.grad, d_c.grad, rtol=1e-9, atol=1e-12)
    if not with_teacher:
        assert float(rank.detach()) == 0.0


def test_hand_computed_two_by_two() -> None:
    """Two rows, two columns, no repeats, no logQ, tau = 1, users = the identity (so S = cols.T):
    L_rec = mean(log(1 + e^(s_ij - s_ii)))."""
    u = torch.eye(2, dtype=torch.float64, requires_grad=True)
    cols = torch.tensor([[2.0, 1.0], [0.0, 1.0]], dtype=torch.float64, requires_grad=True)  # S = [[2, 0], [1, 1]]
    rec, _ = in_batch_losses(users=u, cols=cols, item_ids=torch.tensor([0, 1]), temperature=1.0)
    want = (torch.log1p(torch.exp(torch.tensor(-2.0, dtype=torch.float64))) + torch.log(torch.tensor(2.0, dtype=torch.float64))) / 2
    assert abs(float(rec) - float(want)) < 1e-12
    rec.backward()
    p0 = 1 / (1 + torch.exp(torch.tensor(-2.0, dtype=torch.float64)))  # softmax of row 0 at its positive
    d_s = torch.tensor([[p0 - 1, 1 - p0], [0.5, -0.5]], dtype=torch.float64) / 2  # dL/dS
    assert torch.allclose(cols.grad, d_s.T @ torch.eye(2, dtype=torch.float64))  # dL/dcols = dS.T @ users
    assert torch.allclose(u.grad, d_s @ cols.detach())


def test_duplicate_pairs_are_the_cells_the_mask_drops() -> None:
    ids = torch.tensor([3, 1, 3, 2, 1, 3, 7])
    rows, cols = duplicate_pairs(item_ids=ids, n_rows=4)
    assert list(zip(rows.tolist(), cols.tolist())) == [(0, 2), (0, 5), (1, 4), (2, 0), (2, 5)]
    g = torch.Generator().manual_seed(3)
    for n_rows, c in [(64, 128), (50, 50), (5, 9)]:
        ids = torch.randint(0, 12, (c,), generator=g)
        rows, cols = duplicate_pairs(item_ids=ids, n_rows=n_rows)
        dropped = torch.zeros(n_rows, c, dtype=torch.bool)
        dropped[rows, cols] = True
        assert torch.equal(dropped, ~candidate_mask(item_ids=ids, n_rows=n_rows))
        assert len(rows) == int(dropped.sum())  # each cell once
    rows, cols = duplicate_pairs(item_ids=torch.arange(5), n_rows=5)
    assert rows.numel() == cols.numel() == 0


def test_shapes_are_checked_and_one_backward_only() -> None:
    users, cols, ids, _, teacher, fixed = _case()
    with pytest.raises(ValueError, match="item_ids"):
        in_batch_losses(users=users, cols=cols, item_ids=ids[:4], temperature=1.0)
    with pytest.raises(ValueError, match="teacher"):
        in_batch_losses(users=users, cols=cols, item_ids=ids, temperature=1.0, teacher=teacher[:3])
    with pytest.raises(ValueError, match="fixed"):
        in_batch_losses(users=users, cols=cols, item_ids=ids, temperature=1.0, fixed=fixed[:, :4])
    u = users.clone().requires_grad_(True)
    rec, _ = in_batch_losses(users=u, cols=cols, item_ids=ids, temperature=1.0)
    rec.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="one backward"):
        rec.backward()


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


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_carried_relational_is_the_gram_over_norms_form(dtype: torch.dtype) -> None:
    """The one-node relational KL equals the autograd form (fixed block from the carried columns, cosines over the
    whole rows' norms), value and gradient of the trainable columns; repeated rows (duplicate positives) included."""
    from recsys.student.fused import carried_relational
    from recsys.student.losses import split_products

    g = torch.Generator().manual_seed(5)
    carried = torch.randn(9, 6, generator=g, dtype=dtype)
    carried[4] = carried[1]  # a positive repeated in the batch
    r0 = torch.randn(9, 3, generator=g, dtype=dtype) * 0.5
    r0[4] = r0[1]

    def direct(x: torch.Tensor) -> torch.Tensor:  # the pre-fusion code path of losses.relational_kl
        n = x.norm(dim=1).clamp_min(1e-12)
        fixed, gram = split_products(x, x, frozen=6)
        nt = x[:, :6].norm(dim=1).clamp_min(1e-12)
        return relational_kl_of(cos_s=gram / (n[:, None] * n[None, :]),
                                cos_t=fixed / (nt[:, None] * nt[None, :]), temperature=0.1)

    ra, rb = r0.clone().requires_grad_(True), r0.clone().requires_grad_(True)
    got = carried_relational(student=torch.cat([carried, ra], 1), frozen=6, temperature=0.1)
    want = direct(torch.cat([carried, rb], 1))
    (got * 1.7).backward()
    (want * 1.7).backward()
    tol = {"rtol": 1e-9, "atol": 1e-12} if dtype == torch.float64 else {"rtol": 2e-4, "atol": 1e-6}
    assert float(got) > 0 and torch.allclose(got, want, **tol)
    assert torch.allclose(ra.grad, rb.grad, **tol)
    same = torch.cat([carried, carried[:, :3] * 0.0], 1)  # no residual: the student's cosines are the teacher's
    assert float(carried_relational(student=same, frozen=6, temperature=0.1)) == pytest.approx(0.0, abs=1e-5)
    with pytest.raises(ValueError, match="must split"):
        carried_relational(student=carried, frozen=6, temperature=0.1)
