from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from recsys.teacher.cross import CrossScorer, rescore


def test_cross_scorer_tiny_llama(tiny_llama: Path) -> None:
    sc = CrossScorer(model_path=str(tiny_llama), batch_size=2)
    hist = ["rose lipstick; mint serum", "gold polish"]
    items = ["matte lipstick", "fresh shampoo"]
    s = sc.score(histories=hist * 2, items=items + items[::-1])
    assert s.shape == (4,) and s.dtype == np.float32 and np.isfinite(s).all()
    alone = np.array([sc.score(histories=[h], items=[i])[0] for h, i in zip(hist * 2, items + items[::-1])])
    np.testing.assert_allclose(s, alone, atol=1e-4)  # left padding does not change a pair's score
    cands = pl.DataFrame({"user": [0, 0, 1], "item": [0, 1, 1]})
    out = rescore(scorer=sc, candidates=cands, history_text=hist, item_text=items)
    assert out.height == 3 and out.filter(pl.col("user") == 0)["rank"].to_list() == [0, 1]
