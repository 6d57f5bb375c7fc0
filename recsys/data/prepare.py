"""De-duplicate, k-core filter and map ids to contiguous ints. Rejected rows go to quarantine.

The tables are those of the obvious polars version (``is_first_distinct`` on the event, ``count().over`` on
the string ids until stable, joins on the ids, one four-key sort), which ``tests/data/test_prepare.py``
keeps as the reference. The plan here is built so that a 10M-row log with string ids takes seconds:

1. ``user_id`` and ``item_id`` become int32 codes once (``codes.encode``); users are ranked by raw id (the
   final id order), log items get their final id through the catalogue (a join of two small tables);
2. one stable sort of the row numbers by (user, timestamp, source_file, source_row), the output order,
   from two value sorts of packed 64-bit keys (``codes.lex_order``);
3. exact duplicates share (user, timestamp), so they sit in runs of that order: only the rows of such runs
   (a few percent) are compared on (user, item, timestamp, event), in input order;
4. the k-core is ``np.bincount`` over the codes of the surviving rows, repeated until nothing changes;
5. each rejection is a boolean mask over the input: quarantined rows keep input order and get their ``raw``
   rendering; the kept rows are the sorted rows minus the rejected ones, ``pos`` from per-user offsets.

Users are coded and ranked on a second thread while items and the catalogue are done (numpy and polars
release the GIL). Memory: the input is alive throughout (the caller holds it) and the output tables and the
quarantine are built one after the other, each (N,) array released after its last use.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import polars as pl

from recsys.data.codes import Coded, encode, lex_order, rank_codes, tie_runs
from recsys.data.quarantine import empty_quarantine, to_quarantine
from recsys.data.schema import ITEMS, TABLE_INTERACTIONS, TABLE_ITEMS, TABLE_USERS, Loaded, conform

log = logging.getLogger(__name__)
DUPLICATE = "duplicate event (same user, item, time, event)"
NOT_IN_CATALOGUE = "item not in catalogue"
MISSING_ID = "missing user or item id"
EVENT_KEY = ["user_id", "item_id", "timestamp", "event"]


def kcore_reason(k: int) -> str:
    return f"filtered by {k}-core (user or item has < {k} events)"


@dataclasses.dataclass(frozen=True)
class Prepared:
    interactions: pl.DataFrame  # TABLE_INTERACTIONS, sorted by user, pos
    items: pl.DataFrame  # TABLE_ITEMS, item = row index
    users: pl.DataFrame  # TABLE_USERS, user = row index
    quarantine: pl.DataFrame  # the log's rejected rows (``counts["quarantined"]``), then the catalogue's
    counts: dict[str, int]


# ------------------------------------------------------------------------- steps on codes (numpy in and out)
def event_order(df: pl.DataFrame, *, user: np.ndarray) -> np.ndarray:
    """(N,) row numbers by (``user``, timestamp, source_file, source_row): the prepared table's order."""
    return lex_order(user, df["timestamp"], tiebreak=_file_rank(df))


def _file_rank(df: pl.DataFrame) -> np.ndarray | None:
    """Each row's rank by (source_file, source_row), or None when the rows are in that order already (as
    every loader leaves them)."""
    n = df.height
    f, r = df["source_file"], df["source_row"]
    if n < 2:
        return None
    if f.null_count() == 0 and r.null_count() == 0:
        in_order = r.slice(1) >= r.slice(0, n - 1)
        if not (f == f[0]).all():
            fa, fb = f.slice(0, n - 1), f.slice(1)
            in_order = (fb > fa) | ((fb == fa) & in_order)
        if in_order.all():
            return None
    order = df.select(pl.arg_sort_by("source_file", "source_row")).to_series().to_numpy()
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    return rank


def duplicate_mask(df: pl.DataFrame, *, users: Coded, items: Coded, events: Coded, order: np.ndarray,
                   sorted_user: np.ndarray, sorted_ts: np.ndarray) -> np.ndarray:
    """(N,) bool: rows whose (user, item, timestamp, event) occurred on an earlier row.

    ``order`` is a row order sorted by (user, timestamp), ``sorted_user`` / ``sorted_ts`` those keys in
    that order (any int encoding; nulls as one value): repeats sit in its runs of equal (user, timestamp),
    so only the rows of such runs are compared, in input order."""
    cand = order[tie_runs([sorted_user, sorted_ts])]
    dup = np.zeros(df.height, dtype=bool)
    if cand.size:
        cand.sort()
        sub = pl.DataFrame({"u": users.codes[cand], "i": items.codes[cand], "t": df["timestamp"].gather(cand),
                            "e": events.codes[cand]})
        first = sub.select(pl.struct(pl.all()).is_first_distinct()).to_series().to_numpy()
        dup[cand[~first]] = True
    return dup


