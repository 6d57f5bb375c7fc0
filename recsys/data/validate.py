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
_CONTROL = r"[\x00-\x1f\x7f-\x9f]"  # C0 and C1 controls and DEL; no legitimate id contains them
# Bidirectional overrides/isolates and invisible format characters: an id holding them displays as another id
# ("Trojan Source"); ZWJ/ZWNJ (U+200C/D) are left alone, as Persian and Indic spellings need them
_INVISIBLE = r"[\u00ad\u061c\u180e\u200b\u200e\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff\ufff9-\ufffb]"
_JSON_LIKE = r"^(?s:\{.*\}|\[.*\])$"  # a JSON object or list where a scalar id belongs
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


def to_unix_seconds(s: pl.Series, *, fmt: str | None = None, counts: dict[str, int] | None = None) -> pl.Series:
    """Parse a time column to Int64 unix seconds (UTC); values that cannot be parsed become null.

    Accepts integers/floats (the unit is decided per value from its magnitude: s < 1e11 <= ms < 1e14 <= us
    < 1e17 <= ns, so a column mixing seconds and milliseconds keeps every date), numeric strings (same),
    Date/Datetime columns, ISO 8601 strings (naive = UTC, ``Z`` or ``+hh:mm`` offsets honoured) or, when
    ``fmt`` is given, strings in that strptime format (naive = UTC).

    Args:
        counts: when given, ``timestamps_from_ms`` / ``_us`` / ``_ns`` are increased by the number of values
            read in that unit (the data stage reports them), and a column mixing units is logged.
    """
    name = s.name
    if s.dtype == pl.Date:
        return s.cast(pl.Datetime("ms")).dt.epoch("s").alias(name)
    if isinstance(s.dtype, pl.Datetime):
        return s.dt.epoch("s").alias(name)
    if s.dtype.is_numeric():
        return _numeric_seconds(s.cast(pl.Float64), name=name, counts=counts).alias(name)
    txt = s.cast(pl.String).str.strip_chars()
    if fmt is not None:
        dtype = pl.Datetime("us", "UTC") if "%z" in fmt else pl.Datetime("us")
        return txt.str.strptime(dtype, fmt, strict=False).dt.epoch("s").alias(name)
    out = _numeric_seconds(txt.cast(pl.Float64, strict=False), name=name, counts=counts)
    frame = pl.DataFrame({"t": txt.str.replace(r"[Zz]$", "+00:00")})
    for f in _ISO:  # stop as soon as every present value has parsed (one format usually does them all)
        if out.null_count() == txt.null_count():
            break
        dtype = pl.Datetime("us", "UTC") if "%z" in f else pl.Datetime("us")
        out = out.fill_null(frame.select(pl.col("t").str.strptime(dtype, f, strict=False).dt.epoch("s")).to_series())
    return out.alias(name)


def _numeric_seconds(x: pl.Series, *, name: str = "", counts: dict[str, int] | None = None) -> pl.Series:
    """Numbers -> whole seconds, each value's unit from its own magnitude (see ``to_unix_seconds``)."""
    v = pl.col("x")
    a = v.abs()
    unit = pl.when(a < 1e11).then(pl.lit("s")).when(a < 1e14).then(pl.lit("ms")).when(a < 1e17).then(pl.lit("us"))\
        .otherwise(pl.lit("ns"))
    div = pl.when(a < 1e11).then(1.0).when(a < 1e14).then(1e3).when(a < 1e17).then(1e6).otherwise(1e9)
    ok = v.is_finite() & (a < 9e18)
    frame = pl.DataFrame({"x": x})
    if counts is not None:
        n = dict(frame.filter(ok).select(unit.alias("u")).group_by("u").len().iter_rows())
        for u in ("ms", "us", "ns"):
            if n.get(u):
                counts[f"timestamps_from_{u}"] = counts.get(f"timestamps_from_{u}", 0) + int(n[u])
        if len(n) > 1:
            log.warning("column '%s' mixes time units (%s): each value was converted by its own magnitude", name,
                        ", ".join(f"{n[u]} in {u}" for u in ("s", "ms", "us", "ns") if u in n))
    return frame.select(pl.when(ok).then((v / div).floor()).cast(pl.Int64)).to_series()


# --------------------------------------------------------------------------- rules
def id_rules(c: pl.Expr, *, column: str, what: str) -> list[Rule]:
    """What makes a (normalised) id unusable, in order: shared by the log rows and the catalogue rows."""
    return [
        Rule(c.is_null(), column, f"missing {what}"),
        Rule(c.str.contains("\ufffd", literal=True), column, f"invalid UTF-8 bytes in {what}"),
        Rule(c.str.contains(_CONTROL), column, f"control character in {what}"),
        Rule(c.str.contains(_INVISIBLE), column, f"bidirectional-override or invisible character in {what}"),
        Rule(c.str.len_chars() > MAX_ID_LEN, column, f"{what} longer than {MAX_ID_LEN} characters"),
        Rule(c.str.contains(_JSON_LIKE), column, f"{what} is a JSON object or list, not a scalar"),
    ]


def structure_rules(schema: Mapping[str, pl.DataType]) -> list[Rule]:
    """Rows the reader could not split into fields (marked by ``read_jsonl`` / ``read_log``): first of all."""
    rules = []
    if "_json_error" in schema:
        rules.append(Rule(pl.col("_json_error").is_not_null(), "(line)", "not a JSON object (garbage line)"))
    if "_ragged" in schema:
        rules.append(Rule(pl.col("_ragged").fill_null(False), "(row)",
                          "more fields than the header (an unquoted separator inside a field?)"))
    return rules


