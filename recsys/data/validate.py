"""Row rules shared by every loader: what makes an interaction row unusable, and why.

A loader turns its source into a *staging* frame and hands it to :func:`validate`:

- ``user_id``, ``item_id`` (String, as read), ``timestamp`` (Int64 unix seconds, null when it could not be
  parsed), ``source_file``, ``source_row`` (1-based);
- optional ``event`` (String), ``quantity`` / ``price`` (Float64);
- optional ``_raw_timestamp`` / ``_raw_quantity`` / ``_raw_price`` (String, the text before parsing: a value
  present there but null after parsing is *unparseable*, a null there is *missing*);
- optional ``src:<name>`` columns: the row's original fields, rendered into ``quarantine.raw``.

Ids are normalised (strip + Unicode NFC) before any rule, so ``" A1"`` and ``"A1"`` (or a decomposed and a
composed "é") are the same id; rows that become identical after that are caught by the duplicate rule.
Rules run in order and the first that matches gives the reason; nothing is dropped without a reason.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence

import polars as pl

from recsys.data.quarantine import Rule, apply_rules, empty_quarantine
from recsys.data.schema import INTERACTIONS, ITEMS, Loaded, conform

log = logging.getLogger(__name__)

SRC = "src:"  # prefix of staging columns that hold the original fields (rendered into quarantine.raw)
MAX_ID_LEN = 512  # longer "ids" are pasted text or a broken quote, not identifiers
FUTURE_SLACK_S = 86_400  # clock skew tolerated before a timestamp counts as "in the future"
_CONTROL = r"[\x00-\x1f\x7f]"  # C0 controls and DEL; no legitimate id contains them
_TEXT_CONTROL = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]"  # in free text, tab/newline/CR are allowed
_ISO = ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%d %H:%M:%S%.f%z",
        "%Y-%m-%dT%H:%M%z", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d"]


# --------------------------------------------------------------------------- normalisation
def normalise_id(expr: pl.Expr) -> pl.Expr:
    """Strip surrounding whitespace and apply Unicode NFC (empty string -> null)."""
    out = expr.cast(pl.String).str.normalize("NFC").str.strip_chars()
    return pl.when(out == "").then(None).otherwise(out)


def clean_text(expr: pl.Expr) -> pl.Expr:
    """Catalogue text: NFC, control characters removed (tab/newline kept), stripped; empty -> null."""
    out = expr.cast(pl.String).str.normalize("NFC").str.replace_all(_TEXT_CONTROL, "").str.strip_chars()
    return pl.when(out == "").then(None).otherwise(out)


def to_unix_seconds(s: pl.Series, *, fmt: str | None = None) -> pl.Series:
    """Parse a time column to Int64 unix seconds (UTC); values that cannot be parsed become null.

    Accepts integers/floats (unit chosen from the column's median magnitude: s < 1e11 <= ms < 1e14 <= us
    < 1e17 <= ns), numeric strings (same), Date/Datetime columns, ISO 8601 strings (naive = UTC, ``Z`` or
    ``+hh:mm`` offsets honoured) or, when ``fmt`` is given, strings in that strptime format (naive = UTC).
    """
    name = s.name
    if s.dtype == pl.Date:
        return s.cast(pl.Datetime("ms")).dt.epoch("s").alias(name)
    if isinstance(s.dtype, pl.Datetime):
        return s.dt.epoch("s").alias(name)
    if s.dtype.is_numeric():
        return _numeric_seconds(s.cast(pl.Float64)).alias(name)
    txt = s.cast(pl.String).str.strip_chars()
    if fmt is not None:
        dtype = pl.Datetime("us", "UTC") if "%z" in fmt else pl.Datetime("us")
        return txt.str.strptime(dtype, fmt, strict=False).dt.epoch("s").alias(name)
    out = _numeric_seconds(txt.cast(pl.Float64, strict=False))
    frame = pl.DataFrame({"t": txt.str.replace(r"[Zz]$", "+00:00")})
    for f in _ISO:  # stop as soon as every present value has parsed (one format usually does them all)
        if out.null_count() == txt.null_count():
            break
        dtype = pl.Datetime("us", "UTC") if "%z" in f else pl.Datetime("us")
        out = out.fill_null(frame.select(pl.col("t").str.strptime(dtype, f, strict=False).dt.epoch("s")).to_series())
    return out.alias(name)


def _numeric_seconds(x: pl.Series) -> pl.Series:
    med = x.filter(x.is_finite()).abs().median()
    med = float(med) if med is not None else 0.0  # type: ignore[arg-type]
    div = 1.0 if med < 1e11 else 1e3 if med < 1e14 else 1e6 if med < 1e17 else 1e9
    v = pl.col("x")
    return pl.DataFrame({"x": x}).select(
        pl.when(v.is_finite() & (v.abs() < 9e18)).then((v / div).floor()).cast(pl.Int64)).to_series()


# --------------------------------------------------------------------------- rules
def row_rules(schema: Mapping[str, pl.DataType], *, names: Mapping[str, str], drop_cancellations: bool,
              now: int) -> list[Rule]:
    """The shared rules, in order, for a staging frame with columns ``schema``."""
    n = lambda c: names.get(c, c)  # noqa: E731  (the source's own column name, for the quarantine report)
    rules: list[Rule] = []
    for col, what in (("user_id", "user id"), ("item_id", "item id")):
        c = pl.col(col)
        rules += [
            Rule(c.is_null(), n(col), f"missing {what}"),
            Rule(c.str.contains("\ufffd", literal=True), n(col), f"invalid UTF-8 bytes in {what}"),
            Rule(c.str.contains(_CONTROL), n(col), f"control character in {what}"),
            Rule(c.str.len_chars() > MAX_ID_LEN, n(col), f"{what} longer than {MAX_ID_LEN} characters"),
        ]
    ts = pl.col("timestamp")
    if "_raw_timestamp" in schema:
        rules += [Rule(ts.is_null() & pl.col("_raw_timestamp").is_null(), n("timestamp"), "missing timestamp"),
                  Rule(ts.is_null(), n("timestamp"), "unparseable timestamp")]
    else:
        rules.append(Rule(ts.is_null(), n("timestamp"), "missing timestamp"))
    rules += [Rule(ts < 0, n("timestamp"), "timestamp before 1970"),
              Rule(ts > now + FUTURE_SLACK_S, n("timestamp"), "timestamp in the future")]
    for col in ("quantity", "price"):
        if f"_raw_{col}" in schema:
            rules.append(Rule(pl.col(col).is_null() & pl.col(f"_raw_{col}").is_not_null(), n(col),
                              f"{col} is not a number"))
    if "event" in schema:
        ev = pl.col("event")
        rules += [Rule(ev.is_null(), n("event"), "missing event"),
                  Rule(ev.str.contains(_CONTROL) | ev.str.contains("\ufffd", literal=True), n("event"),
                       "control character or invalid UTF-8 in event")]
    if drop_cancellations and "quantity" in schema:
        rules.append(Rule(pl.col("quantity") < 0, n("quantity"), "negative quantity (cancellation)"))
    return rules


def raw_expr(columns: Sequence[str]) -> pl.Expr:
    """``"name=value; ..."`` over the ``src:`` columns (or the canonical ones when there are none)."""
    src = [c for c in columns if c.startswith(SRC)]
    if not src:
        src = [c for c in ("user_id", "item_id", "timestamp", "event", "quantity", "price") if c in columns]
    parts = [pl.format("{}={}", pl.lit(c.removeprefix(SRC)), pl.col(c).cast(pl.String).fill_null("null"))
             for c in src]
    return pl.concat_str(parts, separator="; ").str.slice(0, 2000)


def validate(df: pl.DataFrame, *, drop_cancellations: bool, names: Mapping[str, str] | None = None,
             extra: Sequence[Rule] = (), now: int | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Normalise ids, apply ``extra`` (source-specific, first) then the shared rules, then drop exact
    duplicates. Returns ``(interactions, quarantine)``: ``schema.INTERACTIONS`` and ``schema.QUARANTINE``,
    with ``interactions.height + quarantine.height == df.height``.
    """
    names = dict(names or {})
    now = int(time.time()) if now is None else now
    df = df.with_columns(normalise_id(pl.col("user_id")).alias("user_id"),
                         normalise_id(pl.col("item_id")).alias("item_id"))
    if "event" in df.columns:
        df = df.with_columns(pl.col("event").cast(pl.String).str.strip_chars().str.to_lowercase()
                             .replace("", None).alias("event"))
    rules = [*extra, *row_rules(df.schema, names=names, drop_cancellations=drop_cancellations, now=now)]
    raw = raw_expr(df.columns)
    kept, q1 = apply_rules(df, rules, raw=raw)
    if "event" not in kept.columns:
        kept = kept.with_columns(pl.lit("purchase").alias("event"))
    key = [c for c in ("user_id", "item_id", "timestamp", "event", "quantity", "price") if c in kept.columns]
    dup = Rule(pl.struct(key).is_first_distinct().not_(), ",".join(n for n in (names.get(k, k) for k in key)),
               "duplicate row (same user, item, time, event, quantity, price)")
    kept, q2 = apply_rules(kept, [dup], raw=raw)
    return conform(kept, INTERACTIONS), pl.concat([q1, q2])


