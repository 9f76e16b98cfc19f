"""The HTTP API's credentials: opaque keys, stored only as a SHA-256, each with a role and scope.

A key is ``lapor_`` followed by 256 random bits (URL-safe base64); it is shown once, when it is
made (``lapor keys create``), and never again: the ``api_keys`` table keeps its SHA-256 only. A
salted, slow hash would add nothing here, since no one can enumerate a 256-bit random space;
what the hash buys is that a copy of the database (a backup, a stolen file) holds no usable key.

Roles are those of the service API (``API_ROLES``); which signals each may send is the workflow's
business (``engine.faces.api.principals`` maps a role onto the core's actors). ``system`` is never
one: it is the engine's own role.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Row, insert, select, update

from engine.domain.errors import LaporError
from engine.runtime.errors import IntegrityViolationError
from engine.sql import store
from engine.sql.tables import api_keys

__all__ = [
    "API_ROLES",
    "KEY_PREFIX",
    "ApiKey",
    "ApiKeyStore",
    "UnknownApiKeyError",
    "check_role",
    "hash_key",
]

API_ROLES = ("channel", "admin_nasional", "agency", "supervisor", "ombudsman", "auditor")
"""Who may hold a key: intake channels, Admin Nasional, an agency (scoped to one agency code),
supervisors of the service standards, Ombudsman RI, auditors."""

KEY_PREFIX = "lapor_"
_KEY_BYTES = 32
_SCOPE = re.compile(r"[a-z0-9][a-z0-9._-]{0,99}")
_NAME_MAX = 200


class UnknownApiKeyError(LaporError):
    """No key has this id."""

    def __init__(self, key_id: str) -> None:
        self.key_id = key_id
        super().__init__(f"unknown key id {key_id!r}; `lapor keys list` shows them")


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A key as stored: everything but the key itself (which nobody can read back)."""

    id: str
    name: str
    role: str
    scope: str | None
    created_at: datetime
    revoked_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def hash_key(key: str) -> str:
    """The stored form of ``key``: its SHA-256, hex."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def check_role(role: str, scope: str | None) -> None:
    """``LaporError`` unless ``role`` is an API role with a fitting scope: an agency code for
    ``agency``, none for the others (their reach is not limited to one agency)."""
    if role not in API_ROLES:
        shown = "'system' is the engine's own role; " if role == "system" else ""
        raise LaporError(f"unknown role {role!r}; {shown}roles are: {', '.join(API_ROLES)}")
    if role == "agency":
        if scope is None or not _SCOPE.fullmatch(scope):
            raise LaporError(
                "a key of role agency acts for one agency: give its code, e.g. --agency kemenkes "
                "(lower-case letters, digits, '.', '_', '-')"
            )
    elif scope is not None:
        raise LaporError(f"only a key of role agency has an agency; {role!r} acts for all cases")


class ApiKeyStore:
    """The ``api_keys`` table of a migrated database (``lapor db upgrade``)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(self, role: str, scope: str | None, name: str, now: datetime) -> tuple[ApiKey, str]:
        """A new key: what is stored, and the key itself (to be shown once, never stored)."""
        check_role(role, scope)
        name = name.strip()
        if not name or len(name) > _NAME_MAX or not name.isprintable():
            raise LaporError(f"a key's name is 1-{_NAME_MAX} printable characters, got {name!r}")
        plain = KEY_PREFIX + secrets.token_urlsafe(_KEY_BYTES)
        key = ApiKey("k" + secrets.token_hex(6), name, role, scope, now)
        row = {
            "id": key.id,
            "name": key.name,
            "role": key.role,
            "scope": key.scope,
            "key_hash": hash_key(plain),
            "created_us": store.epoch_us(now),
            "revoked_us": None,
        }
        try:
            store.transact(
                self.engine,
                lambda conn: conn.execute(insert(api_keys).values(row)),
                action="store an API key",
            )
        except IntegrityViolationError:  # a 48-bit id drawn twice: draw again
            return self.create(role, scope, name, now)
        return key, plain

    def list(self) -> list[ApiKey]:
        """Every key, revoked ones too, oldest first."""
        query = select(api_keys).order_by(api_keys.c.created_us, api_keys.c.id)
        rows = store.read(
            self.engine, lambda conn: conn.execute(query).all(), action="list API keys"
        )
        return [_key(row) for row in rows]

    def revoke(self, key_id: str, now: datetime) -> ApiKey:
        """Revoke ``key_id`` from ``now`` on (a second revocation keeps the first instant)."""

        def work(conn: Connection) -> ApiKey:
            conn.execute(
                update(api_keys)
                .where(api_keys.c.id == key_id, api_keys.c.revoked_us.is_(None))
                .values(revoked_us=store.epoch_us(now))
            )
            row = conn.execute(select(api_keys).where(api_keys.c.id == key_id)).first()
            if row is None:
                raise UnknownApiKeyError(key_id)
            return _key(row)

        return store.transact(self.engine, work, action="revoke an API key")

    def authenticate(self, plain: str) -> ApiKey | None:
        """The active key ``plain`` is, or ``None`` (unknown, malformed or revoked)."""
        if not plain.startswith(KEY_PREFIX) or len(plain) > 200:
            return None
        query = select(api_keys).where(api_keys.c.key_hash == hash_key(plain))
        row = store.read(
            self.engine,
            lambda conn: conn.execute(query).first(),
            action="check an API key",
            one_statement=True,
        )
        if row is None or row.revoked_us is not None:
            return None
        return _key(row)


def _key(row: Row[Any]) -> ApiKey:
    return ApiKey(
        id=row.id,
        name=row.name,
        role=row.role,
        scope=row.scope,
        created_at=store.from_epoch_us(row.created_us),
        revoked_at=None if row.revoked_us is None else store.from_epoch_us(row.revoked_us),
    )
