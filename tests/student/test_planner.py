"""The sharding-planner dry run covers every table for a cluster this machine does not have."""

from __future__ import annotations

import pytest
import torchrec  # noqa: F401  (a broken install must fail the suite, never skip it)

from recsys.student.planner import format_plan, plan_tables, rank_totals, student_tables

GIB = 1 << 30


def test_one_million_items_on_eight_gpus_plans_every_table() -> None:
    tables = student_tables(items=1_000_000, dim=64, users=200_000)
    plans, _ = plan_tables(tables=tables, gpus=8, hbm_gib=16)
    assert {p.name for p in plans} == {t.name for t in tables}
    for p in plans:
        assert p.ranks and all(0 <= r < 8 for r in p.ranks), p
        assert sum(p.per_rank_bytes.values()) >= p.rows * p.dim * 4  # every row is placed somewhere
    item = next(p for p in plans if p.name == "t_item")
    assert sum(item.per_rank_bytes.values()) == 1_000_000 * (64 * 4 + 4)  # weights + row-wise adagrad state
    text = format_plan(plans, gpus=8, hbm_gib=16)
    assert "t_item" in text and "per-rank" in text


def test_forced_row_wise_spreads_the_item_table_evenly() -> None:
    plans, _ = plan_tables(tables=student_tables(items=1_000_000, dim=64), gpus=8, sharding="row_wise")
    item = next(p for p in plans if p.name == "t_item")
    assert item.sharding_type == "row_wise" and item.ranks == list(range(8))
    sizes = sorted(item.per_rank_bytes.values())
    assert sizes[-1] - sizes[0] <= 64 * 4 + 4  # shards differ by at most one row
    assert max(rank_totals(plans, gpus=8)) < 0.2 * GIB


def test_a_catalogue_too_big_for_the_cluster_is_refused() -> None:
    with pytest.raises(Exception, match="(?i)insufficient|storage|plan"):
        plan_tables(tables=student_tables(items=200_000_000, dim=256), gpus=2, hbm_gib=16, ddr_gib=16)


def test_the_planned_tables_are_the_towers_own() -> None:
    """The planner builds its tables with the towers' function: a config change reaches the plan."""
    import dataclasses

    from recsys.student.config import StudentConfig
    from recsys.student.towers import table_configs

    cfg = dataclasses.replace(StudentConfig(), item_id_dim=48, brand_dim=12, category_dim=20, user_id_dim=32)

    @dataclasses.dataclass
    class Feats:
        n_items: int = 5000
        n_brands: int = 70
        n_cats: int = 9

    towers = table_configs(cfg=cfg, feats=Feats(), n_users=800)  # type: ignore[arg-type]
    planned = student_tables(items=5000, brands=70, categories=9, users=800, cfg=cfg)
    assert [(t.name, t.rows, t.dim, t.features) for t in planned] == [
        (c.name, c.num_embeddings, c.embedding_dim, tuple(c.feature_names)) for c in towers]
    assert {t.name: t.dim for t in planned} == {"t_item": 48, "t_brand": 12, "t_cat": 20, "t_user": 32}


def test_the_sequential_towers_sequence_table_is_planned() -> None:
    """``user_tower = "sequential"`` adds the EmbeddingCollection's table; the planner places it with the EBC's."""
    from recsys.student.config import StudentConfig

    tables = student_tables(items=100_000, cfg=StudentConfig(user_tower="sequential"))
    seq = [t for t in tables if not t.pooled]
    assert [(t.name, t.rows, t.features) for t in seq] == [("t_seq_item", 100_000, ("seq_item",))]
    plans, _ = plan_tables(tables=tables, gpus=2, hbm_gib=16)
    assert {p.name for p in plans} == {t.name for t in tables}
    assert sum(next(p for p in plans if p.name == "t_seq_item").per_rank_bytes.values()) >= 100_000 * 64 * 4
    assert all(t.pooled for t in student_tables(items=100_000))  # the pooled tower has none
