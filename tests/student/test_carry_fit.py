"""The carry fit (``recsys.student.carry_fit``): its vector algebra and its choice rule."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from recsys import metrics
from recsys.student.carry import item_scales
from recsys.student.carry_fit import choose, join_parts, split_parts


def test_split_then_join_reproduces_the_vectors_of_any_shift() -> None:
    rng = np.random.default_rng(0)
    counts = np.array([0, 1, 5, 40, 0, 3])
    t, r = rng.normal(size=(6, 3)).astype(np.float32), rng.normal(size=(6, 2)).astype(np.float32)
    r[counts == 0] = 0.0  # an item without events has no residual to recover
    trained = item_scales(counts=counts, carry=0.5, k=10.0, shift=0.75)
    t2, r2 = split_parts(items=join_parts(t=t, r=r, scale=trained), teacher_dim=3, scale=trained)
    np.testing.assert_allclose(t2, t, rtol=1e-6)
    np.testing.assert_allclose(r2, r, rtol=1e-6, atol=1e-7)
    # the fit scores a shift as st * scale_t + sr * scale_r: the same as re-encoding the items at that shift
    users = rng.normal(size=(4, 5)).astype(np.float32)
    other = item_scales(counts=counts, carry=0.5, k=10.0, shift=0.25)
    mixed = (users[:, :3] @ t2.T) * other[:, 0] + (users[:, 3:] @ r2.T) * other[:, 1]
    np.testing.assert_allclose(mixed, users @ join_parts(t=t, r=r, scale=other).T, rtol=1e-5, atol=1e-6)


def test_choose_takes_the_best_shift_whose_guarded_slices_reach_the_teacher() -> None:
    teacher = {"all": 0.05, "head": 0.06, "torso": 0.04, "tail": 0.047, "cold": 0.012}
    targets = {"all": 1000.0, "head": 500.0, "torso": 200.0, "tail": 250.0, "cold": 50.0}
    rows = [{"shift": 0.5, "all": 0.0765, "tail": 0.0357, "cold": 0.0122},  # best overall, tail below the teacher
            {"shift": 0.75, "all": 0.0758, "tail": 0.0547, "cold": 0.1384}]
    best, why = choose(rows=rows, teacher=teacher, targets=targets, min_targets=20)
    assert best["shift"] == 0.75 and "tail/cold" in why
    assert [r["qualifies"] for r in rows] == [False, True]
    assert rows[0]["worst_ratio"] == pytest.approx(0.0357 / 0.047)
    # a slice with fewer than min_targets valid targets does not constrain: with tail and cold that small, the
    # best overall wins
    assert choose(rows=rows, teacher=teacher, targets={**targets, "tail": 10.0, "cold": 10.0},
                  min_targets=20)[0]["shift"] == 0.5
    # none qualifies: the one closest to the teacher on its worst slice
    low = [{"shift": 0.0, "all": 0.09, "tail": 0.01, "cold": 0.0}, {"shift": 0.25, "all": 0.08, "tail": 0.04, "cold": 0.011}]
    best, why = choose(rows=low, teacher=teacher, targets=targets, min_targets=20)
    assert best["shift"] == 0.25 and "no shift reaches" in why


def test_evaluate_many_equals_one_evaluate_scores_per_system() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(5, 7)).astype(np.float32), rng.normal(size=(5, 7)).astype(np.float32)
    targets = pl.DataFrame({"user": [0, 1, 2, 3, 4, 4], "item": [1, 2, 3, 4, 5, 6]})
    history = pl.DataFrame({"user": [0, 0, 1, 3], "item": [2, 3, 0, 6]})
    both = metrics.evaluate_many(scores_fn=lambda u: [a[u], b[u]], n_systems=2, targets=targets, history=history,
                                 n_items=7, ks=(1, 3), batch_size=2)
    for got, scores in zip(both, (a, b)):
        want = metrics.evaluate_scores(score_fn=lambda u, s=scores: s[u], targets=targets, history=history,
                                       n_items=7, ks=(1, 3))
        assert got.per_target.equals(want.per_target) and got.coverage == want.coverage
    bare = metrics.evaluate_many(scores_fn=lambda u: [a[u], b[u]], n_systems=2, targets=targets, history=history,
                                 n_items=7, ks=(1, 3), batch_size=2, coverage_ks=())  # the carry fit's call
    for got, full in zip(bare, both):
        want = {k: v for k, v in full.summary(ks=(1, 3)).items() if not k.startswith("coverage")}
        assert got.per_target.equals(full.per_target) and got.coverage == {}
        assert got.summary(ks=(1, 3)) == pytest.approx(want, rel=1e-12)  # (polars sums groups in any order)


def test_fit_returns_the_vectors_the_tower_encodes_at_the_chosen_shift(tiny_run) -> None:
    pytest.importorskip("torchrec")
    import dataclasses

    import torch

    from recsys.student.carry_fit import fit_shift
    from recsys.student.config import StudentConfig
    from recsys.student.dataset import load_data
    from recsys.student.encode import encode_items, encode_users
    from recsys.student.towers import TwoTower

    cfg = StudentConfig(dim=8, item_id_dim=8, brand_dim=4, category_dim=4, mlp=(16,), batch_size=16, nproc=1,
                        lambda_emb=0.0, lambda_rank=0.0, id_dropout=0.0, teacher_carry=0.5, carry_count_k=2.0,
                        carry_shift=0.75)
    data = load_data(cfg=cfg, layout=tiny_run.layout, need_teacher=True)
    counts = data.feats.train_count.copy()
    counts[:2] = [0, 1]
    data = dataclasses.replace(data, feats=dataclasses.replace(data.feats, train_count=counts))
    torch.manual_seed(0)
    towers = TwoTower(cfg=cfg, feats=data.feats, n_users=data.n_users, text_dim=data.feats.text.shape[1])
    towers.eval()
    items = encode_items(towers=towers, feats=data.feats, cfg=cfg)
    users = encode_users(towers=towers, feats=data.feats, hist=data.train, cfg=cfg)
    dt = data.feats.carry.shape[1]
    kw = {"users": users, "teacher_dim": dt, "counts": counts, "carry": 0.5, "k": 2.0, "trained_shift": 0.75,
          "tables": data.tables, "min_targets": 1}
    got, fit = fit_shift(items=items, shifts=(0.25,), **kw)  # one candidate: it is chosen whatever the figures
    want = encode_items(towers=towers, feats=data.feats, cfg=dataclasses.replace(cfg, carry_shift=0.25))
    assert fit.shift == 0.25 and len(fit.rows) == 1 and fit.teacher["all"] is not None
    np.testing.assert_allclose(got, want, atol=1e-6)
    same, fit = fit_shift(items=items, shifts=(0.75,), **kw)
    assert same is items  # the trained shift kept: the encoded vectors themselves
    # the figures it compared are the full-ranking valid NDCG@10 of those vectors
    res = metrics.evaluate_scores(score_fn=lambda u: users[u] @ want.T, targets=data.tables.valid,
                                  history=data.tables.history("valid"), n_items=data.tables.n_items, ks=(10,))
    _, fit = fit_shift(items=items, shifts=(0.25, 0.75), **kw)
    assert fit.rows[0]["all"] == pytest.approx(res.summary(ks=(10,))["ndcg@10"], abs=1e-6)
    # a process group's fit: each rank ranks a contiguous share of the valid users, rank 0 decides on the merge
    from recsys.student.carry_fit import shift_rankings

    vec = {k: kw[k] for k in ("teacher_dim", "counts", "carry", "k", "trained_shift")}
    shares = np.array_split(np.unique(data.tables.valid["user"].to_numpy()), 2)
    parts = [shift_rankings(items=items, users=users, shifts=(0.25, 0.75), n_items=data.tables.n_items,
                            targets=metrics.of_users(data.tables.valid, s),
                            history=metrics.of_users(data.tables.history("valid"), s), **vec) for s in shares]
    merged = [metrics.EvalResult.merge([p[j] for p in parts]) for j in range(3)]
    _, whole = fit_shift(items=items, shifts=(0.25, 0.75), **kw)
    _, split_fit = fit_shift(items=items, shifts=(0.25, 0.75), rankings=merged, **kw)
    assert split_fit.shift == whole.shift and split_fit.reason == whole.reason  # the same choice, same figures
    for a, b in zip(split_fit.rows, whole.rows):  # (popularity_summary's polars group sums run in any order)
        assert a.keys() == b.keys() and all(a[c] == pytest.approx(b[c], rel=1e-12) for c in a if a[c] is not None)
    for c, v in whole.teacher.items():
        assert (v is None and split_fit.teacher[c] is None) or split_fit.teacher[c] == pytest.approx(v, rel=1e-12)
    assert all(m.per_target.equals(r.per_target) for m, r in zip(merged, shift_rankings(
        items=items, users=users, shifts=(0.25, 0.75), n_items=data.tables.n_items, targets=data.tables.valid,
        history=data.tables.history("valid"), **vec)))
