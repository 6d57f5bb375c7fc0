"""Config of the student stage: a TorchRec two-tower trained with optional teacher distillation.

Defaults ARE the distilled student (``student_kd``), tuned for Amazon Beauty (22k users, 12k items,
~6 events per user) on 2 CPU cores, where each variant must train in about a minute and a half.
The ablation is derived by zeroing distillation weights and nothing else (``pipelines/config.py``):
``student_no_kd`` = lambda_emb = lambda_rank = 0; ``student_kd_emb`` = lambda_rank = 0;
``student_kd_rank`` = lambda_emb = 0. Every other field is shared by all four variants.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from recsys.config import ranged

Sharding = Literal["auto", "table_wise", "column_wise", "row_wise", "data_parallel"]
TeacherEmb = Literal["raw", "adapted"]
RankCandidates = Literal["in_batch", "topk"]
Negatives = Literal["in_batch", "mixed", "full"]
EmbLoss = Literal["cosine", "mse"]
UserTowerKind = Literal["pooled", "sequential"]
RankTeacher = Literal["teacher", "intermediate"]
TableOptimizer = Literal["rowwise_adagrad", "adam", "sgd"]


@dataclasses.dataclass(frozen=True)
class StudentConfig:
    # --- towers
    dim: int = ranged(64, ge=1)  # output vector size; 64 is the usual retrieval sweet spot and keeps FAISS
    # cheap
    item_id_dim: int = ranged(64, ge=1)  # item-id table, shared by the candidate and the user's history (one
    # table, several features): history and candidate live in one space, which is the strongest cheap signal
    user_id_dim: int = ranged(0, ge=0)  # 0 = no user-id table. With ~5 train events per user an id vector
    # mostly memorises; the history carries the user. Set > 0 for dense-history domains.
    brand_dim: int = ranged(16, ge=1)  # brand and leaf-category tables, shared by item tower and history bags
    category_dim: int = ranged(16, ge=1)
    history_len: int = ranged(50, ge=1)  # history truncated to the last N items (Beauty median is ~6, so
    # rarely binds)
    recent_len: int = ranged(1, ge=0)  # a second bag over the last few items. Beauty is strongly sequential:
    # the last item alone (1) beat the last three (3) by +10-12 % test NDCG@10 for both the distilled and the
    # plain student
    user_tower: UserTowerKind = "pooled"  # "pooled": means of the history bags (above) -> MLP. "sequential":
    # causal self-attention over the last seq_len history items (a TorchRec EmbeddingCollection, its own
    # sequence table: an EC cannot share the EBC's item table), the last position's output + the brand and
    # category bags -> MLP (recsys.student.sequence). Pooled wins on valid NDCG@10 of student_kd: Beauty 0.0752 vs
    # 0.0657 sequential, Toys 0.0768 vs 0.0599 (5 epochs each, 2 processes); sequential is ~5x slower per example
    seq_len: int = ranged(50, ge=1)  # "sequential": history items the attention reads (Beauty median ~6)
    seq_layers: int = ranged(2, ge=1, le=4)  # "sequential": pre-LN transformer blocks (SASRec uses 2)
    seq_heads: int = ranged(2, ge=1)  # "sequential": attention heads; must divide item_id_dim
    seq_dropout: float = ranged(0.2, ge=0, lt=1)  # "sequential": on the inputs and each residual branch
    mlp: tuple[int, ...] = ranged((256,), ge=1)  # hidden sizes of both tower MLPs (one layer is enough at
    # this scale)
    id_dropout: float = ranged(0.2, ge=0, lt=1)  # chance a training candidate loses its id vector, so the
    # tower learns to lean on text/brand/category and an item never seen in training still gets a useful
    # vector
    use_text: bool = True  # the teacher's item text embedding as a dense input through a projection
    text_emb: TeacherEmb = "raw"  # which teacher item embedding feeds the item tower as a content input.
    # "raw" = the frozen text encoder's vector (pure content); "adapted" was fitted on interactions by the
    # teacher, so feeding it would be distillation through the input and would blur the ablation
    teacher_carry: float = ranged(0.5, ge=0, lt=1)  # a > 0: both towers carry the adapted teacher's vector
    # (item: its own; user: the teacher's recency-pooled history) and score a*cos_teacher + (1-a)*cos_student; the id/brand/category
    # paths learn the residual. 0.5 vs 0 (the old student), valid NDCG@10 of student_kd: Beauty 0.0745 vs
    # 0.0691, Toys 0.0776 vs 0.0688. student_no_kd sets it to 0 (nothing of the adapted teacher)
    carry_count_k: float = ranged(10.0, ge=0)  # k > 0: per-item carry (``recsys.student.carry``): an item with n
    # training events scores alpha cos_teacher + beta cos_student, beta = (1-a) n/(n+k), alpha = a + carry_shift *
    # (1-a) k/(n+k); an item without events is scored by its teacher vector alone. Applied where item vectors are
    # encoded (each epoch's validation, the export), not in training batches; the user side is unchanged. 0 = off.
    # Valid NDCG@10 of the same student_kd vectors (overall / tail / cold), k=10 vs 0: Beauty 0.0758 / 0.0547 /
    # 0.138 vs 0.0752 / 0.0282 / 0.000 (teacher_adapted 0.0534 / 0.0472 / 0.0124); Toys 0.0817 / 0.0720 / 0.184
    # vs 0.0768 / 0.0438 / 0.0233 (teacher_adapted 0.0580 / 0.0591 / 0.0805). Beauty, shift 0.75: k=3 tail 0.0419
    # (below the teacher), k=10 0.0547; k=30 at shift 0.25 loses overall (0.0647)
    carry_shift: float = ranged(0.75, ge=0, le=1)  # share of the residual weight an item did not earn that moves
    # to its teacher part (1: alpha + beta = 1; 0: the residual is only shrunk). Beauty valid at k=10, overall /
    # tail: shift 0 0.0629 / 0.0057, 0.25 0.0698 / 0.0178, 0.5 0.0765 / 0.0357, 0.6 0.0776 / 0.0428, 0.75 0.0758 /
    # 0.0547, 1 0.0615 / 0.0673 (at 1 the items without events, scored by cos_teacher alone, crowd the lists: the
    # teacher's cosines run higher than the residual's)
    carry_fit: bool = True  # choose carry_shift per run on valid (``recsys.student.carry_fit``) from
    # carry_fit_shifts after training (the epochs are validated at carry_shift): the best valid NDCG@10 among the
    # shifts whose tail/cold slices reach the adapted teacher's. Picks 0.75 on Beauty and Toys (as fixed before) and
    # 0.25 on UCI Online Retail, where 0.75 fills the lists with items nobody bought (valid 0.240 vs 0.209)
    carry_fit_shifts: tuple[float, ...] = ranged((0.0, 0.25, 0.5, 0.75), ge=0, le=1)
    carry_fit_min_targets: int = ranged(20, ge=1)  # a slice with fewer valid targets does not constrain the fit
    carry_fit_from: str = ""  # a variant of the same run whose chosen shift this one takes instead of fitting its
    # own ("" = fit its own when carry_fit). The main job's ablation twins take student_kd's: the shift is a setting
    # of the run, chosen once on the served student and shared like every other one (a twin's own fit ranked valid
    # 5 times, ~8.5 s of each in its lane; on Beauty and Toys every twin chose student_kd's shift anyway)
    # --- training
    lr: float = ranged(2e-3, gt=0)  # Adam(W) for the dense parts (MLPs, projections)
    table_lr: float = ranged(0.05, gt=0)  # fused rowwise Adagrad for the tables (sparse rows: adagrad is the
    # TorchRec default)
    table_optimizer: TableOptimizer = "rowwise_adagrad"
    weight_decay: float = ranged(1e-5, ge=0)
    batch_size: int = ranged(1024, ge=1)  # large batches = more in-batch negatives and fewer steps on a slow
    # CPU
    epochs: int = ranged(5, ge=0)  # same cap for every variant. On Beauty the undistilled student peaks at
    # its 3rd epoch and early stopping ends it after the 5th; distillation regularises, so it peaks later
    # (4th-5th)
    patience: int = ranged(2, ge=1)  # epochs without a better validation NDCG@10 before stopping
    max_seconds: float = ranged(0.0, ge=0)  # 0 = no wall-clock cap; else stop after the first epoch past it
    # (keeps the best)
    negatives: Negatives = "in_batch"  # in-batch softmax with logQ; "mixed" adds uniform negatives;
    # "full" scores the whole catalogue each step (exact softmax, affordable when the catalogue is small)
    n_uniform_negatives: int = ranged(1024, ge=0)  # extra uniform negatives for "mixed"
    temperature: float = ranged(0.07, gt=0)  # softmax temperature on cosine scores (0.05-0.1 is the usual
    # range)
    logq: bool = True  # Yi et al. 2019 correction for popularity-biased in-batch negatives
    # --- distillation (total = L_rec + lambda_emb * L_emb + lambda_rank * L_rank)
    teacher_emb: TeacherEmb = "adapted"  # teacher item embedding the KD losses read (targets, never inputs)
    lambda_emb: float = ranged(0.1, ge=0)  # small: on Beauty embedding KD alone is neutral (valid +2 %, test
    # -2 % at 0.5)
    emb_loss: EmbLoss = "cosine"
    lambda_relational: float = ranged(1.0, ge=0)  # weight of the relational (in-batch similarity KL) part
    # within L_emb
    relational_temperature: float = ranged(0.1, gt=0)
    lambda_rank: float = ranged(1.0, ge=0)  # the term that helps: Beauty test NDCG@10 +11 % over no KD at 1.0
    # (T = 2)
    rank_candidates: RankCandidates = "in_batch"  # "in_batch": every example's list is the global batch's
    # positives, scored by the teacher user vector of the example's history prefix (B x B, no extra tower
    # forwards); "topk": the teacher's top-K list per sampled user (K extra item rows per user, ~3x slower)
    rank_temperature: float = ranged(2.0, gt=0)  # on both teacher and student logits in the KL; 2 (softer
    # lists, Hinton's "dark knowledge") beat 1 on Beauty
    # The teacher-side quantities of the ranking distillation (its cosine -> logit scale = 1 / its adapter
    # temperature; the recency decay and history length of its user pooling) are not set here: they are read
    # from the teacher's artifact metadata (``recsys.contracts.teacher.TeacherMeta``), so they cannot drift.
    rank_teacher: RankTeacher = "teacher"  # whose vectors the in-batch ranking KL reads. "intermediate":
    # multi-level distillation, the exported user tower (one vector per training prefix) and item vectors of
    # the variant ``intermediate`` (itself distilled from the teacher), its temperature as the logit scale.
    # "teacher" stays: from the sequential intermediate, valid NDCG@10 Beauty 0.0734 vs 0.0752, Toys 0.0731 vs
    # 0.0768 (student_kd_ml vs student_kd)
    intermediate: str = "student_intermediate"  # the variant read when rank_teacher = "intermediate"
    rank_k: int = ranged(20, ge=1)  # "topk": teacher top-K candidates per user
    rank_position_weight: float = ranged(0.0, ge=0)  # "topk", >0: Tang & Wang 2018 weights exp(-rank / this)
    # on the list
    rank_users_per_step: int = ranged(256, ge=1)  # "topk": users per step that get a ranking-distillation
    # list
    # --- distribution
    nproc: int = ranged(2, ge=1)  # processes; > 1 launches torchrun workers (gloo on CPU, nccl on CUDA)
    sharding: Sharding = "auto"  # row_wise needs CUDA; on CPU it falls back to table_wise (logged)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # --- export
    quantize_int8: bool = True  # also write int8 per-row-quantised item vectors + scales
    test_metrics: bool = True  # rank the test split at export: the variant's own test figures (its meta, the
    # manifest, ``recsys student``). The main job sets it off (``pipelines.evaluate``): its evaluate stage ranks
    # test for every row anyway, with slices and intervals (the export's test ranking took 1.8-3.8 s a variant)
    eval_batch_size: int = ranged(2048, ge=1)
    # 0 = every user. N > 0: validation (each epoch) and the export's metrics rank the catalogue for a seeded
    # sample of N users with a target: each full-ranking pass costs users x items, the first thing to break
    # at 1M+ users (the eval stage reports on its own sample, with intervals)
    eval_users: int = ranged(0, ge=0)
    # warm start (retraining): a previous run's ``student/<variant>`` dir; its best weights initialise this
    # model, table rows copied by id (ids are stable across retrains, new users/items get fresh rows at the
    # end), and its optimizers' last states continue (fresh Adagrad/Adam states would undo the warm start)
    init_from: str | None = None
    # incremental training (retraining): next-item examples whose target event is at/after ``train_since``
    # (a timestamp, seconds) form the new window, trained on in full every epoch; of the older examples a
    # uniform sample of ``replay_fraction`` is drawn afresh each epoch (seeded by seed and epoch, so a resumed
    # run draws the same), which keeps the old data in view at a fraction of its cost. Histories still hold
    # every past event; validation and export are unchanged. None = every example every epoch (full retrain)
    train_since: int | None = ranged(None, ge=0)
    replay_fraction: float = ranged(0.0, ge=0, le=1)  # 0 with a window = the new window only (forgetting is
    # then likely)
    seed: int = ranged(0, ge=0)


# The distillation ablation: variant (a metrics.json row) -> the weights it zeroes. ``StudentConfig()`` itself
# is
# ``student_kd``; the pipelines and ``launch.py`` both derive the other variants from this one table.
ABLATION: dict[str, dict[str, float]] = {
    "student_no_kd": {"lambda_emb": 0.0, "lambda_rank": 0.0, "teacher_carry": 0.0},  # nothing of the adapted teacher
    "student_kd_emb": {"lambda_rank": 0.0},
    "student_kd_rank": {"lambda_emb": 0.0},
}


PruneScope = Literal["layer", "global"]


@dataclasses.dataclass(frozen=True)
class PruneConfig:
    """Post-training pruning of the served student (``recsys.student.prune``): the ``student_kd_pruned`` row
    and the size table beside int8. Costs a few seconds of numpy (no training), so it is on by default."""

    enabled: bool = True
    dense_sparsity: float = ranged(0.5, ge=0, lt=1)  # share of each dense matrix's weights set to zero
    # (tower MLPs and the text projection; biases kept)
    scope: PruneScope = "layer"  # "layer": every matrix loses that share; "global": one |w| threshold over all
    min_item_count: int = ranged(10, ge=0)  # items with fewer training events lose their id row (their vector:
    # the id path off, as for a cold item); 0 keeps every row


# Multi-level distillation (``pipelines`` ``multilevel = true``): teacher -> the intermediate (the sequential
# student) -> the served-size pooled student, whose ranking KL reads the intermediate's vectors. Trained in this
# order; each is a metrics.json row.
MULTILEVEL: dict[str, dict[str, object]] = {
    "student_intermediate": {"user_tower": "sequential"},
    "student_kd_ml": {"rank_teacher": "intermediate", "intermediate": "student_intermediate"},
}


def teacher_is_carried(cfg: StudentConfig) -> bool:
    """The towers carry the very vectors the ranking distillation reads as its teacher (the adapted teacher's item
    vectors and their recency pooling of the history prefix): the objective then reads the teacher's in-batch
    scores off the carried block of the student's own score matrix (``recsys.student.objective``) and the data
    needs no per-example teacher vectors."""
    return cfg.teacher_carry > 0 and cfg.rank_teacher == "teacher"


def variant_overrides(name: str) -> dict[str, object]:
    """The fields a named variant sets over the base config ({} for any other name)."""
    return {**ABLATION.get(name, {}), **MULTILEVEL.get(name, {})}