# --------------------------------------------------------------------------- catalogue and result
def clean_items(items: pl.DataFrame, *, source: str) -> pl.DataFrame:
    """Normalise a catalogue (ITEMS columns): ids like the log's, text cleaned, first row per id kept.

    Catalogue rows are not interactions, so they are not counted in ``n_read``; rows without an id cannot be
    joined to anything and are dropped with a warning naming how many.
    """
    items = conform(items, ITEMS).with_columns(
        normalise_id(pl.col("item_id")).alias("item_id"),
        *[clean_text(pl.col(c)).alias(c) for c in ("title", "brand", "description")],
        pl.col("categories").list.eval(clean_text(pl.element())).list.drop_nulls()
        .fill_null(pl.lit([], dtype=pl.List(pl.String))).alias("categories"),
    )
    bad = items["item_id"].is_null().sum()
    if bad:
        log.warning("%s: %d catalogue rows have no item id and were skipped", source, bad)
    return items.filter(pl.col("item_id").is_not_null()).unique("item_id", keep="first", maintain_order=True)


def make_loaded(*, parts: Sequence[tuple[pl.DataFrame, pl.DataFrame]], items: pl.DataFrame | None,
                n_read: int, source: str) -> Loaded:
    """Concatenate per-file (interactions, quarantine) pairs and check the count invariant."""
    inter = pl.concat([p[0] for p in parts]) if parts else conform(pl.DataFrame(), INTERACTIONS)
    qs = [p[1] for p in parts if p[1].height]
    quarantine = pl.concat(qs) if qs else empty_quarantine()
    assert n_read == inter.height + quarantine.height, (n_read, inter.height, quarantine.height)
    return Loaded(interactions=inter, items=items, quarantine=quarantine, n_read=n_read, source=source)
