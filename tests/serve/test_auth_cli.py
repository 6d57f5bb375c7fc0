"""API-key loading and checking, and the command's refusals (no service started)."""

from __future__ import annotations

from pathlib import Path

import pytest

from recsys.serve.auth import AuthError, KeyCheck, load_keys
from recsys.serve.cli import main

A, B = "a" * 20, "b" * 24


def test_keys_from_file_and_env(tmp_path: Path) -> None:
    f = tmp_path / "keys.txt"
    f.write_text(f"# service keys\n{A}\n\n  {B}  \n")
    assert load_keys(keys_file=f, env=None) == [A, B]
    assert load_keys(keys_file=None, env=f" {A},{B},") == [A, B]
    assert load_keys(keys_file=f, env="c" * 16) == [A, B, "c" * 16]


def test_no_keys_missing_file_and_short_keys_are_refused(tmp_path: Path) -> None:
    with pytest.raises(AuthError, match="--api-keys-file PATH.*RECSYS_API_KEYS.*--no-auth"):
        load_keys(keys_file=None, env="")
    with pytest.raises(AuthError, match="cannot read"):
        load_keys(keys_file=tmp_path / "nope.txt", env=None)
    with pytest.raises(AuthError, match="shorter than 16"):
        load_keys(keys_file=None, env="short")


def test_key_check() -> None:
    kc = KeyCheck([A, B])
    assert kc.check(None) == 401 and kc.check("") == 401 and kc.check(A) == 401 and kc.check(f"Token {A}") == 401
    assert kc.check(f"Bearer {A}") == 200 and kc.check(f"Bearer {B}") == 200 and kc.check(f"BEARER  {B}") == 200
    assert kc.check(f"Bearer {A[:-1]}") == 403 and kc.check(f"Bearer {A}{B}") == 403


def test_the_command_refuses_without_keys_or_a_directory(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("RECSYS_API_KEYS", raising=False)
    with pytest.raises(SystemExit, match="no such directory"):
        main(["-o", str(tmp_path / "nope")])
    with pytest.raises(SystemExit, match="no API keys"):
        main(["-o", str(tmp_path)])


def test_the_command_serves_on_loopback_by_default() -> None:
    from recsys.serve.cli import build_parser

    args = build_parser().parse_args(["-o", "x"])
    assert args.host == "127.0.0.1" and args.port == 8000 and not args.no_auth


def test_recsys_serve_is_a_registered_command(tmp_path: Path, monkeypatch, capsys) -> None:
    from pipelines.cli import main as recsys

    monkeypatch.delenv("RECSYS_API_KEYS", raising=False)
    assert recsys(["serve", "-o", str(tmp_path)]) == 2
    out = capsys.readouterr()
    assert "no API keys" in out.out + out.err
    assert recsys(["serve", "-o", str(tmp_path), "--no-auth", "--max-k", "0"]) == 2
    out = capsys.readouterr()
    assert "max_k" in out.out + out.err
