"""Config of the student stage: a TorchRec two-tower trained with optional teacher distillation.

Defaults are tuned for Amazon Beauty (22k users, 12k items, ~6 events per user) on 2 CPU cores,
where each variant must train in about a minute and a half. The four ablation variants are just
configs (see ``VARIANTS``): the undistilled student sets both lambdas to 0.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

Sharding = Literal["auto", "table_wise", "column_wise", "row_wise", "data_parallel"]
TeacherEmb = Literal["raw", "adapted"]
Negatives = Literal["in_batch", "mixed", "full"]
EmbLoss = Literal["cosine", "mse"]
TableOptimizer = Literal["rowwise_adagrad", "adam", "sgd"]


@dataclasses.dataclass(frozen=True)
class StudentConfig:
    # --- towers
    dim: int = 64  # output vector size; 64 is the usual retrieval sweet spot and keeps FAISS cheap
    item_id_dim: int = 64  # item-id table, shared by the candidate and the user's history (one table,
    # several features): history and candidate live in one space, which is the strongest cheap signal
    user_id_dim: int = 0  # 0 = no user-id table. With ~5 train events per user an id vector mostly
    # memorises; the history carries the user. Set > 0 for dense-history domains.
    brand_dim: int = 16  # brand and leaf-category tables, shared by item tower and history bags
    category_dim: int = 16
    history_len: int = 50  # history truncated to the last N items (Beauty median is ~6, so rarely binds)
    recent_len: int = 3  # a second bag over the last few items: Beauty is strongly sequential
    mlp: tuple[int, ...] = (256,)  # hidden sizes of both tower MLPs (one layer is enough at this scale)
    id_dropout: float = 0.2  # chance a training candidate loses its id vector, so the tower learns to
    # lean on text/brand/category and an item never seen in training still gets a useful vector
    use_text: bool = True  # the teacher's item text embedding as a dense input through a projection
    teacher_emb: TeacherEmb = "raw"  # which teacher item embedding feeds the tower and the KD losses
    # --- training
    lr: float = 2e-3  # Adam(W) for the dense parts (MLPs, projections)
    table_lr: float = 0.05  # fused rowwise Adagrad for the tables (sparse rows: adagrad is the TorchRec default)
    table_optimizer: TableOptimizer = "rowwise_adagrad"
    weight_decay: float = 1e-5
    batch_size: int = 1024  # large batches = more in-batch negatives and fewer steps on a slow CPU
    epochs: int = 10  # Beauty peaks after 3-4 epochs at these learning rates; early stopping ends it
    patience: int = 2  # epochs without a better validation NDCG@10 before stopping
    max_seconds: float = 0.0  # 0 = no wall-clock cap; else stop after the first epoch past it (keeps the best)
    negatives: Negatives = "in_batch"  # in-batch softmax with logQ; "mixed" adds uniform negatives;
    # "full" scores the whole catalogue each step (exact softmax, affordable when the catalogue is small)
    n_uniform_negatives: int = 1024  # extra uniform negatives for "mixed"
    temperature: float = 0.07  # softmax temperature on cosine scores (0.05-0.1 is the usual range)
    logq: bool = True  # Yi et al. 2019 correction for popularity-biased in-batch negatives
    # --- distillation (total = L_rec + lambda_emb * L_emb + lambda_rank * L_rank)
    lambda_emb: float = 0.0
    emb_loss: EmbLoss = "cosine"
    lambda_relational: float = 1.0  # weight of the relational (in-batch similarity KL) part within L_emb
    relational_temperature: float = 0.1
    lambda_rank: float = 0.0
    rank_temperature: float = 1.0  # temperature on teacher scores (0..1 cosines -> /0.05 below)
    rank_teacher_scale: float = 20.0  # teacher cosines are multiplied by this before the temperature
    rank_k: int = 20  # teacher top-K candidates per user used by the ranking loss
    rank_position_weight: float = 0.0  # >0: Tang & Wang 2018 weights exp(-rank / this) on the list
    rank_users_per_step: int = 256  # users per step that get a ranking-distillation list
    # --- distribution
    nproc: int = 1  # processes; > 1 launches torchrun workers (gloo on CPU, nccl on CUDA)
    sharding: Sharding = "auto"  # row_wise needs CUDA; on CPU it falls back to table_wise (logged)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # --- export
    quantize_int8: bool = True  # also write int8 per-row-quantised item vectors + scales
    eval_batch_size: int = 2048
    seed: int = 0


def variant(name: str, **overrides: object) -> StudentConfig:
    """The ablation variants: ``student_no_kd``, ``student_kd_emb``, ``student_kd_rank``, ``student_kd``."""
    if name not in VARIANTS:
        raise ValueError(f"unknown student variant {name!r}; expected one of {sorted(VARIANTS)}")
    return dataclasses.replace(StudentConfig(**VARIANTS[name]), **overrides)  # type: ignore[arg-type]


VARIANTS: dict[str, dict[str, object]] = {
    "student_no_kd": {"lambda_emb": 0.0, "lambda_rank": 0.0},
    "student_kd_emb": {"lambda_emb": 0.5, "lambda_rank": 0.0},
    "student_kd_rank": {"lambda_emb": 0.0, "lambda_rank": 0.5},
    "student_kd": {"lambda_emb": 0.5, "lambda_rank": 0.5},
}
