"""``lapor identity``: the key ring that seals reporters' identities, and the identities.

    lapor identity init FILE                      # a new key file (mode 600), one active key
    lapor identity add-key FILE --key-id 2027-01  # rotation: a new active key, older ones kept
    lapor identity rewrap                         # wrap every stored data key under the active key
    lapor identity show CASE --actor admin:nasional
    lapor identity erase CASE --actor admin:nasional

The key ring is read from ``$LAPOR_KEY_FILE`` (or one key from ``$LAPOR_IDENTITY_KEY``); see
``engine.runtime.identity``. Only Admin Nasional may read or erase an identity; any other role is
refused (exit 1).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from engine.domain.errors import LaporError
from engine.faces.cli.cases import DEFAULT_DB, Db, Temporal, _client
from engine.faces.presenting import printable

__all__ = ["register"]

Actor = Annotated[str, typer.Option(help="ROLE:ID of who asks; only admin may.")]
KeyFile = Annotated[Path, typer.Argument(help="The key file (JSON, readable by its owner only).")]


def register(app: typer.Typer) -> None:
    """Add the ``identity`` group to ``app``."""
    group = typer.Typer(no_args_is_help=True, help="Reporters' identities and their key ring.")
    group.command("init")(init)
    group.command("add-key")(add_key)
    group.command("rewrap")(rewrap)
    group.command("show")(show)
    group.command("erase")(erase)
    app.add_typer(group, name="identity")


def init(
    path: KeyFile,
    key_id: Annotated[str, typer.Option(help="The first key's id.")] = "k1",
) -> None:
    """Write a new key file with one fresh master key; refuses to replace an existing file."""
    from engine.runtime.identity import KEY_FILE_ENV, KeyRing

    if path.exists():
        raise LaporError(f"{path} exists; a key file is never overwritten (its keys open data)")
    KeyRing.generate(key_id).write(path)
    typer.echo(f"wrote {path} (key {key_id}); use it with {KEY_FILE_ENV}={path}")


def add_key(
    path: KeyFile,
    key_id: Annotated[str, typer.Option(help="The new key's id, e.g. 2027-01.")],
) -> None:
    """Add a fresh master key to a key file and make it active; the older keys stay, so what
    they sealed still opens (`lapor identity rewrap` moves it to the new key)."""
    from engine.runtime.identity import KeyRing

    ring = KeyRing.from_file(path).with_new_key(key_id)
    ring.write(path)
    typer.echo(f"{path}: key {key_id} is active; keys {', '.join(ring.key_ids)}")


def rewrap(db: Db = DEFAULT_DB) -> None:
    """Wrap every stored identity's and webhook secret's data key under the key ring's active key
    (after add-key); then older keys can leave the ring once no Temporal case or reporter token
    needs them."""
    from engine.faces.sdk import Client
    from engine.sql.embedded import EmbeddedRuntime
    from engine.sql.subscriptions import SubscriptionStore

    with Client(db) as client:
        runtime = client.runtime
        assert isinstance(runtime, EmbeddedRuntime)
        count = runtime.rewrap_identities()
        assert runtime.keyring is not None  # rewrap_identities refused without one
        secrets = SubscriptionStore(runtime.engine, runtime.keyring).rewrap()
        active = runtime.keyring.active
    typer.echo(
        f"rewrapped {count} identities and {secrets} webhook subscription secret(s) "
        f"under key {active}"
    )


def show(
    case: Annotated[str, typer.Argument(help="The case id.")],
    actor: Actor,
    db: Db = DEFAULT_DB,
    temporal: Temporal = None,
) -> None:
    """Print the identity the reporter gave (JSON), to Admin Nasional only."""
    with _client(db, temporal) as client:
        identity = client.identity(case, actor=actor)
    if identity is None:
        typer.echo(f"case {case}: the reporter gave no identity")
        return
    typer.echo(printable(json.dumps(dict(identity), indent=2, ensure_ascii=False)))


def erase(
    case: Annotated[str, typer.Argument(help="The case id.")],
    actor: Actor,
    db: Db = DEFAULT_DB,
    temporal: Temporal = None,
) -> None:
    """Erase the reporter's identity for good (UU 27/2022); the case and its history stay."""
    with _client(db, temporal) as client:
        erased = client.erase_identity(case, actor=actor)
    typer.echo(f"case {case}: " + ("identity erased" if erased else "no identity to erase"))
