"""Slice order and the per-row slice dict of metrics.json."""

from __future__ import annotations

import polars as pl

from recsys.eval.slices import POPULARITY, as_dict, history_order, ordered


def test_history_order_matches_the_labels_of_history_length_slices() -> None:
    from recsys.metrics import history_length_slices

    hist = pl.DataFrame({"user": [0] * 3 + [1] * 7 + [2] * 12 + [3] * 25, "item": list(range(47))})
    labels = history_length_slices(hist, bins=(5, 10, 20)).sort("user")["slice"].to_list()
    assert labels == ["<5", "5-9", "10-19", ">=20"] == list(history_order((5, 10, 20)))


def test_popularity_slices_in_reading_order_with_empty_ones_null() -> None:
    frame = pl.DataFrame({"slice": ["head", "tail", "torso"], "targets": [5, 2, 3],
                          "ndcg@10": [0.5, 0.1, 0.25], "recall@10": [0.6, 0.5, 1 / 3]})
    assert ordered(frame, POPULARITY)["slice"].to_list() == ["head", "torso", "tail"]
    d = as_dict(frame, order=POPULARITY, metrics=["ndcg@10", "recall@10"])
    assert list(d) == ["head", "torso", "tail", "cold"]
    assert d["tail"] == {"targets": 2, "ndcg@10": 0.1, "recall@10": 0.5}
    assert d["cold"] == {"targets": 0, "ndcg@10": None, "recall@10": None}
