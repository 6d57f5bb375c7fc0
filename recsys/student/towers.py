"""The two towers: sparse tables in one TorchRec EmbeddingBagCollection, dense MLPs on top.

The towers turn a batch into L2-normalised vectors and know nothing of losses, indexes or FAISS.

User tower:  mean(history item ids) ‖ mean(last few item ids) ‖ mean(history brands) ‖
             mean(history categories) [‖ user id]  -> MLP -> (d,)
             ``user_tower = "sequential"``: the first two parts are replaced by causal self-attention over the
             last ``seq_len`` items of a TorchRec EmbeddingCollection (``t_seq_item``, feature ``seq_item``;
             ``recsys.student.sequence``), its last position's output. The EC has its own item table: TorchRec
             modules own their tables, so an EC cannot read the EBC's ``t_item``.
Item tower:  item id (dropped with prob ``id_dropout``) ‖ brand ‖ mean(category paths) ‖
             Linear(teacher text embedding)  -> MLP -> (d,)

The item-id table is shared by the candidate and both history bags (one table, three features), so
history and candidates live in one space; brand and category tables are shared the same way.

Teacher carry (``teacher_carry = a > 0``): each tower's output is ``[sqrt(a) t, sqrt(1 - a) r]`` where ``t`` is
the adapted teacher's vector (the item's own; for a user, the teacher's recency-pooled history) and ``r`` the
tower's L2-normed output above, so a score is ``a cos_teacher + (1 - a) cos_student``: an item with few or no
events is at least its teacher vector, and the id, brand and category paths learn a residual on top of it.
Per-item carry (``carry_count_k > 0``, ``recsys.student.carry``): the item side's two parts are further scaled by
``carry_scale`` (Bi, 2), so an item's score is ``alpha_i cos_teacher + beta_i cos_student`` with the residual's
share falling with the item's training count (0 for an item without events); the user side is unchanged.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torchrec.modules.embedding_configs import EmbeddingBagConfig, EmbeddingConfig, PoolingType
from torchrec.modules.embedding_modules import EmbeddingBagCollection, EmbeddingCollection

from recsys.student.batches import Batch, ItemFeatures
from recsys.student.config import StudentConfig
from recsys.student.sequence import SequenceEncoder, jagged_to_padded

SEQ_KEY = "seq_item"  # the EmbeddingCollection's one feature: the history item ids, one vector per position


def table_configs(*, cfg: StudentConfig, feats: ItemFeatures, n_users: int) -> list[EmbeddingBagConfig]:
    """One table per vocabulary; feature names say which tower reads it."""
    return tables_for(cfg=cfg, n_items=feats.n_items, n_brands=feats.n_brands, n_cats=feats.n_cats, n_users=n_users)


def tables_for(*, cfg: StudentConfig, n_items: int, n_brands: int, n_cats: int,
               n_users: int) -> list[EmbeddingBagConfig]:
    """The towers' tables for vocabularies of these sizes (also what ``recsys plan`` plans, so it cannot drift)."""
    tables = [
        EmbeddingBagConfig(name="t_item", embedding_dim=cfg.item_id_dim, num_embeddings=n_items,
                           feature_names=["hist_item", "recent_item", "item"], pooling=PoolingType.MEAN),
        EmbeddingBagConfig(name="t_brand", embedding_dim=cfg.brand_dim, num_embeddings=n_brands,
                           feature_names=["hist_brand", "brand"], pooling=PoolingType.MEAN),
        EmbeddingBagConfig(name="t_cat", embedding_dim=cfg.category_dim, num_embeddings=n_cats,
                           feature_names=["hist_cat", "cat"], pooling=PoolingType.MEAN),
    ]
    # the "user" feature always exists in the batch; with user_id_dim == 0 it maps to a 1-row dummy
    # table that is never read by the user tower (keeps one batch format for every config)
    tables.append(EmbeddingBagConfig(name="t_user", embedding_dim=max(cfg.user_id_dim, 4),
                                     num_embeddings=n_users if cfg.user_id_dim > 0 else 1,
                                     feature_names=["user"], pooling=PoolingType.MEAN))
    return tables


def sequence_tables(*, cfg: StudentConfig, n_items: int) -> list[EmbeddingConfig]:
    """The sequential user tower's EmbeddingCollection tables ([] for the pooled tower); ``recsys plan`` plans
    these too."""
    if cfg.user_tower != "sequential":
        return []
    return [EmbeddingConfig(name="t_seq_item", embedding_dim=cfg.item_id_dim, num_embeddings=n_items,
                            feature_names=[SEQ_KEY])]