def _ts_ints(df: pl.DataFrame) -> np.ndarray:
    """(N,) int64 timestamps, null -> 0 (only compared for equality, to find candidate repeats)."""
    ts = df["timestamp"]
    return (ts.fill_null(0) if ts.null_count() else ts).to_numpy()


def kcore_mask(*, users: Coded, items: Coded, alive: np.ndarray, k: int) -> np.ndarray:
    """(N,) bool: the rows of ``alive`` in the iterative ``k``-core (every user and item has >= k of them).

    Rows with a null id are never in it (as ``count()`` skips nulls); ``k <= 1`` drops only those."""
    u, i = users.codes, items.codes
    keep = alive.copy()
    for null, codes in ((users.null_code, u), (items.null_code, i)):
        if null is not None:
            keep &= codes != null
    if k > 1 and keep.any():
        # counts over the live rows; each round drops the live rows of users/items below k, subtracts them.
        # The candidates are a mask, not a row index: an (N,) int64 index would be the largest array here
        uu, ii = u[keep].astype(np.intp), i[keep].astype(np.intp)  # intp: int32 indices are cast per lookup
        n_u = np.bincount(uu, minlength=users.values.len())
        n_i = np.bincount(ii, minlength=items.values.len())
        live = np.ones(uu.size, dtype=bool)
        while True:
            drop = (n_u < k)[uu]
            drop |= (n_i < k)[ii]
            drop &= live
            if not drop.any():
                break
            live &= ~drop
            n_u -= np.bincount(uu[drop], minlength=n_u.size)
            n_i -= np.bincount(ii[drop], minlength=n_i.size)
        keep[keep] = live
    return keep


def build_catalogue(items: pl.DataFrame | None, log_items: pl.Series, *,
                    require_catalogue: bool) -> tuple[pl.DataFrame, np.ndarray, np.ndarray]:
    """Return (the items table, (K,) int32 item id of each value of ``log_items``, -1 when it has none,
    (n_items,) bool: the item came from the log only, with empty text, although a catalogue was given).

    Every catalogue item gets an id, including items nobody interacted with (cold items). Items seen only
    in the log are added with empty text unless ``require_catalogue`` (their events are then quarantined).
    Ids follow the sorted ``item_id``.
    """
    ids = log_items.to_frame("item_id")
    if items is None:
        cat = conform(ids, ITEMS).with_columns(pl.lit(False).alias("_absent"))
    else:
        cat = items.unique(subset="item_id", keep="first", maintain_order=True).with_columns(
            pl.lit(False).alias("_absent"))
        if not require_catalogue:
            absent = conform(ids.join(cat.select("item_id"), on="item_id", how="anti"), ITEMS)
            cat = pl.concat([conform(cat, ITEMS).with_columns(pl.lit(False).alias("_absent")),
                             absent.filter(pl.col("item_id").is_not_null()).with_columns(pl.lit(True).alias("_absent")),
                             absent.filter(pl.col("item_id").is_null()).with_columns(pl.lit(False).alias("_absent"))])
    cat = pl.concat([conform(cat, ITEMS), cat.select("_absent")], how="horizontal")
    table = cat.sort("item_id").with_row_index("item").with_columns(pl.col("item").cast(pl.Int32))
    item_of = ids.join(table.select("item_id", "item"), on="item_id", how="left", maintain_order="left")
    return table.drop("_absent"), item_of["item"].fill_null(-1).to_numpy(), table["_absent"].to_numpy()


def user_ids(users: Coded, *, user_rank: np.ndarray,
             sorted_rank: np.ndarray) -> tuple[pl.DataFrame, np.ndarray]:
    """Return (the users table, (n,) int32 user id of each kept row) from the rows' ``user_rank`` (K,)
    ranks ``sorted_rank`` (n,): the users that keep events get ids 0..U-1 in raw-id order."""
    present = np.zeros(len(user_rank), dtype=bool)
    present[sorted_rank] = True
    by_rank = np.empty(len(user_rank), dtype=np.int64)
    by_rank[user_rank] = np.arange(len(user_rank))
    kept = by_rank[present]  # codes of the kept users, sorted by user_id
    table = pl.DataFrame({"user": np.arange(len(kept), dtype=np.int32), "user_id": users.values.gather(kept)})
    return table, (np.cumsum(present, dtype=np.int32) - 1)[sorted_rank]


def positions(user: np.ndarray, *, n_users: int) -> np.ndarray:
    """(n,) int32 0-based position of each row within its user's run (rows sorted by user)."""
    per_user = np.bincount(user, minlength=n_users)
    per_user = per_user[per_user > 0]
    # a running count that steps back by the previous run's length where a user starts, summed in place:
    # the prepared table is alive by now, so no (n,) temporary besides the result
    pos = np.ones(len(user), dtype=np.int32)
    if len(user):
        pos[0] = 0
        pos[np.cumsum(per_user[:-1])] = 1 - per_user[:-1]
    return np.cumsum(pos, dtype=np.int32, out=pos)