def row_rules(schema: Mapping[str, pl.DataType], *, names: Mapping[str, str], drop_cancellations: bool,
              now: int) -> list[Rule]:
    """The shared rules, in order, for a staging frame with columns ``schema``."""
    n = lambda c: names.get(c, c)  # noqa: E731  (the source's own column name, for the quarantine report)
    rules: list[Rule] = []
    for col, what in (("user_id", "user id"), ("item_id", "item id")):
        c = pl.col(col)
        rules += id_rules(c, column=n(col), what=what)
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
    rules = [*structure_rules(df.schema), *extra,
             *row_rules(df.schema, names=names, drop_cancellations=drop_cancellations, now=now)]
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
CATALOGUE_DUPLICATE = "duplicate catalogue row (the item id's first row is kept)"


def clean_items(items: pl.DataFrame, *, source: str,
                counts: dict[str, int] | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Normalise a catalogue: ids like the log's, text cleaned, one row per id. Returns (ITEMS, QUARANTINE).

    ``items`` holds ITEMS columns and, when the reader knows them, ``source_file`` / ``source_row`` (1-based
    data row; default ``source`` / null) and the reader's ``_json_error`` / ``_ragged`` marks. A row is
    quarantined for the same id rules as a log row (missing, invalid UTF-8, control or bidi characters,
    > 512 characters, a JSON object) or as a later duplicate of an id. Catalogue rows are not interactions:
    ``counts`` (when given) gets ``catalogue_read = catalogue_kept + catalogue_quarantined`` and
    ``catalogue_rows_with_replaced_bytes`` (text holding U+FFFD: undecodable bytes, see ``data.encoding``).
    """
    prov = [pl.col("source_file").cast(pl.String) if "source_file" in items.columns else pl.lit(source).alias(
        "source_file"), pl.col("source_row").cast(pl.Int64) if "source_row" in items.columns
        else pl.lit(None, dtype=pl.Int64).alias("source_row")]
    marks = [c for c in ("_json_error", "_ragged") if c in items.columns]
    items = items.with_columns(*prov)
    df = pl.concat([conform(items, ITEMS), items.select("source_file", "source_row", *marks)], how="horizontal")
    text = [c for c in ("title", "brand", "description") if df[c].null_count() < df.height]
    replaced = pl.any_horizontal([pl.col(c).str.contains("\ufffd", literal=True) for c in text]) if text \
        else pl.lit(False)
    n_replaced = int(df.select(replaced.fill_null(False).sum()).item())
    df = df.with_columns(
        normalise_id(pl.col("item_id")).alias("item_id"),
        *[clean_text(pl.col(c)).alias(c) for c in ("title", "brand", "description")],
        pl.col("categories").list.eval(clean_text(pl.element())).list.drop_nulls()
        .fill_null(pl.lit([], dtype=pl.List(pl.String))).alias("categories"),
    )
    raw = pl.concat_str([pl.format("{}={}", pl.lit(c), pl.col(c).cast(pl.String).fill_null("null"))
                         for c in ("item_id", "title", "brand", "description", "price")],
                        separator="; ").str.slice(0, 2000)
    rules = [*structure_rules(df.schema), *id_rules(pl.col("item_id"), column="item_id", what="item id")]
    kept, q1 = apply_rules(df, rules, raw=raw)
    kept, q2 = apply_rules(kept, [Rule(pl.col("item_id").is_first_distinct().not_(), "item_id", CATALOGUE_DUPLICATE)],
                           raw=raw)
    quarantine = pl.concat([q1, q2])
    if counts is not None:
        counts["catalogue_read"] = counts.get("catalogue_read", 0) + df.height
        counts["catalogue_kept"] = counts.get("catalogue_kept", 0) + kept.height
        counts["catalogue_quarantined"] = counts.get("catalogue_quarantined", 0) + quarantine.height
        counts["catalogue_rows_with_replaced_bytes"] = counts.get("catalogue_rows_with_replaced_bytes", 0) + n_replaced
    if quarantine.height:
        log.warning("%s: %d of %d catalogue rows quarantined (%s)", source, quarantine.height, df.height,
                    ", ".join(f"{n} {r}" for r, n in quarantine.group_by("reason").len().sort("len", descending=True)
                              .iter_rows()))
    if n_replaced:
        log.warning("%s: %d catalogue rows hold bytes that are not UTF-8 (shown as U+FFFD); if the file is in "
                    "another encoding, set data.encoding (e.g. data.encoding=latin-1)", source, n_replaced)
    return kept.select(list(ITEMS)), quarantine


def make_loaded(*, parts: Sequence[tuple[pl.DataFrame, pl.DataFrame]],
                items: pl.DataFrame | tuple[pl.DataFrame, pl.DataFrame] | None, n_read: int, source: str,
                counters: Mapping[str, int] | None = None, notes: Sequence[str] = ()) -> Loaded:
    """Concatenate per-file (interactions, quarantine) pairs and check the count invariant. ``items`` may be
    ``clean_items``' (catalogue, catalogue quarantine) pair."""
    items_q = None
    if isinstance(items, tuple):
        items, items_q = items
    inter = pl.concat([p[0] for p in parts]) if parts else conform(pl.DataFrame(), INTERACTIONS)
    qs = [p[1] for p in parts if p[1].height]
    quarantine = pl.concat(qs) if qs else empty_quarantine()
    assert n_read == inter.height + quarantine.height, (n_read, inter.height, quarantine.height)
    return Loaded(interactions=inter, items=items, quarantine=quarantine, n_read=n_read, source=source,
                  items_quarantine=items_q, counters=dict(counters or {}), notes=tuple(notes))