def mlp(sizes: list[int]) -> nn.Sequential:
    """Linear-ReLU stack; no activation after the last layer."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class TwoTower(nn.Module):
    """EBC + user/item MLPs. ``forward(batch)`` -> (user vectors (Bu, d), item vectors (Bi, d)), L2-normed.

    Args:
        text_dim: width of the teacher text embedding fed to the item tower (0 = no text input).
        device: where the tables are created; ``meta`` when DistributedModelParallel will shard them.
    """

    def __init__(self, *, cfg: StudentConfig, feats: ItemFeatures, n_users: int, text_dim: int,
                 device: torch.device | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.carry_dim = feats.carry.shape[1] if cfg.teacher_carry > 0 and feats.carry is not None else 0
        if cfg.teacher_carry > 0 and not self.carry_dim:
            raise ValueError("student.teacher_carry > 0 needs the teacher's item vectors (ItemFeatures.carry)")
        if not 0.0 <= cfg.teacher_carry < 1.0:
            raise ValueError(f"student.teacher_carry={cfg.teacher_carry}: must be in [0, 1)")
        self.out_dim = cfg.dim + self.carry_dim
        self.tables = table_configs(cfg=cfg, feats=feats, n_users=n_users)  # kept: sharding hides the EBC's
        self.ebc = EmbeddingBagCollection(tables=self.tables, device=device or torch.device("cpu"))
        self.seq_tables = sequence_tables(cfg=cfg, n_items=feats.n_items)
        self.ec = EmbeddingCollection(tables=self.seq_tables, device=device or torch.device("cpu")) \
            if self.seq_tables else None
        self.seq = SequenceEncoder(dim=cfg.item_id_dim, max_len=cfg.seq_len, layers=cfg.seq_layers,
                                   heads=cfg.seq_heads, dropout=cfg.seq_dropout) if self.seq_tables else None
        self.text_dim = text_dim if cfg.use_text else 0
        u_in = (1 if self.seq_tables else 2) * cfg.item_id_dim + cfg.brand_dim + cfg.category_dim + cfg.user_id_dim
        i_in = cfg.item_id_dim + cfg.brand_dim + cfg.category_dim + (cfg.dim if self.text_dim else 0)
        self.text_proj = nn.Linear(self.text_dim, cfg.dim) if self.text_dim else None
        self.user_mlp = mlp([u_in, *cfg.mlp, cfg.dim])
        self.item_mlp = mlp([i_in, *cfg.mlp, cfg.dim])

    def _carry(self, r: torch.Tensor, t: torch.Tensor | None, scale: torch.Tensor | None = None) -> torch.Tensor:
        """(B, d) residual, (B, Dt) teacher [, (B, 2) per-row scales] -> (B, Dt + d) ``[sqrt(a) t, sqrt(1 - a) r]``
        (each part times its column of ``scale``); r itself when off."""
        if not self.carry_dim:
            return r
        if t is None:
            raise ValueError("this student carries the teacher but the batch has no teacher vectors")
        a = self.cfg.teacher_carry
        ct, cr = (math.sqrt(a), math.sqrt(1.0 - a)) if scale is None else \
            (math.sqrt(a) * scale[:, :1], math.sqrt(1.0 - a) * scale[:, 1:])
        return torch.cat([ct * t, cr * r], dim=1)

    def user_tower(self, pooled: dict[str, torch.Tensor], *, carry: torch.Tensor | None = None,
                   seq: torch.Tensor | None = None) -> torch.Tensor:
        """Pooled user-row features (Bu, *) [, teacher history vectors (Bu, Dt)] [, the sequence encoder's
        output (Bu, item_id_dim)] -> (Bu, out_dim)."""
        if self.seq is not None:
            if seq is None:
                raise ValueError("this student has a sequential user tower but the batch has no sequence features")
            parts = [seq, pooled["hist_brand"], pooled["hist_cat"]]
        else:
            parts = [pooled["hist_item"], pooled["recent_item"], pooled["hist_brand"], pooled["hist_cat"]]
        if self.cfg.user_id_dim > 0:
            parts.append(pooled["user"])
        return self._carry(F.normalize(self.user_mlp(torch.cat(parts, dim=1)), dim=1), carry)

    def item_tower(self, pooled: dict[str, torch.Tensor], *, keep_id: torch.Tensor,
                   text: torch.Tensor | None, carry: torch.Tensor | None = None,
                   carry_scale: torch.Tensor | None = None) -> torch.Tensor:
        """Pooled item-row features (Bi, *), keep_id (Bi,), text (Bi, D) [, teacher (Bi, Dt), per-item carry
        scales (Bi, 2)] -> (Bi, out_dim)."""
        parts = [pooled["item"] * keep_id[:, None], pooled["brand"], pooled["cat"]]
        if self.text_proj is not None:
            if text is None:
                raise ValueError("this student was built with text input but the batch carries no text")
            parts.append(self.text_proj(text))
        return self._carry(F.normalize(self.item_mlp(torch.cat(parts, dim=1)), dim=1), carry, carry_scale)

    def forward(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = self.ebc(batch.kjt).to_dict()
        n = batch.n_user_rows
        seq = None
        if self.ec is not None and n:  # every rank takes part (training and encode_users always have user rows)
            if batch.seq is None:
                raise ValueError("this student has a sequential user tower but the batch has no sequence features")
            jt = self.ec(batch.seq)[SEQ_KEY]
            lengths = jt.lengths()
            seq = self.seq(jagged_to_padded(jt.values(), lengths), lengths)
        users = self.user_tower({k: v[:n] for k, v in pooled.items()}, carry=batch.carry_user, seq=seq) if n else None
        items = self.item_tower({k: v[n:] for k, v in pooled.items()}, keep_id=batch.keep_id, text=batch.text,
                                carry=batch.carry_item, carry_scale=batch.carry_scale) if batch.item_ids.numel() else None
        return users, items  # type: ignore[return-value]
