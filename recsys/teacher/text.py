"""Item and history texts: one template over the catalogue columns, robust to whatever the logs hold.

Robustness is the point here: real catalogues carry None, lone UTF-16 surrogates from bad decoding,
control characters, HTML-ish junk and 100 KB descriptions. Every text that leaves this module is valid
UTF-8, has no control characters, single spaces, and at most ``max_chars`` characters (a cheap
pre-cut; the tokenizer then truncates to the token budget).
"""

from __future__ import annotations

import math
import re
import string
import unicodedata
from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl

_WS = re.compile(r"\s+")
_DOUBLE_STOP = re.compile(r"([.!?])\s*\.(?=\s|$)")  # "Great cream.. Price" -> "Great cream. Price"
_FIELDS = ("title", "brand", "categories", "description", "price")


def clean_text(value: Any, *, max_chars: int = 2000) -> str:
    """Any value -> a printable single-line str (``""`` for None/NaN/empty).

    Lone surrogates and undecodable bytes become U+FFFD; control/format characters become spaces;
    emoji and other symbols are kept (tokenizers map them to [UNK] or byte tokens, which is harmless).
    """
    if value is None:
        return ""
    if isinstance(value, float) and not math.isfinite(value):
        return ""
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    s = str(value)[: max_chars * 2]  # cut before the per-character work: a 100 KB text costs nothing
    s = s.encode("utf-8", errors="replace").decode("utf-8", errors="replace")  # lone surrogates -> '?'
    s = "".join(" " if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zl", "Zp") else ch for ch in s)
    s = _WS.sub(" ", s).strip()
    return s[:max_chars].rstrip()


def _field(value: Any, name: str) -> str:
    if name == "categories" and isinstance(value, (list, tuple, pl.Series, np.ndarray)):
        parts = [clean_text(v, max_chars=200) for v in list(value)]
        return " > ".join(p for p in parts if p)
    if name == "price" and value is not None:
        try:
            f = float(value)
        except (TypeError, ValueError):
            return clean_text(value, max_chars=50)
        return f"${f:.2f}" if math.isfinite(f) else ""
    return clean_text(value)


def render(template: str, fields: dict[str, str]) -> str:
    """Fill ``template``; a segment whose field is empty is dropped with its literal text.

    The template is split into segments at each ``{field}``: the literal text *before* a field belongs to
    it ("Brand: {brand}" disappears as a whole when brand is missing). A leading literal is kept.
    """
    out: list[str] = []
    for literal, name, _spec, _conv in string.Formatter().parse(template):
        if name is None:
            out.append(literal)
            continue
        value = fields.get(name, "")
        if value:
            out.append(literal if out else literal.lstrip(". "))
            out.append(value)
    s = _DOUBLE_STOP.sub(r"\1", _WS.sub(" ", "".join(out)).strip())
    return s.rstrip(" .:,;-") if s else s


def item_texts(items: pl.DataFrame, *, template: str, max_chars: int = 2000) -> list[str]:
    """One text per row of ``items`` (row order), from the columns the template names.

    Columns absent from the frame count as missing. ``max_chars`` bounds any single field.
    """
    names = [n for _, n, _, _ in string.Formatter().parse(template) if n]
    unknown = [n for n in names if n not in _FIELDS and n not in items.columns]
    if unknown:
        raise ValueError(f"item_template names {unknown}, which are not columns of the items table "
                         f"({items.columns}); use some of {list(_FIELDS)}")
    cols = {n: (items[n].to_list() if n in items.columns else [None] * items.height) for n in names}
    texts = []
    for i in range(items.height):
        fields = {n: _field(cols[n][i], n)[:max_chars] for n in names}
        texts.append(render(template, fields))
    return texts


def history_texts(
    history: pl.DataFrame, titles: Sequence[str], *, n_users: int, last_n: int, prefix: str = "Recently bought: "
) -> list[str]:
    """One text per user: titles of the last ``last_n`` items of ``history`` (most recent first).

    ``history`` must hold only events strictly before the prediction point
    (``Tables.history(split)``); users without history get ``""``.
    Args:
        history: (user, item, pos) events.
        titles: cleaned title per item id.
    """
    h = (history.sort("user", "pos", descending=[False, True])
         .group_by("user", maintain_order=True).head(last_n)
         .group_by("user", maintain_order=True).agg(pl.col("item")))
    out = [""] * n_users
    for u, its in h.iter_rows():
        out[u] = prefix + "; ".join(clean_text(titles[i], max_chars=200) for i in its)
    return out