def interactions_table(df: pl.DataFrame, *, rows: np.ndarray, ranks: np.ndarray, times: np.ndarray,
                       users: Coded, user_rank: np.ndarray, items: Coded, item_of: np.ndarray,
                       events: Coded) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(the users table, the prepared interactions) of ``df``'s kept ``rows`` (in output order), whose user
    ranks and timestamps (null as 0) are ``ranks`` and ``times``."""
    users_table, user = user_ids(users, user_rank=user_rank, sorted_rank=ranks)
    ts = df["timestamp"]
    mapped = pl.DataFrame({
        "user": user,
        # ids of all N rows first: a temporary that large is its own mapping, returned to the system when
        # freed, where an (n,) one can stay resident in the heap next to the outputs
        "item": item_of[items.codes][rows],
        "timestamp": times if ts.null_count() == 0 else ts.gather(rows),
        "pos": positions(user, n_users=users_table.height),
    })
    return users_table, mapped.with_columns(_take(events, rows).alias("event"))


def _coded_and_ranked(s: pl.Series) -> tuple[Coded, np.ndarray]:
    coded = encode(s)
    return coded, rank_codes(coded.values)


def quarantine_rows(df: pl.DataFrame, *, earlier: pl.DataFrame, duplicate: np.ndarray,
                    not_in_catalogue: np.ndarray, not_in_kcore: np.ndarray, k: int) -> pl.DataFrame:
    """``earlier`` + the rejected rows of ``df`` (boolean masks), each part in input order."""
    raw_all = _raw_cols(df)
    parts = [
        earlier,
        _rejected(df, duplicate, reason=DUPLICATE, column="user_id,item_id,timestamp", raw_cols=raw_all),
        _rejected(df, not_in_catalogue, reason=NOT_IN_CATALOGUE, column="item_id", raw_cols=raw_all),
        _rejected(df, not_in_kcore, reason=kcore_reason(k) if k > 1 else MISSING_ID, column="user_id,item_id",
                  raw_cols=EVENT_KEY),
    ]
    parts = [p for p in parts if p.height]
    return pl.concat(parts, how="vertical") if parts else empty_quarantine()


def items_with_text(items: pl.DataFrame) -> int:
    """Items with any text (title, brand, description or a category): what a text encoder can embed."""
    has = [pl.col(c).is_not_null() for c in ("title", "brand", "description") if c in items.columns]
    if "categories" in items.columns:
        has.append(pl.col("categories").list.len().fill_null(0) > 0)
    return int(items.select(pl.any_horizontal(has).sum()).item()) if has and items.height else 0


def _raw_cols(df: pl.DataFrame) -> list[str]:
    """The input columns a quarantined row's ``raw`` text shows (all but its provenance)."""
    return [c for c in df.columns if c not in ("source_file", "source_row")]


def _take(coded: Coded, rows: np.ndarray) -> pl.Series | pl.Expr:
    """The column's values at ``rows`` (gathered from the small table of distinct values).

    One value (a log of purchases only) is a literal: polars keeps it as a scalar column, which filters
    and writes like any other but holds no per-row strings (16 bytes a row otherwise, in every split too).
    """
    if coded.values.len() == 1:
        return pl.lit(coded.values[0], dtype=coded.values.dtype)
    return coded.values.gather(coded.codes[rows])


def _n_distinct(ids: np.ndarray, n: int) -> int:
    seen = np.zeros(n, dtype=bool)
    seen[ids] = True
    return int(np.count_nonzero(seen))


def _rejected(df: pl.DataFrame, mask: np.ndarray, *, reason: str, column: str,
              raw_cols: list[str]) -> pl.DataFrame:
    if not mask.any():
        return empty_quarantine()
    cols = [c for c in raw_cols if c in df.columns]
    bad = (df.select(*cols, "source_file", "source_row", pl.Series("_m", mask)).lazy().filter("_m")
           .with_columns(pl.lit(reason).alias("_r"), pl.lit(column).alias("_c")))
    # streamed: the rejected rows' input columns are rendered batch by batch, never held all at once
    return to_quarantine(bad, reason_col="_r", column_col="_c", raw_cols=raw_cols).collect(engine="streaming")


