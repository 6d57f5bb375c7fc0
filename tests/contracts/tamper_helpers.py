"""Ways to damage a run directory's files, raw (as a disk, a hand edit or a bad copy would) or recorded (as a
writer bug would: wrong content whose digest the manifest nevertheless holds)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl

from recsys.contracts.manifests import file_sha256


def flip(path: Path) -> None:
    data = path.read_bytes()
    mid = len(data) // 2
    path.write_bytes(data[:mid] + bytes(b ^ 0xFF for b in data[mid:mid + 16]) + data[mid + 16:])


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


def empty(path: Path) -> None:
    path.write_bytes(b"")


def delete(path: Path) -> None:
    path.unlink()


RAW = {"flip": flip, "truncate": truncate, "empty": empty, "delete": delete}


def rerecord(root: Path, path: Path) -> None:
    """Put ``path``'s current sha256 into the manifest entry that records it (the writer-bug case)."""
    m = json.loads((root / "manifest.json").read_text())
    rel = str(path.resolve().relative_to(root.resolve()))
    hits = [rec for rec in m["stages"].values() if rel in rec.get("outputs", {})]
    assert hits, f"{rel} is not recorded"
    for rec in hits:
        rec["outputs"][rel] = file_sha256(path)
    (root / "manifest.json").write_text(json.dumps(m))


def shuffle_column(path: Path, col: str, *, seed: int = 0) -> None:
    """A valid parquet file whose id column is permuted (still a permutation of 0..N-1)."""
    df = pl.read_parquet(path)
    perm = np.random.default_rng(seed).permutation(df.height)
    df.with_columns(pl.Series(col, df[col].to_numpy()[perm])).write_parquet(path)


def duplicate_id(path: Path, col: str) -> None:
    df = pl.read_parquet(path)
    v = df[col].to_numpy().copy()
    v[1] = v[0]
    df.with_columns(pl.Series(col, v).cast(df.schema[col])).write_parquet(path)


def id_out_of_range(path: Path, col: str, n: int) -> None:
    df = pl.read_parquet(path)
    v = df[col].to_numpy().copy()
    v[0] = n + 5
    df.with_columns(pl.Series(col, v).cast(df.schema[col])).write_parquet(path)


def empty_table(path: Path) -> None:
    pl.read_parquet(path).clear().write_parquet(path)


def nan_row(path: Path, row: int = 0) -> None:
    x = np.load(path)
    x[row] = np.nan
    np.save(path, x)


def drop_row(path: Path) -> None:
    np.save(path, np.load(path)[:-1])


def wrong_dtype(path: Path) -> None:
    np.save(path, np.load(path).astype(np.int64))


def nan_safetensor(path: Path) -> None:
    from safetensors.numpy import load_file, save_file

    t = load_file(str(path))
    k = sorted(t)[0]
    t[k] = t[k].copy()
    t[k][3] = np.nan
    save_file(t, str(path))


def permute_safetensor_rows(path: Path) -> None:
    from safetensors.numpy import load_file, save_file

    t = load_file(str(path))
    perm = np.random.default_rng(0).permutation(len(next(iter(t.values()))))
    save_file({k: np.ascontiguousarray(v[perm]) for k, v in t.items()}, str(path))


def bad_json(path: Path) -> None:
    path.write_text(path.read_text()[:-5])


def drop_json_field(path: Path, field: str) -> None:
    m = json.loads(path.read_text())
    m.pop(field)
    path.write_text(json.dumps(m))
