"""rank/: the LightGBM model (text format), its feature importances.

``model.txt`` is verified (digest, then the text header LightGBM writes) before LightGBM's native parser sees
it: that parser aborts the whole process on a truncated file, so a damaged model must never reach it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from recsys.contracts import _checks as C
from recsys.contracts.errors import problem, rebuild
from recsys.contracts.layout import Layout
from recsys.contracts.manifests import present as _present
from recsys.contracts.manifests import verify

__all__ = ["STAGE", "present", "problem", "read_importance", "read_model_text", "rebuild", "write_importance",
           "write_model"]
STAGE = "rank"


def write_model(*, layout: Layout, save: Callable[[Path], None]) -> Path:
    """``save(tmp_path)`` writes the model text (``booster.save_model``); renamed into place atomically."""
    from recsys.artifacts import atomic_path

    with atomic_path(layout.ranker_model) as tmp:
        save(tmp)
    return layout.ranker_model


def write_importance(*, layout: Layout, importance: Mapping[str, Any]) -> Path:
    from recsys.artifacts import write_json

    return write_json(layout.feature_importance, dict(importance))


def present(layout: Layout) -> bool:
    return _present(layout.ranker_model, layout=layout)


def read_model_text(*, layout: Layout) -> str:
    """The model text, verified: digest recorded by the rank stage, UTF-8, LightGBM's header and its end marker.

    Pass it to ``lightgbm.Booster(model_str=...)``."""
    p = verify(layout.ranker_model, layout=layout, stage=STAGE)
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise problem(p, f"not UTF-8 text ({e})", rebuild(STAGE)) from None
    if not text.startswith("tree\n") or "end of trees" not in text or "feature_names=" not in text:
        raise problem(p, "not a complete LightGBM text model (header or 'end of trees' missing)", rebuild(STAGE))
    return text


def read_importance(*, layout: Layout) -> dict[str, Any]:
    p = verify(layout.feature_importance, layout=layout, stage=STAGE)
    return C.read_json(p, stage=STAGE)
