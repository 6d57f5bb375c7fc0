"""L_rec and the in-batch L_rank of one score matrix, forward and backward written out (one autograd node).

Both losses read the same (B, C) matrix of inner products ``S = users @ cols.T`` [+ ``fixed``] (row i's positive in
column i):

    L_rec  = mean_i CE(softmax_j(S_ij / tau - log_q_j), i)                     (``losses.softmax_of_logits``)
    L_rank = T^2 mean_i KL(softmax_j(teacher_ij / T) || softmax_j(S_ij / (tau T)))  (``losses.listwise_kl``)

over the columns that do not repeat row i's positive (``losses.candidate_mask``), L_rank over the first C' <= C
columns. Their gradients are closed-form, ``dL_rec/dS = (P - I) / (B tau)`` and ``dL_rank/dS = T (P_s - P_t) / (B
tau)``, so the node multiplies ``S`` itself, turns that one buffer into the gradient in place and, in the backward,
multiplies it back through the two factors: no (B, C) matrix is allocated that the math does not need. Autograd
would keep every intermediate (B, C) matrix of the two softmaxes and walk them back one by one; on 2 CPU cores those
elementwise passes (and the page faults of their fresh buffers) cost more than the matmuls at B = 4096. The repeated
positives are excluded by their few (row, column) pairs (``duplicate_pairs``), not by a dense (B, C) mask. Same values
and gradients as the direct terms (tests/student/test_fused.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

NEG_INF = -1e9  # a masked logit (``recsys.student.losses`` uses the same)


def duplicate_pairs(*, item_ids: torch.Tensor, n_rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The (row, column) cells ``losses.candidate_mask`` drops, as two int64 index tensors: column j != i whose id
    repeats row i's positive ``item_ids[i]``, rows < ``n_rows``. In-batch duplicates are few (popular items), so the
    pairs replace a (n_rows, C) boolean mask and its passes; ordered by row, then column."""
    ids = item_ids.detach().cpu().numpy()
    order = np.argsort(ids, kind="stable")
    srt = ids[order]
    starts = np.flatnonzero(np.r_[True, srt[1:] != srt[:-1]]) if len(srt) else np.zeros(0, dtype=np.int64)
    sizes = np.diff(np.r_[starts, len(srt)])
    multi = sizes > 1
    if not multi.any():
        empty = torch.zeros(0, dtype=torch.int64)
        return empty, empty
    member = np.flatnonzero(np.repeat(multi, sizes))  # sorted positions inside a repeated id's group
    reps = np.repeat(sizes, sizes)[member]  # each member pairs with its whole group
    first = np.repeat(np.repeat(starts, sizes)[member], reps)
    within = np.arange(reps.sum()) - np.repeat(np.cumsum(reps) - reps, reps)
    rows, cols = order[np.repeat(member, reps)], order[first + within]
    keep = (rows != cols) & (rows < n_rows)
    rows, cols = rows[keep], cols[keep]
    o = np.lexsort((cols, rows))
    return torch.from_numpy(rows[o].astype(np.int64)), torch.from_numpy(cols[o].astype(np.int64))


def _one(x: torch.Tensor) -> bool:
    return x.numel() == 1 and float(x) == 1.0


