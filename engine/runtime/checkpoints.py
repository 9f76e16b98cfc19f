"""Signed checkpoints of the Merkle log, in the C2SP ``tlog-checkpoint`` form as a signed note.

A checkpoint is the log's origin line, its tree size and its root (base64), one per line; it is
signed as a C2SP signed note with Ed25519: after a blank line, ``— <key name> <base64(key hash ||
signature)>``, where the key hash is the first four bytes of SHA-256(name || "\\n" || 0x01 ||
public key). An auditor who keeps a checkpoint can later demand a consistency proof from it to
any newer one: a rewritten, truncated or deleted record breaks the proof. The notes verify with
Go's ``golang.org/x/mod/sumdb/note`` (the test checks).
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from engine.domain.errors import LaporError

__all__ = ["Checkpoint", "NoteSigner", "open_checkpoint"]

_ED25519 = b"\x01"
_DASH = "\u2014"


@dataclass(frozen=True, slots=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes

    def body(self) -> str:
        if not self.origin or "\n" in self.origin:
            raise LaporError("a checkpoint origin is one non-empty line")
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"

    @classmethod
    def parse(cls, body: str) -> Checkpoint:
        lines = body.split("\n")
        if len(lines) < 4 or not lines[1].isdigit():
            raise LaporError("not a checkpoint: expected origin, tree size and root lines")
        try:
            root = base64.b64decode(lines[2], validate=True)
        except ValueError:
            raise LaporError("not a checkpoint: the root is not base64") from None
        return cls(lines[0], int(lines[1]), root)


def _key_hash(name: str, public: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + _ED25519 + public).digest()[:4]


class NoteSigner:
    """Signs checkpoints under ``name`` (a server name, e.g. ``lapor.example.go.id``)."""

    def __init__(self, name: str, key: Ed25519PrivateKey) -> None:
        if not name or any(c.isspace() or c == "+" for c in name):
            raise LaporError(f"a note key name has no spaces or '+': {name!r}")
        self.name = name
        self._key = key
        self.public = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )

    def __repr__(self) -> str:  # never the key
        return f"NoteSigner({self.name!r})"

    @classmethod
    def from_pem(cls, name: str, pem: bytes) -> NoteSigner:
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError):
            raise LaporError("the signing key is not an unencrypted PEM private key") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise LaporError("the signing key is not an Ed25519 key")
        return cls(name, key)

    @property
    def verifier_key(self) -> str:
        """The public verifier key, as Go's ``note.NewVerifier`` reads it."""
        key_hash = _key_hash(self.name, self.public).hex()
        return f"{self.name}+{key_hash}+{base64.b64encode(_ED25519 + self.public).decode()}"

    def sign(self, checkpoint: Checkpoint) -> str:
        body = checkpoint.body()
        signature = self._key.sign(body.encode())
        stamp = base64.b64encode(_key_hash(self.name, self.public) + signature).decode()
        return f"{body}\n{_DASH} {self.name} {stamp}\n"


def open_checkpoint(note: str, verifier_key: str) -> Checkpoint:
    """The checkpoint of a signed note, if ``verifier_key`` signed it; else ``LaporError``."""
    try:
        name, key_hash, encoded = verifier_key.split("+", 2)  # base64 has "+" too
        raw = base64.b64decode(encoded, validate=True)
    except ValueError:
        raise LaporError("not a note verifier key (name+hash+base64)") from None
    if raw[:1] != _ED25519 or len(raw) != 33 or _key_hash(name, raw[1:]).hex() != key_hash:
        raise LaporError("not an Ed25519 note verifier key")
    body, separator, signatures = note.partition("\n\n")
    if not separator:
        raise LaporError("not a signed note: no blank line before the signatures")
    body += "\n"
    public = Ed25519PublicKey.from_public_bytes(raw[1:])
    for line in signatures.splitlines():
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != _DASH or parts[1] != name:
            continue
        try:
            stamp = base64.b64decode(parts[2], validate=True)
        except ValueError:
            continue
        if stamp[:4] != bytes.fromhex(key_hash):
            continue
        try:
            public.verify(stamp[4:], body.encode())
        except InvalidSignature:
            raise LaporError(f"the checkpoint's signature by {name} does not verify") from None
        return Checkpoint.parse(body)
    raise LaporError(f"the checkpoint carries no signature by {name}")
