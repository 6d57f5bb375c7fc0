"""No leakage into user representations; exact top-K with history excluded."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from recsys.data.tables import load_tables
from recsys.teacher.scores import pair_scores, topk
from recsys.teacher.text import history_texts
from recsys.teacher.users import pooled_users


@pytest.mark.parametrize("split", ["valid", "test"])
def test_targets_never_reach_their_user(syn_run, split: str) -> None:
    """One-hot item embeddings: a user's vector is non-zero exactly on the items that built it."""
    t = load_tables(syn_run.layout)
    eye = np.eye(t.n_items, dtype=np.float32)
    users = pooled_users(item_emb=eye, history=t.history(split), n_users=t.n_users, last_n=1000, decay=0.9)
    targets = t.targets(split)
    hist = t.history(split)
    own = targets.join(hist.select("user", "item"), on=["user", "item"], how="anti")  # target not also seen before
    assert own.height == targets.height > 0
    leaked = users[own["user"].to_numpy(), own["item"].to_numpy()]
    assert np.all(leaked == 0), f"{int((leaked != 0).sum())} targets leaked into their user's {split} vector"
    # and history does reach it (the test is not vacuous)
    assert np.all(users[hist["user"].to_numpy(), hist["item"].to_numpy()] > 0)
    if split == "test":  # the valid item is history at the test point
        v = t.valid
        assert np.all(users[v["user"].to_numpy(), v["item"].to_numpy()] > 0)
    titles = [f"TITLE{i}" for i in range(t.n_items)]
    texts = history_texts(hist, titles, n_users=t.n_users, last_n=1000)
    for u, i in own.select("user", "item").iter_rows():
        assert f"TITLE{i};" not in texts[u] + ";"


def test_recency_weights_and_window() -> None:
    hist = pl.DataFrame({"user": [0, 0, 0], "item": [0, 1, 2], "pos": [0, 1, 2]})
    u = pooled_users(item_emb=np.eye(3, dtype=np.float32), history=hist, n_users=2, last_n=2, decay=0.5)
    np.testing.assert_allclose(u[0], np.array([0, 0.5, 1.0]) / np.sqrt(1.25), rtol=1e-6)
    assert not u[1].any()


def test_topk_excludes_history_and_matches_brute_force() -> None:
    rng = np.random.default_rng(0)
    ue, ie = rng.normal(size=(7, 5)).astype(np.float32), rng.normal(size=(30, 5)).astype(np.float32)
    hist = pl.DataFrame({"user": [0, 0, 3, 3, 3, 6], "item": [1, 2, 5, 6, 5, 29]})
    got = topk(user_emb=ue, item_emb=ie, history=hist, k=10, batch=3)
    scores = ue @ ie.T
    for u, i in hist.iter_rows():
        scores[u, i] = -np.inf
    for u in range(7):
        mine = got.filter(pl.col("user") == u).sort("rank")
        want = np.argsort(-scores[u], kind="stable")[:10]
        np.testing.assert_array_equal(mine["item"].to_numpy(), want)
        np.testing.assert_allclose(mine["score"].to_numpy(), scores[u, want], rtol=1e-5)
        assert mine["rank"].to_list() == list(range(10))
    assert got.join(hist, on=["user", "item"]).height == 0
    assert got.schema == pl.Schema({"user": pl.Int32, "item": pl.Int32, "score": pl.Float32, "rank": pl.Int32})
    np.testing.assert_allclose(pair_scores(user_emb=ue, item_emb=ie, users=np.array([0, 6]), items=np.array([3, 3])),
                               [ue[0] @ ie[3], ue[6] @ ie[3]], rtol=1e-5)


def test_topk_user_with_few_unseen_items() -> None:
    ue, ie = np.ones((1, 2), np.float32), np.eye(3, 2, dtype=np.float32)
    got = topk(user_emb=ue, item_emb=ie, history=pl.DataFrame({"user": [0, 0], "item": [0, 1]}), k=5)
    assert got["item"].to_list() == [2]
