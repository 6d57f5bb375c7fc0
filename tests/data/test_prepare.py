"""``prepare`` (int codes, packed sorts, bincount k-core) gives exactly the tables of the obvious polars
version kept here as the reference: same rows, same order, same ids, same quarantine rows and renderings."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal, assert_series_equal

from recsys.data import codes
from recsys.data.prepare import dedupe_events, kcore, prepare
from recsys.data.quarantine import Rule, apply_rules, empty_quarantine, to_quarantine
from recsys.data.schema import (INTERACTIONS, ITEMS, QUARANTINE, TABLE_INTERACTIONS, TABLE_ITEMS, TABLE_USERS,
                                TARGETS, Loaded, conform)
from recsys.data.split import leave_one_out, loo_role


# --------------------------------------------------------------------------- the reference (readable, slow)
def ref_dedupe(df: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    dup = pl.struct("user_id", "item_id", "timestamp", "event").is_first_distinct().not_()
    why = "duplicate event (same user, item, time, event)"
    return apply_rules(df, [Rule(dup, "user_id,item_id,timestamp", why)])


def ref_kcore(df: pl.DataFrame, *, k: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    if k <= 1:
        return df, empty_quarantine()
    kept = df
    while True:
        nxt = kept.filter((pl.col("user_id").count().over("user_id") >= k)
                          & (pl.col("item_id").count().over("item_id") >= k))
        if nxt.height == kept.height:
            break
        kept = nxt
    removed = df.join(kept.select("source_file", "source_row"), on=["source_file", "source_row"], how="anti")
    why = f"filtered by {k}-core (user or item has < {k} events)"
    removed = removed.with_columns(pl.lit(why).alias("_r"), pl.lit("user_id,item_id").alias("_c"))
    return kept, to_quarantine(removed, reason_col="_r", column_col="_c",
                               raw_cols=["user_id", "item_id", "timestamp", "event"])


def ref_prepare(loaded: Loaded, *, kcore_k: int, require_catalogue: bool) -> dict[str, pl.DataFrame]:
    inter, q1 = ref_dedupe(loaded.interactions)
    q2 = empty_quarantine()
    if loaded.items is None:
        cat = conform(inter.select("item_id").unique(), ITEMS)
    else:
        cat = loaded.items.unique(subset="item_id", keep="first", maintain_order=True)
        if require_catalogue:
            inter, q2 = apply_rules(inter, [Rule(pl.col("item_id").is_in(cat["item_id"].implode()).not_(),
                                                 "item_id", "item not in catalogue")])
        else:
            extra = inter.select("item_id").unique().join(cat.select("item_id"), on="item_id", how="anti")
            cat = pl.concat([cat, conform(extra, ITEMS)])
        cat = conform(cat, ITEMS)
    inter, q3 = ref_kcore(inter, k=kcore_k)
    items = cat.sort("item_id").with_row_index("item").with_columns(pl.col("item").cast(pl.Int32))
    users = (inter.select("user_id").unique().sort("user_id").with_row_index("user")
             .with_columns(pl.col("user").cast(pl.Int32)))
    mapped = (inter.join(users, on="user_id").join(items.select("item_id", "item"), on="item_id")
              .sort("user", "timestamp", "source_file", "source_row")
              .with_columns(pl.int_range(pl.len()).over("user").cast(pl.Int32).alias("pos")))
    parts = [p for p in (loaded.quarantine, q1, q2, q3) if p.height]
    return {"interactions": conform(mapped, TABLE_INTERACTIONS), "items": conform(items, TABLE_ITEMS),
            "users": conform(users, TABLE_USERS),
            "quarantine": pl.concat(parts) if parts else empty_quarantine()}


# --------------------------------------------------------------------------- random logs
def make_log(seed: int, *, n: int, n_users: int, n_items: int, null_ids: bool, files: int) -> Loaded:
    """Few users/items/timestamps (ties everywhere), exact repeats, several files read out of order."""
    rng = np.random.default_rng(seed)
    base = pl.DataFrame({
        "user_id": [f"u{x}" for x in rng.integers(0, n_users, n)],
        "item_id": [f"i{x}" for x in rng.integers(0, n_items, n)],
        "timestamp": rng.integers(0, 6, n) * 1000 + 1_600_000_000,
        "event": rng.choice(["purchase", "view", "a long event name over twelve bytes"], n),
        "quantity": rng.choice([1.0, 2.5], n),
        "price": [None if x else 9.99 for x in rng.random(n) < 0.5],
    })
    reps = base.sample(n // 3, with_replacement=True, seed=seed)  # exact repeats, scattered
    df = pl.concat([base, reps]).sample(fraction=1.0, shuffle=True, seed=seed + 1)
    m = df.height
    df = df.with_columns(
        pl.Series("source_file", [f"part-{x}.csv" for x in rng.integers(0, files, m)]),
        pl.Series("source_row", rng.permutation(m) + 1).cast(pl.Int64),
    )
    if null_ids:
        df = df.with_columns(pl.when(pl.Series(rng.random(m) < 0.05)).then(None).otherwise(pl.col(c)).alias(c)
                             for c in ("user_id", "event", "timestamp"))
    items = conform(pl.DataFrame({"item_id": [f"i{x}" for x in range(0, n_items + 5, 2)],
                                  "title": [f"t{x}" for x in range(0, n_items + 5, 2)]}), ITEMS)
    q = pl.DataFrame({"source_file": ["part-0.csv"], "row": [10_000], "column": ["user_id"],
                      "reason": ["missing user id"], "raw": ["user_id=null"]}, schema=QUARANTINE)
    return Loaded(interactions=conform(df, INTERACTIONS), items=items, quarantine=q, n_read=m + 1, source="t")


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(0, 300), n_users=st.integers(1, 30),
       n_items=st.integers(1, 20), k=st.sampled_from([0, 1, 2, 3, 5]), files=st.integers(1, 3),
       require_catalogue=st.booleans(), catalogue=st.booleans(), null_ids=st.booleans())
def test_prepare_equals_the_reference(seed: int, n: int, n_users: int, n_items: int, k: int, files: int,
                                      require_catalogue: bool, catalogue: bool, null_ids: bool) -> None:
    loaded = make_log(seed, n=n, n_users=n_users, n_items=n_items, null_ids=null_ids and k > 1, files=files)
    if not catalogue:
        loaded = Loaded(interactions=loaded.interactions, items=None, quarantine=loaded.quarantine,
                        n_read=loaded.n_read, source="t")
    got = prepare(loaded, kcore_k=k, require_catalogue=require_catalogue)
    want = ref_prepare(loaded, kcore_k=k, require_catalogue=require_catalogue)
    for name, frame in want.items():
        assert_frame_equal(getattr(got, name), frame)
    assert got.counts["read"] == got.counts["kept"] + got.counts["quarantined"]
    cold = want["items"].height - want["interactions"]["item"].n_unique()
    assert got.counts["items_without_events"] == cold


@pytest.mark.parametrize("k", [0, 3])
def test_dedupe_and_kcore_equal_the_reference(k: int) -> None:
    df = make_log(7, n=400, n_users=25, n_items=15, null_ids=False, files=2).interactions
    for got, want in zip(dedupe_events(df), ref_dedupe(df)):
        assert_frame_equal(got, want)
    for got, want in zip(kcore(df, k=k), ref_kcore(df, k=k)):
        assert_frame_equal(got, want)


def test_prepare_with_null_ids_and_kcore_off_quarantines_them() -> None:
    """The reference silently lost such rows in its joins; now ``read = kept + quarantined`` still holds."""
    loaded = make_log(3, n=50, n_users=5, n_items=5, null_ids=True, files=1)
    got = prepare(loaded, kcore_k=0, require_catalogue=False)
    missing = set(loaded.interactions.filter(pl.col("user_id").is_null())["source_row"])
    assert missing and missing <= set(got.quarantine["row"])
    assert got.quarantine.filter(pl.col("reason") == "missing user or item id").height
    assert got.counts["read"] == got.counts["kept"] + got.counts["quarantined"]


@pytest.mark.parametrize("shift", [0, -3])  # -3: ids that np.bincount cannot take -> the window version
def test_leave_one_out_equals_the_window_version(shift: int) -> None:
    inter = prepare(make_log(5, n=300, n_users=40, n_items=10, null_ids=False, files=2), kcore_k=0,
                    require_catalogue=False).interactions.with_columns(pl.col("user") + shift)
    # without repeats (a repeat is never a target: tested below), pos renumbered 0..n-1 per user
    inter = inter.unique(subset=["user", "item"], keep="first", maintain_order=True).with_columns(
        pl.int_range(pl.len()).over("user").cast(pl.Int32).alias("pos"))
    n = pl.len().over("user")
    want = [inter.filter((n < 3) | (pl.col("pos") < n - 2)),
            conform(inter.filter((n >= 3) & (pl.col("pos") == n - 2)), TARGETS),
            conform(inter.filter((n >= 3) & (pl.col("pos") == n - 1)), TARGETS)]
    for got, frame in zip(leave_one_out(inter), want):
        assert_frame_equal(got, frame)


def test_leave_one_out_targets_are_new_items_and_later_repeats_are_in_no_split() -> None:
    # user 0 buys 1, 2, 1 again, 3, 2 again, 4: new items 1 2 3 4 -> valid 3, test 4, train = the events
    # before 3; the repeat of 2 between the targets is in no split. User 1 has 2 distinct items: all train.
    inter = pl.DataFrame({"user": [0] * 6 + [1] * 3, "item": [1, 2, 1, 3, 2, 4, 5, 5, 6],
                          "timestamp": list(range(9)), "event": ["buy"] * 9, "pos": [0, 1, 2, 3, 4, 5, 0, 1, 2]},
                         schema_overrides={"user": pl.Int32, "item": pl.Int32, "pos": pl.Int32})
    train, valid, test = leave_one_out(inter)
    assert train.select("user", "pos").rows() == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    assert valid.select("user", "item").rows() == [(0, 3)]
    assert test.select("user", "item").rows() == [(0, 4)]
    assert pl.LazyFrame(inter).select(loo_role()).collect().to_series().to_list() == [0, 0, 0, 1, 3, 2, 0, 0, 0]


# --------------------------------------------------------------------------- the pieces
def test_encode_is_exact_even_when_the_truncated_hash_collides(monkeypatch: pytest.MonkeyPatch) -> None:
    s = pl.Series("x", [f"id{i % 37}" for i in range(500)] + [None, "", "id3"])
    for bits in (None, 62):  # 62: only 2 hash bits left, so nearly every string shares a group with another
        if bits:
            monkeypatch.setattr(codes, "row_bits", lambda n, b=bits: b)
        c = codes.encode(s)
        assert_series_equal(c.values.gather(c.codes), s)
        assert c.values.n_unique() == c.values.len() == s.n_unique()
        assert c.null_code is not None and c.values[c.null_code] is None


def test_encode_constant_and_empty() -> None:
    c = codes.encode(pl.Series("e", ["view"] * 4))
    assert c.codes.tolist() == [0, 0, 0, 0] and c.values.to_list() == ["view"]
    assert codes.encode(pl.Series("e", [], dtype=pl.String)).codes.size == 0


@pytest.mark.parametrize("wide", [False, True])
def test_lex_order_matches_a_stable_polars_sort(wide: bool) -> None:
    rng = np.random.default_rng(0)
    n = 2_000
    major = rng.integers(0, 50, n)
    t = rng.integers(-5, 5, n) * (2**60 if wide else 1)  # wide: a span that cannot be packed -> dense ranks
    minor = pl.Series("t", t).scatter(rng.integers(0, n, 40), None)
    tiebreak = rng.permutation(n)
    frame = pl.DataFrame({"m": major, "t": minor, "b": tiebreak}).with_row_index("r")
    for tb, by in ((None, ["m", "t", "r"]), (tiebreak, ["m", "t", "b"])):
        want = frame.sort(by)["r"].to_numpy()
        np.testing.assert_array_equal(codes.lex_order(major, minor, tiebreak=tb), want)
