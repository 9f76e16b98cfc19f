"""Sealing a reporter's identity wherever it must be stored outside the engine's own tables.

On Temporal a case's inputs sit in the server's event history, readable by every operator of
the cluster, so the identity given at start travels there only sealed: AES-256-GCM under a key
the server never sees (``$LAPOR_IDENTITY_KEY``, 32 bytes in URL-safe base64; ``new_key()``
makes one), with the case id as associated data so a sealed identity cannot be moved to another
case. The workflow never opens it; the runtime opens it for reporter-facing calls only.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import secrets
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from engine.domain.canonical import canonical_json
from engine.domain.errors import LaporError

__all__ = ["KEY_ENV", "IdentitySeal", "new_key"]

KEY_ENV = "LAPOR_IDENTITY_KEY"
_VERSION = "v1:"
_NONCE = 12


def new_key() -> str:
    """A fresh key for ``$LAPOR_IDENTITY_KEY`` (keep it in a secret store, not in a file)."""
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


class IdentitySeal:
    """Seals and opens identities under one key."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise LaporError(f"an identity key is 32 bytes, got {len(key)}")
        self._aead = AESGCM(key)

    def __repr__(self) -> str:  # never the key
        return "IdentitySeal(<key>)"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> IdentitySeal | None:
        """The seal of ``$LAPOR_IDENTITY_KEY``, or ``None`` when it is not set."""
        text = (os.environ if env is None else env).get(KEY_ENV)
        if not text:
            return None
        try:
            key = base64.urlsafe_b64decode(text.encode())
        except (binascii.Error, ValueError):
            raise LaporError(f"${KEY_ENV} is not URL-safe base64") from None
        return cls(key)

    def seal(self, case_id: str, identity: Mapping[str, Any]) -> str:
        nonce = secrets.token_bytes(_NONCE)
        sealed = self._aead.encrypt(
            nonce, canonical_json(dict(identity)).encode(), case_id.encode()
        )
        return _VERSION + base64.urlsafe_b64encode(nonce + sealed).decode()

    def open(self, case_id: str, sealed: str) -> dict[str, Any]:
        if not sealed.startswith(_VERSION):
            raise LaporError(f"case {case_id}: the sealed identity has an unknown format")
        try:
            raw = base64.urlsafe_b64decode(sealed.removeprefix(_VERSION).encode())
            plain = self._aead.decrypt(raw[:_NONCE], raw[_NONCE:], case_id.encode())
        except (binascii.Error, ValueError, InvalidTag):
            raise LaporError(
                f"case {case_id}: the reporter's identity cannot be opened with this key "
                f"(${KEY_ENV} differs from the one it was sealed with, or it was altered)"
            ) from None
        value = json.loads(plain)
        if not isinstance(value, dict):
            raise LaporError(f"case {case_id}: the sealed identity is not an object")
        return value