class _InBatch(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, users: torch.Tensor, cols: torch.Tensor, fixed: torch.Tensor | None, rows: torch.Tensor,
                dcols: torch.Tensor, log_q: torch.Tensor | None, teacher: torch.Tensor | None, inv_tau: float,
                rank_t: float) -> tuple[torch.Tensor, torch.Tensor]:
        b = users.shape[0]
        s = torch.mm(users, cols.T) if fixed is None else torch.addmm(fixed, users, cols.T)  # (B, C), ours to reuse
        rank = s.new_zeros(())
        g_rank = None
        if teacher is not None:  # before s becomes L_rec's logits: the student side of the KL reads s itself
            c = teacher.shape[1]
            inc = dcols < c
            r_c, c_c = rows[inc], dcols[inc]
            t = teacher / rank_t
            t[r_c, c_c] = NEG_INF
            log_pt = F.log_softmax(t, dim=1)
            z_s = s[:, :c] * (inv_tau / rank_t)
            z_s[r_c, c_c] = NEG_INF
            log_ps = F.log_softmax(z_s, dim=1)
            p_t = log_pt.exp()  # masked columns: p_t = 0 and a finite log-ratio, so they add exactly 0
            rank = log_pt.sub_(log_ps).mul_(p_t).sum(1).mean() * rank_t**2
            g_rank = log_ps.exp_().sub_(p_t).mul_(rank_t * inv_tau / b)
        z = s.mul_(inv_tau)
        if log_q is not None:
            z.sub_(log_q[None, :])
        z[rows, dcols] = NEG_INF
        # logsumexp as torch computes it (max, exp of the shifted logits, sum, log, plus the max), but in s's buffer:
        # torch.logsumexp would allocate a (B, C) temporary for the shifted logits
        z_pos = z.diagonal().clone()
        m = z.amax(dim=1, keepdim=True)
        e = z.sub_(m).exp_()
        total = e.sum(dim=1, keepdim=True)
        rec = (total.log()[:, 0] + m[:, 0] - z_pos).mean()
        g = e.mul_((inv_tau / b) / total)  # (softmax) * inv_tau / B, still in s's buffer
        g.diagonal().sub_(inv_tau / b)
        ctx.save_for_backward(users, cols, g, g_rank)
        ctx.used = False
        return rec, rank

    @staticmethod
    def backward(ctx: Any, g_rec_out: torch.Tensor, g_rank_out: torch.Tensor) -> tuple[Any, ...]:
        users, cols, g, g_rank = ctx.saved_tensors
        if ctx.used:  # a second backward (retain_graph): the buffer was scaled in place by the first
            raise RuntimeError("in_batch_losses: its gradient buffer is consumed by one backward pass; "
                               "recompute the losses instead of retain_graph=True")
        ctx.used = True
        if not _one(g_rec_out):
            g.mul_(g_rec_out)
        if g_rank is not None and float(g_rank_out) != 0.0:
            g[:, :g_rank.shape[1]].add_(g_rank if _one(g_rank_out) else g_rank * g_rank_out)
        grad_u = g @ cols if ctx.needs_input_grad[0] else None
        grad_c = g.T @ users if ctx.needs_input_grad[1] else None
        return grad_u, grad_c, None, None, None, None, None, None, None


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


class _CarriedRelational(torch.autograd.Function):
    """``losses.relational_kl`` with the teacher carried in the first columns, in one node (``carried_relational``)."""

    @staticmethod
    def forward(ctx: Any, xf: torch.Tensor, xr: torch.Tensor, inv_t: float) -> torch.Tensor:
        b = xf.shape[0]
        sq_t = xf.square().sum(1)
        nt = sq_t.sqrt().clamp_min(1e-12)
        n = (sq_t + xr.square().sum(1)).sqrt().clamp_min(1e-12)
        yt = xf * (inv_t**0.5 / nt)[:, None]
        a = torch.mm(yt, yt.T)  # cos_t / T
        w = nt / n  # the frozen block of cos_s is cos_t * w_i * w_j
        yr = xr / n[:, None]
        s = (a * w[:, None]).mul_(w[None, :]).addmm_(yr, yr.T, alpha=inv_t)  # cos_s / T
        a.diagonal().fill_(NEG_INF)
        s.diagonal().fill_(NEG_INF)
        a.sub_(a.amax(1, keepdim=True))
        e = a.exp()
        zt = e.sum(1, keepdim=True)
        a.sub_(zt.log())  # log P_t
        p_t = e.div_(zt)
        ms = s.amax(1, keepdim=True)
        s.sub_(ms)  # log P_s + log zs
        e_s = s.exp()
        zs = e_s.sum(1, keepdim=True)
        kl = (a.sub_(s).mul_(p_t).sum(1) + zs.log()[:, 0]).mean()  # sum_j P_t = 1; masked cells add 0 * finite
        g = e_s.div_(zs).sub_(p_t).mul_(inv_t / b)  # dKL/dcos_s = (P_s - P_t) / (B T); its diagonal is 0
        wg = torch.add(s, ms, out=p_t).mul_(g)  # (cos_s / T) * G, in P_t's buffer
        q = (wg.sum(1) + wg.sum(0)) / inv_t  # sum_j (G + G^T)_kj cos_kj: the part along y_k, which |y_k| = 1 removes
        ctx.save_for_backward(g, q, yr, n)
        return kl

    @staticmethod
    def backward(ctx: Any, g_out: torch.Tensor) -> tuple[Any, ...]:
        g, q, yr, n = ctx.saved_tensors
        grad_yr = torch.addmm(g @ yr, g.T, yr)  # (G + G^T) @ y, trainable columns
        return None, grad_yr.sub_(q[:, None] * yr).div_(n[:, None]).mul_(g_out), None


