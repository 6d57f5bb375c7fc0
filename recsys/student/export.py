"""Export the trained towers as numpy artifacts (see docs/CONTRACTS.md), plus an int8 copy.

The item vectors (N_items, d) covers every catalogue item — items without training events get a
vector from text/brand/category alone (their id vector is dropped, as ID dropout taught the tower).
The user vectors of valid and test (N_users, d) use history = train and train + valid. Scores are inner
products (``metric = "ip"``) of L2-normalised vectors, except that a student with per-item carry
(``student.carry_count_k > 0``, ``recsys.student.carry``) scales each item vector's two parts by its training count.

The int8 export quantises each item vector per row: ``q = round(v / s)``, ``s = max|v| / 127``; its largest
absolute error is recorded here, and the NDCG@10 it loses against the float vectors is the evaluation stage's
``student_kd_int8`` row (two more full rankings per variant here would only repeat it).

The user tower file (``Layout.user_tower``) holds the user tower's tables and MLP for the numpy forward that serves
anonymous histories (``recsys.student.user_tower``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from recsys import metrics
from recsys.contracts import student as S
from recsys.contracts.layout import Layout
from recsys.data.tables import Split, Tables
from recsys.student import user_tower


def quantize_int8(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-row symmetric int8: x (N, d) f32 -> (q (N, d) i8, scale (N,) f32); x ≈ q * scale[:, None]."""
    scale = np.abs(x).max(axis=1) / 127.0
    scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
    q = np.clip(np.rint(x / scale[:, None]), -127, 127).astype(np.int8)
    return q, scale


def dequantize_int8(q: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return q.astype(np.float32) * scale[:, None]


def evaluate(*, users: np.ndarray, items: np.ndarray, tables: Tables, split: Split,
             eval_users: int = 0, slices: dict[str, Any] | None = None,
             ranking: metrics.EvalResult | None = None, ranked: bool = False) -> dict[str, float] | None:
    """Full-ranking metrics of inner-product scores on ``split`` (history excluded); ``eval_users`` > 0: on a
    seeded sample of that many users (the same users for every call). ``slices``: a dict that receives the
    NDCG/Recall@10 per item-popularity slice (``metrics.popularity_summary``) from the same ranking.
    Every rank of the process group calls it and ranks a share of the users (``recsys.student.scoring``); the
    figures come back on rank 0, None on the others. ``ranked`` (the same on every rank): ``users`` x ``items`` on
    ``split`` was ranked already, ``ranking`` on rank 0 (the best epoch's validation): its figures, no new ranking.
    Valid figures carry no catalogue coverage (as each epoch's validation); test figures do."""
    from recsys.student import scoring

    if ranked:
        res = ranking
    else:
        targets = tables.targets(split)
        if eval_users:
            targets = metrics.of_users(targets, metrics.sample_users(targets, n=eval_users, seed=0))
        res = scoring.evaluate(users=users, items=items, targets=targets, history=tables.history(split),
                               n_items=tables.n_items,
                               coverage_ks=() if split == "valid" else None)  # as each epoch's validation
    if res is None:
        return None
    if slices is not None:
        slices.update(metrics.popularity_summary(res, train=tables.train, ks=(10,)))
    return {k: v for k, v in res.summary(ks=(10, 20)).items() if "@" in k}


def export_metrics(*, items: np.ndarray, users_valid: np.ndarray, users_test: np.ndarray, tables: Tables,
                   quantize: bool, eval_users: int = 0, valid_ranking: metrics.EvalResult | None = None,
                   valid_ranked: bool = False, test: bool = True) -> dict[str, Any] | None:
    """The export's figures: valid (with its popularity slices) and test metrics, and with ``quantize`` the int8 item
    vectors' largest error and size. Every rank calls it (the rankings are shared); -> the summary on rank 0, None elsewhere.
    ``valid_ranked`` (every rank) / ``valid_ranking`` (rank 0): the valid split's ranking of exactly these vectors
    over every user, done already (the best epoch's validation), reused instead of ranked again. ``test`` = False:
    no test ranking (its figures are None)."""
    valid_slices: dict[str, Any] = {}
    valid = evaluate(users=users_valid, items=items, tables=tables, split="valid", eval_users=eval_users,
                     slices=valid_slices, ranking=valid_ranking, ranked=valid_ranked)
    test_fig = evaluate(users=users_test, items=items, tables=tables, split="test", eval_users=eval_users) \
        if test else None
    info: dict[str, Any] = {"valid": valid, "test": test_fig, "bytes": {"item_vectors_f32": int(items.nbytes)},
                            "valid_slices": valid_slices}
    if quantize:  # its ranking quality is the evaluation's ``<variant>_int8`` row (test, with slices), not ranked here
        q, s = quantize_int8(items)
        info["int8"] = {"max_abs_error": float(np.abs(dequantize_int8(q, s) - items).max())}
        info["bytes"]["item_vectors_int8"] = int(q.nbytes + s.nbytes)
    return info if valid is not None else None


def write_exports(*, layout: Layout, variant: str, items: np.ndarray, users_valid: np.ndarray,
                  users_test: np.ndarray, tables: Tables, quantize: bool, tower: user_tower.UserTower | None = None,
                  eval_users: int = 0, info: dict[str, Any] | None = None) -> tuple[list[Path], dict[str, Any]]:
    """Write the vectors (and int8 copies, and the numpy user tower); return the paths and a metrics/quantisation
    summary (on a seeded sample of ``eval_users`` users when > 0; ``valid_slices``: valid NDCG/Recall@10 per item
    popularity slice). Non-finite vectors are refused (ArtifactError)
    before anything is written. ``info``: that summary already computed by ``export_metrics`` (by every rank of
    the group, before rank 0 writes); without it this process computes it, alone."""
    paths = S.write_vectors(layout=layout, variant=variant, items=items.astype(np.float32),
                            users_valid=users_valid.astype(np.float32), users_test=users_test.astype(np.float32))
    if tower is not None:
        paths.append(user_tower.write(layout=layout, variant=variant, tower=tower))
    if info is None:
        info = export_metrics(items=items, users_valid=users_valid, users_test=users_test, tables=tables,
                              quantize=quantize, eval_users=eval_users)
        if info is None:
            raise RuntimeError("write_exports without info on a rank other than 0: every rank calls export_metrics "
                               "and rank 0 passes its info")
    if quantize:
        q, s = quantize_int8(items)
        paths += S.write_int8(layout=layout, variant=variant, q=q, scales=s)
    return paths, info
