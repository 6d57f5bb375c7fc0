"""Losses of the student: retrieval softmax, embedding distillation, ranking distillation (over the
in-batch candidates, the default, or over the teacher's top-K list).

Each is a pure function from vectors/scores to a scalar, wrapped in a small ``nn.Module`` that holds
its hyper-parameters (and, for embedding distillation, the learned projection). The towers never see
these; the training loop combines them as ``L_rec + λ_emb·L_emb + λ_rank·L_rank``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from recsys.student.fused import NEG_INF, carried_relational, relational_kl_of


def sampled_softmax(
    *, users: torch.Tensor, items: torch.Tensor, temperature: float, item_ids: torch.Tensor | None = None,
    log_q: torch.Tensor | None = None, extra_items: torch.Tensor | None = None,
    extra_ids: torch.Tensor | None = None, extra_log_q: torch.Tensor | None = None,
) -> torch.Tensor:
    """In-batch sampled softmax with logQ correction (Yi et al., "Sampling-Bias-Corrected Neural
    Modeling for Large Corpus Item Recommendations", RecSys 2019), optionally mixed with extra uniform
    negatives (Yang et al., "Mixed Negative Sampling for Learning Two-tower Neural Networks", WWW 2020).

    Row i's positive is ``items[i]``; every other batch item (and every extra item) is a negative.
    ``items`` may have more rows than ``users`` (e.g. positives all-gathered from other processes).
    ``log_q`` (B,) is the log sampling probability of each batch item, subtracted from its logit;
    batch items equal to row i's positive (duplicates) are masked out as false negatives.

    Args:
        users: (B, d), items: (B' >= B, d), rows :B aligned positives; item_ids: (B',) for the duplicate mask.
        extra_items: (M, d) extra negatives with ids (M,) and log-probabilities (M,).
    Returns: scalar mean cross-entropy.
    """
    logits = users @ items.T / temperature
    if log_q is not None:
        logits = logits - log_q[None, :]
    b = users.shape[0]
    if item_ids is not None:
        diag = torch.arange(b, device=users.device)[:, None] == torch.arange(items.shape[0], device=users.device)
        dup = (item_ids[:b, None] == item_ids[None, :]) & ~diag
        logits = logits.masked_fill(dup, NEG_INF)
    if extra_items is not None:
        ex = users @ extra_items.T / temperature
        if extra_log_q is not None:
            ex = ex - extra_log_q[None, :]
        if item_ids is not None and extra_ids is not None:
            ex = ex.masked_fill(item_ids[:b, None] == extra_ids[None, :], NEG_INF)
        logits = torch.cat([logits, ex], dim=1)
    return F.cross_entropy(logits, torch.arange(b, device=users.device))


def candidate_mask(*, item_ids: torch.Tensor, n_rows: int) -> torch.Tensor:
    """(n_rows, C) True where column j is a candidate of row i: every column except the ones that repeat row i's
    positive ``item_ids[i]`` (a false negative), column i itself kept. ``item_ids`` (C >= n_rows,) are the columns'
    ids, rows :n_rows aligned with the rows' positives (the mask of ``sampled_softmax`` and
    ``in_batch_listwise_kl``)."""
    cols = torch.arange(item_ids.shape[0], device=item_ids.device)
    diag = torch.arange(n_rows, device=item_ids.device)[:, None] == cols
    return ~((item_ids[:n_rows, None] == item_ids[None, :]) & ~diag)


def softmax_of_logits(*, logits: torch.Tensor, mask: torch.Tensor | None = None,
                      log_q: torch.Tensor | None = None) -> torch.Tensor:
    """``sampled_softmax`` from its logits (B, C) (scores over the temperature, row i's positive in column i):
    minus ``log_q`` (C,), columns outside ``mask`` (``candidate_mask``) dropped -> scalar mean cross-entropy."""
    if log_q is not None:
        logits = logits - log_q[None, :]
    if mask is not None:
        logits = logits.masked_fill(~mask, NEG_INF)
    return F.cross_entropy(logits, torch.arange(logits.shape[0], device=logits.device))


def full_softmax(*, users: torch.Tensor, all_items: torch.Tensor, targets: torch.Tensor,
                 temperature: float) -> torch.Tensor:
    """Exact softmax over the whole catalogue. users (B, d), all_items (N, d), targets (B,) -> scalar."""
    return F.cross_entropy(users @ all_items.T / temperature, targets)


class RetrievalLoss(nn.Module):
    """L_rec: sampled softmax (in-batch + logQ [+ uniform]) or full softmax; see ``sampled_softmax``."""

    def __init__(self, *, temperature: float) -> None:
        super().__init__()
        self.temperature = temperature

    def forward(self, **kw: torch.Tensor) -> torch.Tensor:
        if "all_items" in kw:
            return full_softmax(temperature=self.temperature, **kw)
        return sampled_softmax(temperature=self.temperature, **kw)


def embedding_alignment(*, student: torch.Tensor, teacher: torch.Tensor, kind: str = "cosine") -> torch.Tensor:
    """Point-wise alignment of projected student vectors (B, D) with teacher vectors (B, D).

    ``cosine``: mean(1 - cos); ``mse``: mean squared distance between the L2-normalised vectors (summed
    over D). Embedding distillation in the FitNets sense (Romero et al., ICLR 2015).
    """
    s, t = F.normalize(student, dim=1), F.normalize(teacher, dim=1)
    if kind == "cosine":
        return (1.0 - (s * t).sum(1)).mean()
    if kind == "mse":
        return ((s - t) ** 2).sum(1).mean()
    raise ValueError(f"embedding loss kind {kind!r}: expected 'cosine' or 'mse'")


def inner_products(a: torch.Tensor, b: torch.Tensor, *, frozen: int = 0) -> torch.Tensor:
    """``a @ b.T`` (A, d) x (B, d) -> (A, B), where the first ``frozen`` columns of both carry no gradient (the
    towers' carried teacher part, ``TwoTower._carry``): their product is taken outside autograd, so the backward
    pass multiplies only the ``d - frozen`` trainable columns (the same value; the sum is only split in two)."""
    return split_products(a, b, frozen=frozen)[1]


def split_products(a: torch.Tensor, b: torch.Tensor, *, frozen: int) -> tuple[torch.Tensor | None, torch.Tensor]:
    """``inner_products`` and its gradient-free part: -> (``a[:, :frozen] @ b[:, :frozen].T`` or None when
    ``frozen`` is 0, ``a @ b.T``). The carried part is the teacher's own score matrix times the carry weight, so the
    distillation losses read their teacher side off it instead of multiplying the teacher's vectors again."""
    fixed = carried_products(a, b, frozen=frozen)
    if fixed is None:
        return None, a @ b.T
    return fixed, fixed + a[:, frozen:] @ b[:, frozen:].T


def carried_products(a: torch.Tensor, b: torch.Tensor, *, frozen: int) -> torch.Tensor | None:
    """``a[:, :frozen] @ b[:, :frozen].T`` outside autograd (the carried teacher columns' products), None when
    ``frozen`` is 0."""
    if frozen <= 0:
        return None
    with torch.no_grad():
        return a[:, :frozen] @ b[:, :frozen].T


def relational_kl(*, student: torch.Tensor, teacher: torch.Tensor | None, temperature: float,
                  frozen: int = 0) -> torch.Tensor:
    """Relational distillation (Park et al., "Relational Knowledge Distillation", CVPR 2019, in its
    similarity-distribution form): KL(P_teacher || P_student) where row i of P is the softmax of
    row i's cosine similarities to the other in-batch items (diagonal excluded) over ``temperature``.

    student (B, d), teacher (B, D) -> scalar mean KL per row. ``frozen``: the first columns of ``student``
    that carry no gradient (``inner_products``); the cosines are then the Gram matrix over the row norms.
    ``teacher=None`` (with ``frozen``): the frozen columns ARE the teacher's vectors (times a constant, the towers'
    carry), and the teacher's cosines are read off their Gram matrix (``fused.carried_relational``, one node).
    """
    if teacher is None:
        return carried_relational(student=student, frozen=frozen, temperature=temperature)
    n = student.norm(dim=1).clamp_min(1e-12)  # F.normalize's x / max(|x|, eps), applied to the Gram matrix
    _, gram = split_products(student, student, frozen=frozen)
    with torch.no_grad():
        t = F.normalize(teacher, dim=1)
        cos_t = t @ t.T
    return relational_kl_of(cos_s=gram / (n[:, None] * n[None, :]), cos_t=cos_t, temperature=temperature)


class EmbeddingDistillLoss(nn.Module):
    """L_emb = align(W·v_student, v_teacher) + λ_rel · relational_kl(v_student, v_teacher).

    ``W`` (d -> D_teacher) is learned, so the student keeps its own geometry and only has to be
    linearly predictive of the teacher's text space.
    """

    def __init__(self, *, dim: int, teacher_dim: int, kind: str = "cosine", lambda_relational: float = 1.0,
                 relational_temperature: float = 0.1) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, teacher_dim, bias=False)
        self.kind, self.lam, self.tau = kind, lambda_relational, relational_temperature

    def forward(self, *, student: torch.Tensor, teacher: torch.Tensor, frozen: int = 0,
                carried: bool = False) -> torch.Tensor:
        """``frozen``: leading columns of ``student`` without gradient; ``carried``: they are ``teacher`` itself
        (times a constant), so the relational part reads the teacher's cosines off them (see ``relational_kl``)."""
        if frozen > 0:  # the frozen columns' product without an input gradient (the weight's gradient stays)
            w = self.proj.weight
            projected = F.linear(student[:, :frozen].detach(), w[:, :frozen]) + F.linear(student[:, frozen:], w[:, frozen:])
        else:
            projected = self.proj(student)
        loss = embedding_alignment(student=projected, teacher=teacher, kind=self.kind)
        if self.lam > 0 and student.shape[0] > 1:
            loss = loss + self.lam * relational_kl(student=student, teacher=None if carried and frozen else teacher,
                                                   temperature=self.tau, frozen=frozen)
        return loss


def listwise_kl(*, student: torch.Tensor, teacher: torch.Tensor, temperature: float = 1.0,
                weights: torch.Tensor | None = None, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Listwise ranking distillation: KL(softmax(teacher/T) || softmax(student/T)) · T² over each
    user's teacher top-K list (Hinton et al. 2015 applied to ranking lists). ``weights`` (K,) or (B, K)
    re-weight positions, e.g. ``exp(-rank/λ)`` as in Ranking Distillation (Tang & Wang, KDD 2018);
    they are normalised to mean 1 over valid positions. ``mask`` (B, K) marks valid candidates.

    student, teacher: (B, K) scores -> scalar mean over users.
    """
    if mask is not None:
        student, teacher = student.masked_fill(~mask, NEG_INF), teacher.masked_fill(~mask, NEG_INF)
    with torch.no_grad():  # masked columns: p_t = 0 and a finite log-ratio, so they add exactly 0
        log_pt = F.log_softmax(teacher.detach() / temperature, dim=1)
        p_t = log_pt.exp()
    terms = p_t * (log_pt - F.log_softmax(student / temperature, dim=1))
    if weights is not None:
        w = weights.expand_as(terms)
        if mask is not None:
            w = w.masked_fill(~mask, 0.0)
        n = mask.sum(1, keepdim=True) if mask is not None else torch.full_like(w[:, :1], w.shape[1])
        terms = terms * (w * n / w.sum(1, keepdim=True).clamp_min(1e-12))
    return terms.sum(1).mean() * temperature**2


def position_weights(k: int, *, scale: float) -> torch.Tensor:
    """Tang & Wang 2018 rank weights ``exp(-r / scale)`` for r = 0..K-1 (K,)."""
    return torch.exp(-torch.arange(k, dtype=torch.float32) / scale) if scale > 0 else torch.ones(k)


class RankingDistillLoss(nn.Module):
    """L_rank over a teacher top-K list: ``listwise_kl`` with temperature and optional position weights
    (see there). ``in_batch`` is the in-batch candidate-list form, ``in_batch_listwise_kl``."""

    def __init__(self, *, temperature: float = 1.0, position_scale: float = 0.0) -> None:
        super().__init__()
        self.temperature, self.position_scale = temperature, position_scale

    def in_batch(self, **kw: torch.Tensor | float) -> torch.Tensor:
        return in_batch_listwise_kl(temperature=self.temperature, **kw)  # type: ignore[arg-type]

    def of_logits(self, *, student: torch.Tensor, teacher: torch.Tensor,
                  mask: torch.Tensor | None = None) -> torch.Tensor:
        """``in_batch`` from the two sides' logits (B, C), the student's already computed (shared with L_rec)."""
        return listwise_kl(student=student, teacher=teacher, temperature=self.temperature, mask=mask)

    def forward(self, *, student: torch.Tensor, teacher: torch.Tensor,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        w = position_weights(student.shape[1], scale=self.position_scale).to(student.device) \
            if self.position_scale > 0 else None
        return listwise_kl(student=student, teacher=teacher, temperature=self.temperature, weights=w, mask=mask)


def in_batch_listwise_kl(*, users: torch.Tensor, items: torch.Tensor, teacher_users: torch.Tensor,
                         teacher_items: torch.Tensor, student_scale: float, teacher_scale: float,
                         temperature: float = 1.0, item_ids: torch.Tensor | None = None) -> torch.Tensor:
    """Ranking distillation over the in-batch candidate list: every example's candidates are the batch's
    positives (its own target included), the teacher's logits are ``teacher_scale · <t_u, t_i>`` and the
    student's ``student_scale · <u, v>``, and the loss is ``listwise_kl`` between the two softmaxes.

    This is the listwise KD of Hinton et al. ("Distilling the Knowledge in a Neural Network", 2015) over a
    candidate list as in Ranking Distillation (Tang & Wang, KDD 2018) and DLLM2Rec (Cui et al., "Distillation
    is All You Need for Practically Using Different Pre-trained Recommendation Models", RecSys 2024); with
    the hard-label softmax beside it, it is label smoothing towards the teacher's distribution. It costs one
    (B, B') matmul per side and no extra tower forwards, unlike a teacher top-K list. Columns that repeat
    row i's positive (other than column i) are masked, as in ``sampled_softmax``. Scores are raw (no logQ):
    the KD matches the rankings the vectors give at serving time.

    Args:
        users: (B, d), items: (B' >= B, d) student vectors, rows :B aligned with their positives.
        teacher_users: (B, D), teacher_items: (B', D) teacher vectors of the same rows/columns.
        item_ids: (B',) for the duplicate mask.
    Returns: scalar mean KL per row (times temperature²).
    """
    student = users @ items.T * student_scale
    with torch.no_grad():
        teacher = teacher_users @ teacher_items.T * teacher_scale
    mask = None
    if item_ids is not None:
        b = users.shape[0]
        diag = torch.arange(b, device=users.device)[:, None] == torch.arange(items.shape[0], device=users.device)
        mask = ~((item_ids[:b, None] == item_ids[None, :]) & ~diag)
    return listwise_kl(student=student, teacher=teacher, temperature=temperature, mask=mask)


def uniform_log_q(*, n_items: int, n_samples: int) -> float:
    """log of the expected count of an item among ``n_samples`` uniform draws from ``n_items``."""
    return math.log(n_samples / n_items)