def carried_relational(*, student: torch.Tensor, frozen: int, temperature: float) -> torch.Tensor:
    """``losses.relational_kl(student=, teacher=None, frozen=)`` in one autograd node: the teacher's cosines are
    those of the first ``frozen`` columns (the carried teacher vectors, no gradient), the student's those of the whole
    rows. Four (B, B) buffers and closed-form gradients (``dKL/dcos_s = (P_s - P_t) / (B T)``, then through the
    row normalisation onto the trainable columns) instead of autograd's chain of (B, B) temporaries. Same value and
    gradient as the Gram-over-norms form (tests/student/test_fused.py)."""
    if student.ndim != 2 or not 0 < frozen < student.shape[1]:
        raise ValueError(f"carried_relational: frozen={frozen} must split the {tuple(student.shape)} rows' columns")
    return _CarriedRelational.apply(student[:, :frozen].detach(), student[:, frozen:], 1.0 / temperature)


def relational_kl_of(*, cos_s: torch.Tensor, cos_t: torch.Tensor, temperature: float) -> torch.Tensor:
    """``losses.relational_kl`` from the two (B, B) cosine matrices: KL(softmax(cos_t / T) || softmax(cos_s / T))
    per row over the other rows (diagonal dropped), mean over rows; gradient ``(P_s - P_t) / (B T)`` in closed form."""
    if cos_s.ndim != 2 or cos_s.shape[0] != cos_s.shape[1] or cos_t.shape != cos_s.shape:
        raise ValueError(f"relational_kl_of: two square matrices of one shape expected, got {tuple(cos_s.shape)} "
                         f"and {tuple(cos_t.shape)}")
    return _RelationalKL.apply(cos_s, cos_t.detach(), 1.0 / temperature)


def in_batch_losses(*, users: torch.Tensor, cols: torch.Tensor, item_ids: torch.Tensor, temperature: float,
                    fixed: torch.Tensor | None = None, log_q: torch.Tensor | None = None,
                    teacher: torch.Tensor | None = None,
                    rank_temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """users (B, d) and cols (C >= B, d): the scores ``S = users @ cols.T`` [+ ``fixed`` (B, C), a block without
    gradient, e.g. the carried teacher columns' products], row i's positive in column i; item_ids (C,) the columns'
    ids (a column repeating row i's positive is not a candidate of row i), log_q (C,) or None, teacher (B, C')
    logits of the teacher or None -> (L_rec, L_rank); L_rank is 0 without a teacher. Gradients reach ``users`` and
    ``cols``."""
    b, c = users.shape[0], cols.shape[0]
    if b > c or cols.shape[1] != users.shape[1] or item_ids.shape != (c,):
        raise ValueError(f"in_batch_losses: users {tuple(users.shape)} and cols {tuple(cols.shape)} need B <= C, one "
                         f"width and an id per column (item_ids {tuple(item_ids.shape)})")
    if fixed is not None and fixed.shape != (b, c):
        raise ValueError(f"in_batch_losses: fixed {tuple(fixed.shape)} must be the score matrix's shape {(b, c)}")
    if teacher is not None and (teacher.shape[0] != b or teacher.shape[1] > c):
        raise ValueError(f"in_batch_losses: teacher {tuple(teacher.shape)} must have the rows of the scores "
                         f"{(b, c)} and at most their columns")
    rows, dcols = duplicate_pairs(item_ids=item_ids, n_rows=b)
    return _InBatch.apply(users, cols, None if fixed is None else fixed.detach(), rows, dcols, log_q,
                          None if teacher is None else teacher.detach(), 1.0 / temperature, float(rank_temperature))