# --------------------------------------------------------------------------- frame in, frames out
def dedupe_events(df: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Exact repeats of (user, item, timestamp, event) keep their first row; the rest are quarantined."""
    users, items, events = encode(df["user_id"]), encode(df["item_id"]), encode(df["event"])
    order = lex_order(users.codes, df["timestamp"])
    dup = duplicate_mask(df, users=users, items=items, events=events, order=order,
                         sorted_user=users.codes[order], sorted_ts=_ts_ints(df)[order])
    q = _rejected(df, dup, reason=DUPLICATE, column="user_id,item_id,timestamp", raw_cols=_raw_cols(df))
    return df.filter(pl.Series(~dup)), q


def kcore(df: pl.DataFrame, *, k: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Iteratively drop users and items with fewer than ``k`` events until stable."""
    if k <= 1:
        return df, empty_quarantine()
    keep = kcore_mask(users=encode(df["user_id"]), items=encode(df["item_id"]),
                      alive=np.ones(df.height, dtype=bool), k=k)
    return df.filter(pl.Series(keep)), _rejected(df, ~keep, reason=kcore_reason(k), column="user_id,item_id",
                                                 raw_cols=EVENT_KEY)


def prepare(loaded: Loaded, *, kcore_k: int, require_catalogue: bool,
            timings: dict[str, float] | None = None) -> Prepared:
    """Dedupe, catalogue, k-core and id maps of a loaded log.

    Args:
        timings: when given, filled with the seconds each step took (``bench_data.py --profile``).
    """
    t = [time.perf_counter()]

    def lap(step: str) -> None:
        if timings is not None:
            now = time.perf_counter()
            timings[step] = now - t[0]
            t[0] = now

    df = loaded.interactions
    # users are coded and ranked while items and the catalogue are done
    with ThreadPoolExecutor(max_workers=1) as pool:
        users_job = pool.submit(_coded_and_ranked, df["user_id"])
        items, events = encode(df["item_id"]), encode(df["event"])
        catalogue, item_of, absent_item = build_catalogue(loaded.items, items.values,
                                                          require_catalogue=require_catalogue)
        users, user_rank = users_job.result()
        del users_job  # the future holds the codes too
    lap("codes+catalogue")
    rank = user_rank[users.codes]
    order = event_order(df, user=rank)  # the output order, all rows
    rank, ts = rank[order], _ts_ints(df)[order]  # keys in that order
    lap("sort")
    dup = duplicate_mask(df, users=users, items=items, events=events, order=order, sorted_user=rank,
                         sorted_ts=ts)
    unknown = np.zeros(df.height, dtype=bool)
    if require_catalogue:
        absent = item_of < 0
        if items.null_code is not None:
            absent[items.null_code] = False  # null: not "not in the catalogue" (k-core drops it)
        unknown = ~dup & absent[items.codes]
    alive = ~(dup | unknown)
    keep = kcore_mask(users=users, items=items, alive=alive, k=kcore_k)
    lap("dedupe+kcore")
    kept = keep[order]
    rows, rank, ts = order[kept], rank[kept], ts[kept]  # the kept rows in output order, their keys
    del order, kept
    users_table, mapped = interactions_table(df, rows=rows, ranks=rank, times=ts, users=users,
                                             user_rank=user_rank, items=items, item_of=item_of, events=events)
    del rows, rank, ts, users, items, events  # gone before the quarantine is built next to the tables
    lap("tables")
    quarantine = quarantine_rows(df, earlier=loaded.quarantine, duplicate=dup, not_in_catalogue=unknown,
                                 not_in_kcore=alive & ~keep, k=kcore_k)
    lap("quarantine")
    kept_items = mapped["item"].to_numpy()
    counts = {
        "read": loaded.n_read,
        "kept": mapped.height,
        "quarantined": quarantine.height,
        "users": users_table.height,
        "items": catalogue.height,
        "items_without_events": catalogue.height - _n_distinct(kept_items, catalogue.height),
        "items_with_text": items_with_text(catalogue),
        **loaded.counters,
    }
    if loaded.items is not None:  # log items the catalogue lacks: in the tables with empty text
        counts["items_not_in_catalogue"] = int(absent_item.sum())
        counts["events_of_items_not_in_catalogue"] = int(absent_item[kept_items].sum())
        if counts["items_not_in_catalogue"]:
            log.warning("%d items of the log (%d kept events) are not in the catalogue: they have no text "
                        "(data.require_catalogue=true quarantines their events instead)",
                        counts["items_not_in_catalogue"], counts["events_of_items_not_in_catalogue"])
    if loaded.items_quarantine is not None and loaded.items_quarantine.height:
        # catalogue rows are not interactions: listed in the same file, counted apart (catalogue_quarantined)
        quarantine = pl.concat([quarantine, loaded.items_quarantine])
    return Prepared(
        interactions=conform(mapped, TABLE_INTERACTIONS),
        items=conform(catalogue, TABLE_ITEMS),
        users=conform(users_table, TABLE_USERS),
        quarantine=quarantine,
        counts=counts,
    )
