"""The training objective: towers + losses in one module, so DMP/DDP see every trainable parameter.

``forward(step)`` returns the separate loss terms; the total is
``L_rec + λ_emb·L_emb + λ_rank·L_rank``. L_rank is by default the in-batch form: each example's list
is the global batch's positives, scored by the teacher from the same history prefix. With several processes the positives' vectors are
all-gathered so every rank scores its users against the whole global batch (same negatives as the
1-process run); ``torch.distributed.nn.all_gather`` carries the gradients back to their owners.

L_rec and the in-batch L_rank read ONE (B, C) score matrix (``recsys.student.fused``: its matmul, both losses and their
closed-form gradients in one autograd node). With the teacher carried (``teacher_is_carried``), the towers' first
``carry_dim`` columns are ``sqrt(a)`` times the adapted teacher's vectors, so that matrix's carried block, taken
outside autograd, is ``a`` times the teacher's own scores: L_rank's teacher logits and the relational KL's teacher
cosines are read off it instead of multiplying the teacher's vectors again.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from recsys.student.config import StudentConfig, teacher_is_carried
from recsys.student.dataset import StepBatch
from recsys.student.fused import in_batch_losses
from recsys.student.losses import (
    EmbeddingDistillLoss,
    RankingDistillLoss,
    RetrievalLoss,
    candidate_mask,
    carried_products,
    split_products,
)
from recsys.student.towers import TwoTower


def _gather(x: torch.Tensor, *, grad: bool) -> torch.Tensor:
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return x
    if grad:
        from torch.distributed.nn.functional import all_gather

        with warnings.catch_warnings():  # torch 2.13 marks it deprecated (a FutureWarning in every worker's log); the
            # replacement it names lives in the private ``torch.distributed._functional_collectives``
            warnings.simplefilter("ignore", FutureWarning)
            return torch.cat(all_gather(x), dim=0)
    out = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(out, x.contiguous())
    return torch.cat(out, dim=0)


class StudentObjective(nn.Module):
    """Two-tower + L_rec (+ L_emb, L_rank). ``towers`` stays loss-free and is what gets exported."""

    def __init__(self, *, cfg: StudentConfig, towers: TwoTower, teacher_dim: int, teacher_scale: float = 0.0,
                 n_items: int = 0) -> None:
        """``teacher_scale``: teacher cosine -> logit, 1 / the teacher adapter's temperature (``StudentData``);
        ``n_items``: catalogue size, where the full softmax drops the padding rows past it."""
        super().__init__()
        self.cfg, self.towers = cfg, towers
        self.n_items = n_items
        if cfg.lambda_rank > 0 and teacher_scale <= 0:
            raise ValueError("ranking distillation needs teacher_scale > 0 (1 / the teacher's adapter temperature, "
                             "read from the teacher's artifact metadata)")
        self.teacher_scale = float(teacher_scale)
        self.rec = RetrievalLoss(temperature=cfg.temperature)
        self.emb = EmbeddingDistillLoss(dim=towers.out_dim, teacher_dim=teacher_dim, kind=cfg.emb_loss,
                                        lambda_relational=cfg.lambda_relational,
                                        relational_temperature=cfg.relational_temperature) \
            if cfg.lambda_emb > 0 else None
        self.rank = RankingDistillLoss(temperature=cfg.rank_temperature, position_scale=cfg.rank_position_weight) \
            if cfg.lambda_rank > 0 else None
        # the towers carry the teacher's vectors: the carried block of the score matrix is the teacher's scores
        # times the carry weight, and the carried columns of the positives are the teacher's item vectors
        self.carried = bool(towers.carry_dim) and teacher_is_carried(cfg)

    def _teacher_logits(self, step: StepBatch, *, fixed: torch.Tensor | None,
                        order: torch.Tensor) -> torch.Tensor | None:
        """The teacher's logits over the in-batch list (B, C'), no gradient; None when the step has no teacher.
        Carried: the carried block of the score matrix over the carry weight (the teacher's own inner products);
        else the step's per-example teacher vectors against its positives' [and uniform negatives'] vectors."""
        with torch.no_grad():
            if self.carried and fixed is not None:
                return fixed * (self.teacher_scale / self.cfg.teacher_carry)
            if step.teacher_users is None or step.teacher_items is None:
                return None
            t_items = step.teacher_items[order]
            if step.n_uniform and step.teacher_uniform is not None:  # the list also spans the catalogue
                t_items = torch.cat([t_items, step.teacher_uniform])
            return step.teacher_users @ t_items.T * self.teacher_scale

    def forward(self, step: StepBatch) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        users, items = self.towers(step.batch)
        b = step.n_pos
        u, pos = users[:b], items[:b]
        ids = step.batch.item_ids[:b]
        log_q = torch.from_numpy(step.log_q) if cfg.logq else None
        all_pos, all_ids = _gather(pos, grad=True), _gather(ids, grad=False)
        all_lq = _gather(log_q, grad=False) if log_q is not None else None
        rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
        # put this rank's positives first so row i's label is column i, as sampled_softmax expects
        order = torch.cat([torch.arange(rank * b, (rank + 1) * b), torch.arange(0, rank * b),
                           torch.arange((rank + 1) * b, world * b)])
        frozen = self.towers.carry_dim  # the carried teacher columns: batch data, no gradient
        zero = torch.zeros((), dtype=u.dtype)
        cols, col_ids = all_pos[order], all_ids[order]
        in_batch_kd = self.rank is not None and cfg.rank_candidates == "in_batch"
        if step.n_full:  # exact softmax over the catalogue: every rank's slice, gathered with its gradient
            lo = b + step.n_uniform
            cat = _gather(items[lo:lo + step.n_full], grad=True)[:self.n_items]
            out = {"rec": self.rec(users=u, all_items=cat, targets=ids)}
            if in_batch_kd:  # its list: the global batch's positives
                fixed, scores = split_products(u, cols, frozen=frozen)
                mask = candidate_mask(item_ids=col_ids, n_rows=b)
                teacher = self._teacher_logits(step, fixed=fixed, order=order)
                out["rank"] = zero + 0.0 * users.sum() if teacher is None else self.rank.of_logits(
                    student=scores[:, :teacher.shape[1]] / cfg.temperature, teacher=teacher,
                    mask=mask[:, :teacher.shape[1]])
        else:
            # one (b, C) score matrix for L_rec and the in-batch L_rank: the global batch's positives, then the
            # uniform negatives (the same columns, the same duplicate mask); logQ only in L_rec
            lq = all_lq[order] if all_lq is not None else None
            if step.n_uniform:
                cols = torch.cat([cols, items[b:b + step.n_uniform]])
                col_ids = torch.cat([col_ids, step.batch.item_ids[b:b + step.n_uniform]])
                lq_uni = torch.full((step.n_uniform,), step.uniform_log_q)
                lq = torch.cat([lq if lq is not None else torch.zeros(len(order)), lq_uni])
            fixed = carried_products(u, cols, frozen=frozen)  # no gradient, added into the node's score matrix
            teacher = self._teacher_logits(step, fixed=fixed, order=order) if in_batch_kd else None
            rec, kd = in_batch_losses(users=u[:, frozen:], cols=cols[:, frozen:], item_ids=col_ids, fixed=fixed,
                                      temperature=cfg.temperature, log_q=lq, teacher=teacher,
                                      rank_temperature=cfg.rank_temperature)
            out = {"rec": rec}
            if in_batch_kd:
                out["rank"] = kd if teacher is not None else zero + 0.0 * users.sum()
        if self.emb is not None and step.teacher_pos is not None:
            out["emb"] = self.emb(student=pos, teacher=torch.from_numpy(step.teacher_pos), frozen=frozen,
                                  carried=self.carried)
        elif cfg.lambda_emb > 0:
            out["emb"] = zero
        if self.rank is not None and not in_batch_kd:  # the teacher's top-K lists
            if step.n_kd:
                k = step.topk_scores.shape[1]
                kd_u = users[b:b + step.n_kd]
                kd_v = items[b + step.n_uniform + step.n_full:].reshape(step.n_kd, k, -1)
                student = (kd_u[:, None, :] * kd_v).sum(-1) / cfg.temperature
                teacher = torch.from_numpy(step.topk_scores * self.teacher_scale)
                out["rank"] = self.rank(student=student, teacher=teacher, mask=torch.from_numpy(step.topk_mask))
            else:
                out["rank"] = zero + 0.0 * users.sum()
        out["total"] = out["rec"] + cfg.lambda_emb * out.get("emb", zero) + cfg.lambda_rank * out.get("rank", zero)
        return out


def to_numpy_losses(losses: dict[str, torch.Tensor]) -> dict[str, float]:
    return {k: float(np.float64(v.detach())) for k, v in losses.items()}
