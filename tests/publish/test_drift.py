"""Drift record of a candidate vs the published version, on hand-computed lists."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recsys.publish.config import DriftConfig
from recsys.publish.drift import compare_lists, ks_distance, top_k, warnings

POP = np.array([9, 3, 0, 1, 0, 7])  # training events of items 0..5; items 2 and 4 are cold
COLD = POP == 0


def test_compare_lists_by_hand() -> None:
    cand = np.array([[0, 1], [2, 5], [3, -1]])  # 3 users, k = 2; user 2 has one item only
    pub = np.array([[1, 0], [5, 0], [3, -1]])
    cs = np.array([[0.9, 0.8], [0.7, 0.6], [0.5, -np.inf]], np.float32)
    ps = np.array([[0.9, 0.8], [0.7, 0.6], [0.5, -np.inf]], np.float32)
    r = compare_lists(cand_items=cand, pub_items=pub, cand_scores=cs, pub_scores=ps, popularity=POP, cold=COLD)
    assert r["users"] == 3 and r["k"] == 2
    assert r["changed_share"] == pytest.approx(1 / 3, abs=1e-6)  # only user 1's set changed ({2,5} vs {5,0}); order ignored
    assert r["overlap"] == pytest.approx((2 + 1 + 1) / 3 / 2, abs=1e-6)
    c, p = r["candidate"], r["published"]
    assert c["coverage"] == pytest.approx(5 / 6, abs=1e-6)  # {0, 1, 2, 3, 5}
    assert p["coverage"] == pytest.approx(4 / 6, abs=1e-6)  # {0, 1, 3, 5}
    assert c["mean_log_popularity"] == pytest.approx(np.mean(np.log1p([9, 3, 0, 7, 1])), abs=1e-6)
    assert p["mean_log_popularity"] == pytest.approx(np.mean(np.log1p([3, 9, 7, 9, 1])), abs=1e-6)
    assert c["cold_share"] == pytest.approx(1 / 5) and p["cold_share"] == 0.0
    assert r["score_ks"] == 0.0 and c["score_mean"] == pytest.approx(0.7)


def test_published_coverage_counts_distinct_items() -> None:
    pub = np.array([[1, 0], [5, 0], [3, -1]])
    s = np.zeros((3, 2), np.float32)
    r = compare_lists(cand_items=pub, pub_items=pub, cand_scores=s, pub_scores=s, popularity=POP, cold=COLD)
    assert r["published"]["coverage"] == pytest.approx(4 / 6, abs=1e-6)  # {0, 1, 3, 5}
    assert r["changed_share"] == 0.0 and r["overlap"] == pytest.approx((1 + 1 + 0.5) / 3, abs=1e-6)


def test_ks_distance_by_hand() -> None:
    assert ks_distance(np.array([1.0, 2.0]), np.array([1.0, 2.0])) == 0.0
    assert ks_distance(np.array([0.0, 1.0]), np.array([2.0, 3.0])) == 1.0
    # at x = 1, 2, 3, 4: F_a = 1/2, 1/2, 1, 1 and F_b = 0, 1/3, 2/3, 1 -> gaps 1/2, 1/6, 1/3, 0
    assert ks_distance(np.array([1.0, 3.0]), np.array([2.0, 3.0, 4.0])) == pytest.approx(1 / 2)


def test_top_k_excludes_history_and_disallowed_items() -> None:
    users = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    items = np.array([[3, 0], [2, 1], [1, 2], [0, 3]], np.float32)
    ptr, idx = np.array([0, 1, 1]), np.array([0])  # user 0 has seen item 0
    s, i = top_k(users, items, k=2, exclude_ptr=ptr, exclude_idx=idx, allowed=np.array([True, True, True, False]))
    np.testing.assert_array_equal(i, [[1, 2], [2, 1]])
    np.testing.assert_allclose(s, [[2, 1], [2, 1]])
    s, i = top_k(users, items[:2], k=3, exclude_ptr=ptr, exclude_idx=idx)
    np.testing.assert_array_equal(i, [[1, -1, -1], [1, 0, -1]])
    assert math.isinf(s[0, 1])


def test_warnings_name_every_crossed_threshold() -> None:
    base = {"users": 10, "k": 10, "changed_share": 0.5, "overlap": 0.5, "score_ks": 0.2,
            "candidate": {"coverage": 0.2, "mean_log_popularity": 2.0, "cold_share": 0.1},
            "published": {"coverage": 0.3, "mean_log_popularity": 1.8, "cold_share": 0.05}}
    assert warnings(base, DriftConfig()) == []
    bad = {**base, "changed_share": 0.99, "score_ks": 0.95,
           "candidate": {"coverage": 0.1, "mean_log_popularity": 3.0, "cold_share": 0.5}}
    w = warnings(bad, DriftConfig(max_changed_share=0.9))
    assert len(w) == 5, w
    assert "changed for 99%" in w[0] and "coverage fell to 10.0% from 30.0%" in w[1] and "+1.20" in w[2]
    assert "KS distance 0.95" in w[3] and "50.0%" in w[4]
    assert warnings({"users": 0}, DriftConfig()) == []
