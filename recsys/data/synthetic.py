"""A seeded synthetic shop with the same interface as the real data (for tests and benchmarks only).

Users have latent tastes over a few categories; items belong to one category and brand; each user's
history is a time-ordered walk that prefers their categories, with Zipf-skewed item popularity.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from recsys.data.schema import INTERACTIONS, ITEMS, Loaded, conform, empty

_WORDS = ["soft", "matte", "gloss", "organic", "daily", "night", "rose", "mint", "pure", "gold", "silk", "fresh"]
_KINDS = ["lipstick", "serum", "shampoo", "mascara", "cream", "polish", "cleanser", "perfume"]


def make_shop(
    *, n_users: int = 60, n_items: int = 40, n_categories: int = 4, min_len: int = 5, max_len: int = 12,
    zipf: float = 1.1, seed: int = 0,
) -> Loaded:
    """Raw frames (string ids) as a loader would return them; every user has >= ``min_len`` distinct items."""
    rng = np.random.default_rng(seed)
    cat = rng.integers(0, n_categories, n_items)
    brand = rng.integers(0, max(2, n_items // 5), n_items)
    pop = 1.0 / np.arange(1, n_items + 1) ** zipf
    pop = pop[rng.permutation(n_items)]
    titles = [f"{_WORDS[i % len(_WORDS)]} {_WORDS[(i * 7) % len(_WORDS)]} {_KINDS[cat[i] % len(_KINDS)]} {i}"
              for i in range(n_items)]
    rows = []
    for u in range(n_users):
        fav = rng.integers(0, n_categories)
        w = pop * np.where(cat == fav, 8.0, 1.0)
        w /= w.sum()
        length = int(rng.integers(min_len, max_len + 1))
        length = min(length, n_items)
        seq = rng.choice(n_items, size=length, replace=False, p=w)
        t0 = 1_600_000_000 + int(rng.integers(0, 86400 * 30))
        for j, it in enumerate(seq):
            rows.append((f"u{u}", f"i{it}", t0 + j * 86400, "purchase", 1.0, None, "synthetic", len(rows) + 1))
    inter = pl.DataFrame(rows, schema=list(INTERACTIONS), orient="row")
    items = pl.DataFrame({
        "item_id": [f"i{i}" for i in range(n_items)],
        "title": titles,
        "brand": [f"brand{b}" for b in brand],
        "categories": [["Beauty", f"cat{c}"] for c in cat],
        "description": [f"A {t}." for t in titles],
        "price": (rng.gamma(2.0, 8.0, n_items)).round(2),
    })
    return Loaded(
        interactions=conform(inter, INTERACTIONS),
        items=conform(items, ITEMS),
        quarantine=empty({"source_file": pl.String, "row": pl.Int64, "column": pl.String, "reason": pl.String, "raw": pl.String}),
        n_read=inter.height,
        source=f"synthetic(seed={seed}, users={n_users}, items={n_items})",
    )
