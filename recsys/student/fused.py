"""L_rec and the in-batch L_rank of one score matrix, forward and backward written out (one autograd node).

Both losses read the same (B, C) matrix of inner products ``S`` (row i's positive in column i):

    L_rec  = mean_i CE(softmax_j(S_ij / tau - log_q_j), i)                     (``losses.softmax_of_logits``)
    L_rank = T^2 mean_i KL(softmax_j(teacher_ij / T) || softmax_j(S_ij / (tau T)))  (``losses.listwise_kl``)

over the columns ``mask`` keeps (``losses.candidate_mask``), L_rank over the first C' <= C columns. Their gradients
are closed-form, ``dL_rec/dS = (P - I) / (B tau)`` and ``dL_rank/dS = T (P_s - P_t) / (B tau)``, so the forward
computes them in place in the buffers it already has and the backward only scales them. Autograd would keep every
intermediate (B, C) matrix of the two softmaxes and walk them back one by one: on 2 CPU cores those elementwise
passes over (512, 1024) matrices cost as much as the tower MLPs. Same values and gradients as the direct terms
(tests/student/test_fused.py).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

NEG_INF = -1e9  # a masked logit (``recsys.student.losses`` uses the same)



class _InBatch(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, scores: torch.Tensor, mask: torch.Tensor, log_q: torch.Tensor | None,
                teacher: torch.Tensor | None, inv_tau: float, rank_t: float) -> tuple[torch.Tensor, torch.Tensor]:
        b = scores.shape[0]
        off = ~mask
        z = scores * inv_tau
        if log_q is not None:
            z.sub_(log_q[None, :])
        z.masked_fill_(off, NEG_INF)
        lse = torch.logsumexp(z, dim=1, keepdim=True)
        rec = (lse[:, 0] - z.diagonal()).mean()
        g_rec = z.sub_(lse).exp_()  # the softmax, in z's buffer
        g_rec.diagonal().sub_(1.0)
        g_rec.mul_(inv_tau / b)
        g_rank = None
        rank = scores.new_zeros(())
        if teacher is not None:
            c = teacher.shape[1]
            off_c = off[:, :c]
            log_pt = F.log_softmax((teacher / rank_t).masked_fill_(off_c, NEG_INF), dim=1)
            log_ps = F.log_softmax((scores[:, :c] * (inv_tau / rank_t)).masked_fill_(off_c, NEG_INF), dim=1)
            p_t = log_pt.exp()  # masked columns: p_t = 0 and a finite log-ratio, so they add exactly 0
            rank = (p_t * (log_pt - log_ps)).sum(1).mean() * rank_t**2
            g_rank = log_ps.exp_().sub_(p_t).mul_(rank_t * inv_tau / b)
        ctx.save_for_backward(g_rec, g_rank)
        return rec, rank

    @staticmethod
    def backward(ctx: Any, g_rec_out: torch.Tensor, g_rank_out: torch.Tensor) -> tuple[Any, ...]:
        g_rec, g_rank = ctx.saved_tensors
        grad = g_rec * g_rec_out
        if g_rank is not None:
            grad[:, :g_rank.shape[1]].add_(g_rank * g_rank_out)
        return grad, None, None, None, None, None


class _RelationalKL(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, cos_s: torch.Tensor, cos_t: torch.Tensor, inv_t: float) -> torch.Tensor:
        b = cos_s.shape[0]
        eye = torch.eye(b, dtype=torch.bool, device=cos_s.device)
        log_pt = F.log_softmax((cos_t * inv_t).masked_fill_(eye, NEG_INF), dim=1)
        log_ps = F.log_softmax((cos_s * inv_t).masked_fill_(eye, NEG_INF), dim=1)
        p_t = log_pt.exp()
        kl = (p_t * (log_pt - log_ps)).masked_fill_(eye, 0.0).sum(1).mean()
        ctx.save_for_backward(log_ps.exp_().sub_(p_t).mul_(inv_t / b))  # the diagonal is 0 - 0
        return kl

    @staticmethod
    def backward(ctx: Any, g_out: torch.Tensor) -> tuple[Any, ...]:
        (g,) = ctx.saved_tensors
        return g * g_out, None, None


def relational_kl_of(*, cos_s: torch.Tensor, cos_t: torch.Tensor, temperature: float) -> torch.Tensor:
    """``losses.relational_kl`` from the two (B, B) cosine matrices: KL(softmax(cos_t / T) || softmax(cos_s / T))
    per row over the other rows (diagonal dropped), mean over rows; gradient ``(P_s - P_t) / (B T)`` in closed form."""
    if cos_s.ndim != 2 or cos_s.shape[0] != cos_s.shape[1] or cos_t.shape != cos_s.shape:
        raise ValueError(f"relational_kl_of: two square matrices of one shape expected, got {tuple(cos_s.shape)} "
                         f"and {tuple(cos_t.shape)}")
    return _RelationalKL.apply(cos_s, cos_t.detach(), 1.0 / temperature)


def in_batch_losses(*, scores: torch.Tensor, mask: torch.Tensor, temperature: float,
                    log_q: torch.Tensor | None = None, teacher: torch.Tensor | None = None,
                    rank_temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """scores (B, C) inner products (row i's positive in column i), mask (B, C) bool (True = a candidate), log_q
    (C,) or None, teacher (B, C') logits of the teacher or None -> (L_rec, L_rank); L_rank is 0 without a teacher."""
    if scores.shape[0] > scores.shape[1] or mask.shape != scores.shape:
        raise ValueError(f"in_batch_losses: scores {tuple(scores.shape)} needs B <= C and a mask of its shape "
                         f"(got {tuple(mask.shape)})")
    if teacher is not None and (teacher.shape[0] != scores.shape[0] or teacher.shape[1] > scores.shape[1]):
        raise ValueError(f"in_batch_losses: teacher {tuple(teacher.shape)} must have the rows of scores "
                         f"{tuple(scores.shape)} and at most its columns")
    return _InBatch.apply(scores, mask, log_q, None if teacher is None else teacher.detach(), 1.0 / temperature,
                          float(rank_temperature))
