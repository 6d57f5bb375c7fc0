"""Structural checks shared by the family modules: arrays (dtype, shape, finite), frames (columns, id ranges)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from recsys.contracts.errors import problem, rebuild
from recsys.contracts.manifests import raise_from


def load_npy(path: Path, *, stage: str) -> np.ndarray:
    """np.load of a verified file; a parse failure becomes an ArtifactError."""
    try:
        return np.load(path, allow_pickle=False)
    except Exception as e:  # numpy raises ValueError/EOFError/OSError on damaged headers
        raise raise_from(path, e, stage=stage) from None


def load_parquet(path: Path, *, stage: str, columns: list[str] | None = None) -> pl.DataFrame:
    try:
        return pl.read_parquet(path, columns=columns)
    except Exception as e:  # polars raises ComputeError/OSError/ColumnNotFoundError on damaged files
        raise raise_from(path, e, stage=stage) from None


def check_array(x: np.ndarray, *, path: Path, stage: str, kind: str, ndim: int,
                rows: int | None = None, cols: int | None = None, finite: bool = True, what: str = "") -> np.ndarray:
    """Refuse ``x`` unless its dtype kind (``"f"``, ``"i"``, ...), rank, row/column counts match and
    (``finite``) every value is finite. ``what`` names the expected rows, e.g. "one per catalogue item"."""
    label = f" ({what})" if what else ""
    if x.dtype.kind != kind and not (kind == "i" and x.dtype.kind == "u"):
        raise problem(path, f"dtype {x.dtype}, expected a {'float' if kind == 'f' else 'integer'} array{label}",
                      rebuild(stage))
    if x.ndim != ndim:
        raise problem(path, f"shape {x.shape}, expected {ndim} dimensions{label}", rebuild(stage))
    if rows is not None and x.shape[0] != rows:
        raise problem(path, f"shape {x.shape}: {x.shape[0]} rows, expected {rows}{label}", rebuild(stage))
    if cols is not None and x.shape[1] != cols:
        raise problem(path, f"shape {x.shape}: {x.shape[1]} columns, expected {cols}{label}", rebuild(stage))
    if finite and kind == "f":
        bad = ~np.isfinite(x).reshape(len(x), -1).all(axis=1) if x.size else np.zeros(0, bool)
        if bad.any():
            first = np.flatnonzero(bad)[:5].tolist()
            raise problem(path, f"{int(bad.sum())} row(s) hold NaN or infinite values (first rows {first}){label}",
                          rebuild(stage))
    return x


def check_columns(df: pl.DataFrame, *, path: Path, stage: str, kinds: Mapping[str, str]) -> None:
    """Every column in ``kinds`` present, with dtype kind "int" / "float" / "str" / "any", and no nulls
    in the int and float ones."""
    for col, kind in kinds.items():
        if col not in df.columns:
            raise problem(path, f"column '{col}' missing (has {df.columns})", rebuild(stage))
        dt = df.schema[col]
        ok = {"int": dt.is_integer(), "float": dt.is_float() or dt.is_integer(), "str": dt == pl.String,
              "any": True}[kind]
        if not ok:
            raise problem(path, f"column '{col}' has dtype {dt}, expected {kind}", rebuild(stage))
        if kind in ("int", "float") and df[col].null_count():
            raise problem(path, f"column '{col}' has {df[col].null_count()} null value(s)", rebuild(stage))


def check_range(df: pl.DataFrame, col: str, n: int, *, path: Path, stage: str, against: str) -> None:
    """Every value of integer column ``col`` in ``[0, n)`` (``against`` names what defines n)."""
    if not df.height:
        return
    lo, hi = df[col].min(), df[col].max()
    if lo < 0 or hi >= n:  # type: ignore[operator]
        raise problem(path, f"column '{col}' spans {lo}..{hi}, outside 0..{n - 1} ({against})", rebuild(stage))


def check_permutation(df: pl.DataFrame, col: str, *, path: Path, stage: str) -> None:
    """Integer column ``col`` holds each of ``0..height-1`` exactly once."""
    v = df[col].to_numpy()
    if len(v) and (v.min() < 0 or v.max() >= len(v) or np.unique(v).size != len(v)):
        raise problem(path, f"column '{col}' is not a permutation of 0..{len(v) - 1} "
                            f"(min {v.min()}, max {v.max()}, {np.unique(v).size} distinct)", rebuild(stage))


def check_unique(df: pl.DataFrame, col: str, *, path: Path, stage: str) -> None:
    if df[col].null_count() or df[col].n_unique() != df.height:
        raise problem(path, f"column '{col}' has null or repeated ids ({df[col].n_unique()} distinct of "
                            f"{df.height} rows)", rebuild(stage))


def finite_column(df: pl.DataFrame, col: str, *, path: Path, stage: str) -> None:
    if df.height and not df[col].cast(pl.Float64).is_finite().all():
        n = int((~df[col].cast(pl.Float64).is_finite()).sum())
        raise problem(path, f"column '{col}' has {n} NaN or infinite value(s)", rebuild(stage))


def json_object(text: Any, *, path: Path, stage: str) -> dict[str, Any]:
    import json

    try:
        obj = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise problem(path, f"not valid JSON ({e})", rebuild(stage)) from None
    if not isinstance(obj, dict):
        raise problem(path, f"expected a JSON object, found {type(obj).__name__}", rebuild(stage))
    return obj


def read_json(path: Path, *, stage: str) -> dict[str, Any]:
    try:
        return json_object(path.read_bytes(), path=path, stage=stage)
    except OSError as e:
        raise raise_from(path, e, stage=stage) from None
