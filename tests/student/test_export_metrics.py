"""The export's figures: the best epoch's validation ranking, reused, gives exactly the figures of ranking the
exported vectors again."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torchrec  # noqa: F401  (a broken install must fail the suite, never skip it)

from recsys.artifacts import RunDir
from recsys.student.config import StudentConfig
from recsys.student.dataset import load_data
from recsys.student.encode import encode_items, encode_users
from recsys.student.export import export_metrics
from recsys.student.towers import TwoTower
from recsys.student.train import validate_ranking

TINY = StudentConfig(dim=8, item_id_dim=8, brand_dim=4, category_dim=4, mlp=(16,), batch_size=16, nproc=1)


def test_reused_valid_ranking_gives_the_export_figures(tiny_run: RunDir) -> None:
    cfg = dataclasses.replace(TINY, eval_batch_size=7)  # several blocks
    data = load_data(cfg=cfg, layout=tiny_run.layout, need_teacher=True)
    torch.manual_seed(0)
    towers = TwoTower(cfg=cfg, feats=data.feats, n_users=data.n_users, text_dim=data.feats.text.shape[1])
    figures, ranking = validate_ranking(towers=towers, data=data, cfg=cfg)
    assert ranking is not None
    towers.eval()
    items = encode_items(towers=towers, feats=data.feats, cfg=cfg)
    users_valid = encode_users(towers=towers, feats=data.feats, hist=data.train, cfg=cfg)
    users_test = encode_users(towers=towers, feats=data.feats, hist=data.train_valid, cfg=cfg)
    kw = {"items": items, "users_valid": users_valid, "users_test": users_test, "tables": data.tables, "quantize": True}
    fresh = export_metrics(**kw)
    reused = export_metrics(**kw, valid_ranking=ranking, valid_ranked=True)
    assert fresh is not None and reused is not None
    _same(reused, fresh)
    # (polars' group_by order is not fixed: the means may differ in the last bit, even between two fresh rankings)
    assert reused["valid"]["ndcg@10"] == pytest.approx(figures["ndcg@10"], rel=1e-12)
    assert reused["valid_slices"]["all"]["ndcg@10"] == pytest.approx(figures["ndcg@10"], rel=1e-12)


def _same(a: object, b: object) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys()
        for k in a:
            _same(a[k], b[k])
    elif isinstance(a, float) and isinstance(b, float):
        assert a == pytest.approx(b, rel=1e-12, abs=1e-15)
    else:
        assert a == b
