"""Protecting a reporter's identity at rest, and proving who may act as a case's reporter.

**Envelope encryption.** Each identity is encrypted (AES-256-GCM) under its own random data key;
the data key is stored only wrapped (AES-256-GCM again) by a master key of the ``KeyRing``,
named by its key id. Associated data binds both to the case id, so a sealed identity moved to
another case, or a wrapped key moved to another identity, does not open. Rotation adds a master
key and makes it active; ``rewrap`` re-encrypts only the small data keys, the identities stay.
Erasure (UU 27/2022) deletes the wrapped data key: what is left cannot be opened by anyone, with
any master key, even from a backup taken after the erasure.

**Where the master keys come from**, first found wins: ``$LAPOR_KEY_FILE`` (a JSON key ring file,
see ``KeyRing.from_file``; ``lapor identity init`` writes one), or ``$LAPOR_IDENTITY_KEY`` (one
key, 32 bytes in URL-safe base64). The demo and the tests generate their own.

**Reporter tokens.** A case's reporter proves it with a token handed out at start:
``HMAC-SHA256`` of the case id under a key derived from a master key (HKDF), prefixed by that
key's id. Nothing is stored, a retried start hands out the same token, and Temporal histories
never see it (the runtime checks it before a signal leaves the process).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from engine.domain.canonical import canonical_json
from engine.domain.errors import LaporError

__all__ = [
    "KEY_ENV",
    "KEY_FILE_ENV",
    "IdentityError",
    "KeyRing",
    "SealedIdentity",
    "new_key",
]

KEY_ENV = "LAPOR_IDENTITY_KEY"
KEY_FILE_ENV = "LAPOR_KEY_FILE"
_NONCE = 12
_TEXT_VERSION = "v2"
_LEGACY_VERSION = "v1:"  # one master key sealing the identity directly (Temporal, before envelopes)
_TOKEN_VERSION = "rt1"
_KEY_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")


class IdentityError(LaporError):
    """A key ring that cannot be read, or an identity that cannot be opened with it."""


def new_key() -> str:
    """A fresh master key in the text form ``$LAPOR_IDENTITY_KEY`` and key files hold."""
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode()


def _unb64(text: str, what: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text.encode())
    except (binascii.Error, ValueError):
        raise IdentityError(f"{what} is not URL-safe base64") from None


def _key_bytes(text: str, where: str) -> bytes:
    key = _unb64(text, where)
    if len(key) != 32:
        raise IdentityError(f"{where} is {len(key)} bytes; a master key is 32")
    return key


def _check_key_id(key_id: str, where: str) -> str:
    if not key_id or len(key_id) > 64 or not set(key_id) <= _KEY_ID_CHARS:
        raise IdentityError(f"{where}: a key id is 1-64 letters, digits, '-' or '_'")
    return key_id


@dataclass(frozen=True, slots=True)
class SealedIdentity:
    """An identity at rest: the id of the master key that wrapped its data key, the wrapped data
    key and the encrypted identity (each ``nonce || ciphertext``)."""

    key_id: str
    wrapped_key: bytes
    ciphertext: bytes

    def __repr__(self) -> str:
        return f"SealedIdentity(key_id={self.key_id!r}, <sealed>)"

    def to_text(self) -> str:
        """One string, for where a row is not available (a Temporal workflow input)."""
        return ":".join((_TEXT_VERSION, self.key_id, _b64(self.wrapped_key), _b64(self.ciphertext)))

    @classmethod
    def from_text(cls, text: str) -> SealedIdentity:
        parts = text.split(":")
        if len(parts) != 4 or parts[0] != _TEXT_VERSION:
            raise IdentityError("the sealed identity has an unknown format")
        return cls(
            parts[1], _unb64(parts[2], "a wrapped key"), _unb64(parts[3], "a sealed identity")
        )


def _associated(kind: str, case_id: str, key_id: str = "") -> bytes:
    return b"\0".join((b"lapor", kind.encode(), key_id.encode(), case_id.encode()))


class KeyRing:
    """Master keys by key id; new identities are sealed under ``active``, any key opens."""

    def __init__(self, keys: Mapping[str, bytes], active: str) -> None:
        if active not in keys:
            raise IdentityError(f"the active key {active!r} is not in the key ring")
        for key_id, key in keys.items():
            _check_key_id(key_id, "key ring")
            if len(key) != 32:
                raise IdentityError(f"key {key_id!r} is {len(key)} bytes; a master key is 32")
        self._keys = dict(keys)
        self.active = active
        self._token_keys: dict[str, bytes] = {}

    def __repr__(self) -> str:  # never a key
        return f"KeyRing(active={self.active!r}, key_ids={sorted(self._keys)!r})"

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(sorted(self._keys))

    # --- where rings come from ---------------------------------------------------------------

    @classmethod
    def generate(cls, key_id: str = "generated") -> KeyRing:
        """A ring with one fresh key, for a demo or a test: what it sealed dies with it."""
        return cls({key_id: secrets.token_bytes(32)}, key_id)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> KeyRing | None:
        """``$LAPOR_KEY_FILE``'s ring, else ``$LAPOR_IDENTITY_KEY`` as a one-key ring, else
        ``None``."""
        env = os.environ if env is None else env
        path = env.get(KEY_FILE_ENV)
        if path:
            return cls.from_file(Path(path))
        text = env.get(KEY_ENV)
        if not text:
            return None
        key = _key_bytes(text, f"${KEY_ENV}")
        return cls({_env_key_id(key): key}, _env_key_id(key))

    @classmethod
    def from_file(cls, path: Path) -> KeyRing:
        """A key file: ``{"active": "2026-12", "keys": {"2026-12": "<base64>", ...}}``, readable
        by its owner only (like an SSH key)."""
        try:
            mode = path.stat().st_mode
            text = path.read_text(encoding="utf-8")
        except OSError as error:
            raise IdentityError(f"{path}: cannot read the key file ({error.strerror})") from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise IdentityError(
                f"{path}: the key file is readable by others (mode {stat.S_IMODE(mode):o}); "
                f"chmod 600 it"
            )
        try:
            data = json.loads(text)
        except ValueError:
            raise IdentityError(f"{path}: the key file is not JSON") from None
        if (
            not isinstance(data, dict)
            or not isinstance(data.get("active"), str)
            or not isinstance(data.get("keys"), dict)
        ):
            raise IdentityError(f'{path}: expected {{"active": KEY_ID, "keys": {{KEY_ID: KEY}}}}')
        keys = {
            _check_key_id(str(key_id), str(path)): _key_bytes(str(value), f"{path}: key {key_id}")
            for key_id, value in data["keys"].items()
        }
        return cls(keys, data["active"])

    def write(self, path: Path) -> None:
        """Write the ring as a key file only its owner can read (replacing ``path``)."""
        text = json.dumps(
            {"active": self.active, "keys": {k: _b64(v) for k, v in sorted(self._keys.items())}},
            indent=2,
        )
        temporary = path.with_name(path.name + ".tmp")
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(text + "\n")
            os.replace(temporary, path)
        except OSError as error:
            raise IdentityError(f"{path}: cannot write the key file ({error.strerror})") from None

    def with_new_key(self, key_id: str) -> KeyRing:
        """This ring plus a fresh key, made active (older keys still open what they sealed)."""
        _check_key_id(key_id, "new key")
        if key_id in self._keys:
            raise IdentityError(f"the key ring already has a key {key_id!r}")
        return KeyRing({**self._keys, key_id: secrets.token_bytes(32)}, key_id)

    # --- identities --------------------------------------------------------------------------

    def seal(self, case_id: str, identity: Mapping[str, Any]) -> SealedIdentity:
        data_key = AESGCM.generate_key(bit_length=256)
        nonce = secrets.token_bytes(_NONCE)
        ciphertext = nonce + AESGCM(data_key).encrypt(
            nonce, canonical_json(dict(identity)).encode(), _associated("identity", case_id)
        )
        return SealedIdentity(self.active, self._wrap(case_id, data_key), ciphertext)

    def open(self, case_id: str, sealed: SealedIdentity) -> dict[str, Any]:
        data_key = self._unwrap(case_id, sealed)
        try:
            plain = AESGCM(data_key).decrypt(
                sealed.ciphertext[:_NONCE],
                sealed.ciphertext[_NONCE:],
                _associated("identity", case_id),
            )
        except (InvalidTag, ValueError):
            raise IdentityError(f"case {case_id}: the sealed identity was altered") from None
        value = json.loads(plain)
        if not isinstance(value, dict):
            raise IdentityError(f"case {case_id}: the sealed identity is not an object")
        return value

    def rewrap(self, case_id: str, sealed: SealedIdentity) -> SealedIdentity:
        """The same identity with its data key wrapped by the active key."""
        if sealed.key_id == self.active:
            return sealed
        data_key = self._unwrap(case_id, sealed)
        return SealedIdentity(self.active, self._wrap(case_id, data_key), sealed.ciphertext)

    def open_text(self, case_id: str, text: str) -> dict[str, Any]:
        """Open ``SealedIdentity.to_text()``, or the one-key form Temporal inputs held before."""
        if not text.startswith(_LEGACY_VERSION):
            return self.open(case_id, SealedIdentity.from_text(text))
        raw = _unb64(text.removeprefix(_LEGACY_VERSION), "a sealed identity")
        for key in self._keys.values():
            try:
                plain = AESGCM(key).decrypt(raw[:_NONCE], raw[_NONCE:], case_id.encode())
            except (InvalidTag, ValueError):
                continue
            value = json.loads(plain)
            if isinstance(value, dict):
                return value
        raise IdentityError(self._cannot_open(case_id, "no key of the ring"))

    def _wrap(self, case_id: str, data_key: bytes) -> bytes:
        nonce = secrets.token_bytes(_NONCE)
        aead = AESGCM(self._keys[self.active])
        return nonce + aead.encrypt(nonce, data_key, _associated("key", case_id, self.active))

    def _unwrap(self, case_id: str, sealed: SealedIdentity) -> bytes:
        key = self._keys.get(sealed.key_id)
        if key is None:
            raise IdentityError(self._cannot_open(case_id, f"key {sealed.key_id!r}"))
        try:
            return AESGCM(key).decrypt(
                sealed.wrapped_key[:_NONCE],
                sealed.wrapped_key[_NONCE:],
                _associated("key", case_id, sealed.key_id),
            )
        except (InvalidTag, ValueError):
            raise IdentityError(
                f"case {case_id}: the identity's data key does not open with key "
                f"{sealed.key_id!r} (another ring under the same id, or it was altered)"
            ) from None

    def _cannot_open(self, case_id: str, which: str) -> str:
        return (
            f"case {case_id}: the reporter's identity was sealed with {which}, which the key ring "
            f"(${KEY_FILE_ENV} or ${KEY_ENV}; keys {', '.join(self.key_ids)}) does not hold"
        )

    # --- reporter tokens ---------------------------------------------------------------------

    def reporter_token(self, case_id: str) -> str:
        """The token that lets the case's reporter act on it (the same every time it is asked)."""
        return self._token(self.active, case_id)

    def is_reporter_token(self, case_id: str, token: str) -> bool:
        parts = token.split(".")
        if len(parts) != 3 or parts[0] != _TOKEN_VERSION or parts[1] not in self._keys:
            return False
        return hmac.compare_digest(self._token(parts[1], case_id), token)

    def _token(self, key_id: str, case_id: str) -> str:
        token_key = self._token_keys.get(key_id)
        if token_key is None:
            token_key = HKDF(
                algorithm=hashes.SHA256(), length=32, salt=None, info=b"lapor reporter token"
            ).derive(self._keys[key_id])
            self._token_keys[key_id] = token_key
        mac = hmac.new(token_key, case_id.encode(), hashlib.sha256).digest()
        return f"{_TOKEN_VERSION}.{key_id}.{base64.urlsafe_b64encode(mac).decode().rstrip('=')}"


def _env_key_id(key: bytes) -> str:
    # Names the key without revealing it, and is the same wherever the key is used.
    return "env-" + hashlib.sha256(key).hexdigest()[:12]
