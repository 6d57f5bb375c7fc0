from __future__ import annotations

import polars as pl

from recsys.teacher.text import clean_text, history_texts, item_texts, render


def test_clean_text_is_robust() -> None:
    assert clean_text(None) == "" and clean_text(float("nan")) == ""
    assert clean_text("a\x00b\tc\n\nd\u200b e") == "a b c d e"
    assert clean_text("x\ud800y").encode("utf-8")  # lone surrogate no longer breaks UTF-8
    assert clean_text(b"caf\xe9") == "caf\ufffd"
    assert clean_text("💄 lipstick") == "💄 lipstick"
    long = clean_text("word " * 20000, max_chars=500)
    assert len(long) <= 500 and long.startswith("word word")


def test_render_drops_missing_fields_with_their_labels() -> None:
    t = "{title}. Brand: {brand}. Category: {categories}. {description}. Price: {price}"
    assert render(t, {"title": "Rose", "brand": "", "categories": "Makeup > Lips", "description": "",
                      "price": ""}) == "Rose. Category: Makeup > Lips"
    assert render(t, {"title": "", "brand": "Acme"}) == "Brand: Acme"
    assert render(t, {}) == ""


def test_item_texts_over_messy_catalogue() -> None:
    items = pl.DataFrame({
        "title": ["Rose lipstick", None, "bad\x07title", "long"],
        "brand": ["Acme", None, "B", None],
        "categories": [["Makeup", "Lips"], [], None, ["A"]],
        "description": [None, None, "d" * 100_000, None],
        "price": [9.5, None, float("nan"), None],
    })
    out = item_texts(items, template="{title}. Brand: {brand}. Category: {categories}. {description}. Price: {price}",
                     max_chars=300)
    assert out[0] == "Rose lipstick. Brand: Acme. Category: Makeup > Lips. Price: $9.50"
    assert out[1] == ""
    assert out[2].startswith("bad title. Brand: B. ") and len(out[2]) < 400 and "\x07" not in out[2]


def test_history_texts_most_recent_first_and_only_history() -> None:
    hist = pl.DataFrame({"user": [0, 0, 0, 1], "item": [0, 1, 2, 1], "pos": [0, 1, 2, 0]})
    titles = ["a", "b", "c", "target-only"]
    out = history_texts(hist, titles, n_users=3, last_n=2, prefix="")
    assert out == ["c; b", "b", ""]


def test_render_collapses_double_stops() -> None:
    t = "{title}. {description}. Price: {price}"
    assert render(t, {"title": "Cream", "description": "Very good.", "price": "$1.00"}) == \
        "Cream. Very good. Price: $1.00"
