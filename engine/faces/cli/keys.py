"""``lapor keys``: the HTTP API's credentials (``engine.sql.apikeys``).

    lapor keys create --role agency --agency kemenkes [--name "Kemenkes SIMPEL"]  # prints it once
    lapor keys list [--json]
    lapor keys revoke ID

A key is printed once, on stdout, when it is made; the database keeps only its SHA-256, so a lost
key is revoked and replaced, never recovered.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from engine.domain.errors import LaporError
from engine.faces.cli.options import DEFAULT_DB, AsJson, Db
from engine.faces.cli.project_option import ProjectDir, use_project
from engine.faces.presenting import printable

if TYPE_CHECKING:
    from engine.sql.apikeys import ApiKey, ApiKeyStore

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add the ``keys`` group to ``app``."""
    group = typer.Typer(no_args_is_help=True, help="API keys of `lapor serve`'s callers.")
    group.command("create")(create)
    group.command("list")(list_keys)
    group.command("revoke")(revoke)
    app.add_typer(group, name="keys")


def _store(db: str) -> ApiKeyStore:
    from engine.sql.apikeys import ApiKeyStore
    from engine.sql.store import open_engine

    return ApiKeyStore(open_engine(db, create=False))


def _described(key: ApiKey) -> dict[str, object]:
    return {
        "id": key.id,
        "name": key.name,
        "role": key.role,
        "agency": key.scope,
        "created_at": key.created_at.isoformat(),
        "revoked_at": None if key.revoked_at is None else key.revoked_at.isoformat(),
    }


def create(
    role: Annotated[
        str,
        typer.Option(
            help="channel, admin_nasional, agency, supervisor, ombudsman or auditor.",
        ),
    ],
    agency: Annotated[
        str | None, typer.Option(help="For --role agency: the agency code, e.g. kemenkes.")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Who holds it, e.g. 'Kemenkes SIMPEL'.")] = None,
    db: Db = DEFAULT_DB,
    project: ProjectDir = None,
    as_json: AsJson = False,
) -> None:
    """Make a key and print it once (stdout); the database keeps only its hash."""
    from engine.sql.apikeys import check_role

    check_role(role, agency)  # before the definitions are read: the common mistake first
    if agency is not None:
        _check_agency(agency, project)
    keys = _store(db)
    try:
        key, plain = keys.create(role, agency, name or _default_name(role, agency), _now())
    finally:
        keys.engine.dispose()
    if as_json:
        typer.echo(json.dumps(_described(key) | {"key": plain}))
        return
    typer.echo(plain)
    scope = f" for {agency}" if agency else ""
    typer.echo(
        f"key {key.id} ({role}{scope}): shown this once, store it now; "
        f"`lapor keys revoke {key.id}` withdraws it",
        err=True,
    )


def _default_name(role: str, agency: str | None) -> str:
    return f"{role} {agency}" if agency else role


def _check_agency(agency: str, project: Path | None) -> None:
    """An agency key must name an agency the project's routing knows (a typo would make a key
    that sees no case, silently)."""
    from engine.definitions.loader import load_models
    from engine.domain.model import known_agencies

    found = use_project(project)
    known = known_agencies(load_models(found.workflows, found.policies).values())
    if known and agency not in known:
        raise LaporError(f"unknown agency {agency!r}; known agencies: {', '.join(sorted(known))}")


def list_keys(db: Db = DEFAULT_DB, as_json: AsJson = False) -> None:
    """Every key (never the key itself): id, role, agency, name, created, revoked."""
    keys = _store(db)
    try:
        found = keys.list()
    finally:
        keys.engine.dispose()
    if as_json:
        typer.echo(json.dumps([_described(k) for k in found], indent=2, ensure_ascii=False))
        return
    if not found:
        typer.echo("no keys; `lapor keys create --role ...` makes one")
    for key in found:
        scope = f" {key.scope}" if key.scope else ""
        state = f"revoked {key.revoked_at:%Y-%m-%d %H:%M}Z" if key.revoked_at else "active"
        typer.echo(
            printable(
                f"{key.id}  {key.role}{scope}  {state}  created "
                f"{key.created_at:%Y-%m-%d %H:%M}Z  {key.name}"
            )
        )


def revoke(
    key_id: Annotated[str, typer.Argument(metavar="ID", help="The key's id (lapor keys list).")],
    db: Db = DEFAULT_DB,
) -> None:
    """Withdraw a key: every later request with it is refused (401)."""
    keys = _store(db)
    try:
        key = keys.revoke(key_id, _now())
    finally:
        keys.engine.dispose()
    assert key.revoked_at is not None
    typer.echo(f"revoked {key.id} ({key.role}) at {key.revoked_at.isoformat()}")


def _now() -> datetime:
    return datetime.now(UTC)
