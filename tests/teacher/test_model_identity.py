"""The teacher cache namespace (model_identity) follows the weights, not where they are installed."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from recsys.teacher.encoder import IDENTITY_SAMPLE, model_identity


def _model(d: Path, *, weights: bytes) -> Path:
    d.mkdir(parents=True)
    (d / "config.json").write_text('{"model_type": "bert", "hidden_size": 8}')
    (d / "model.safetensors").write_bytes(weights)
    (d / "README.md").write_text("not part of the identity")
    return d


def test_identity_ignores_install_path_and_mtime(tmp_path: Path) -> None:
    w = bytes(range(256)) * (3 * IDENTITY_SAMPLE // 256)
    a = _model(tmp_path / "site-a" / "m", weights=w)
    b = tmp_path / "site-b" / "m"
    shutil.copytree(a, b)
    os.utime(b / "model.safetensors", (1, 1))
    (b / "README.md").write_text("edited")
    assert model_identity(a) == model_identity(b)


def test_identity_changes_with_the_weights(tmp_path: Path) -> None:
    w = bytearray(bytes(range(256)) * (3 * IDENTITY_SAMPLE // 256))
    a = model_identity(_model(tmp_path / "a", weights=bytes(w)))
    w[-1] ^= 1  # last weight byte
    tail = model_identity(_model(tmp_path / "b", weights=bytes(w)))
    shorter = model_identity(_model(tmp_path / "c", weights=bytes(w[:-4])))
    other_cfg = _model(tmp_path / "d", weights=bytes(w))
    (other_cfg / "config.json").write_text('{"model_type": "bert", "hidden_size": 16}')
    assert len({a, tail, shorter, model_identity(other_cfg)}) == 4
