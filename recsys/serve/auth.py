"""API keys: ``Authorization: Bearer <key>``, compared in constant time against every configured key."""

from __future__ import annotations

import hmac
import os
from pathlib import Path

ENV = "RECSYS_API_KEYS"  # comma-separated keys; added to those of --api-keys-file


class AuthError(ValueError):
    """No usable key configuration; the message says what to do."""


def load_keys(*, keys_file: str | os.PathLike[str] | None, env: str | None = None) -> list[str]:
    """Keys from ``keys_file`` (one per line; blank lines and ``#`` comments skipped) and ``env``.

    Raises AuthError when neither yields a key (the service refuses to start open by accident)."""
    keys: list[str] = []
    if keys_file is not None:
        p = Path(keys_file)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as e:
            raise AuthError(f"--api-keys-file {p}: cannot read it ({e.strerror})") from None
        keys += [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    keys += [k.strip() for k in (env or "").split(",") if k.strip()]
    if not keys:
        raise AuthError(f"no API keys: pass --api-keys-file PATH (one key per line) or set {ENV}=key1,key2; "
                        "--no-auth serves without access control")
    short = [k for k in keys if len(k) < 16]
    if short:
        raise AuthError(f"{len(short)} API key(s) shorter than 16 characters; use long random keys "
                        "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)")
    return keys


class KeyCheck:
    """``check(header)`` -> 200, 401 (no bearer key) or 403 (a key that is not configured)."""

    def __init__(self, keys: list[str]) -> None:
        self._keys = [k.encode() for k in keys]

    def check(self, authorization: str | None) -> int:
        if not authorization:
            return 401
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return 401
        got = token.strip().encode()
        ok = False
        for k in self._keys:  # no early exit: time does not depend on which key matched
            ok |= hmac.compare_digest(got, k)
        return 200 if ok else 403
