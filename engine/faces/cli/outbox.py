"""``lapor outbox``: what the embedded runtime owes the world, and what became of it.

    lapor outbox list [--state pending|dead|delivered|undeliverable|all] [--case CASE] [--json]
    lapor outbox dead                  # the dead letters (list --state dead)
    lapor outbox show ID [--json]      # one message: payload, attempts, last error
    lapor outbox retry ID... | --all-dead   # put dead letters back in the queue

Adapters over ``engine.sql.outbox``; ``lapor run --handler ...`` delivers.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from engine.faces.cli.cases import DEFAULT_DB, AsJson, Db
from engine.faces.presenting import printable

if TYPE_CHECKING:
    from engine.sql.outbox import OutboxEntry

__all__ = ["register"]

State = Annotated[
    str,
    typer.Option(
        help="pending (not yet delivered), dead, delivered, undeliverable (nobody to reach: a "
        "reporter without a contact), or all."
    ),
]


def register(app: typer.Typer) -> None:
    """Add the ``outbox`` group to ``app``."""
    outbox_app = typer.Typer(no_args_is_help=True, help="The outbox: list, show, retry.")
    outbox_app.command("list")(list_command)
    outbox_app.command("dead")(dead)
    outbox_app.command("show")(show)
    outbox_app.command("retry")(retry)
    app.add_typer(outbox_app, name="outbox")


def _engine(db: str) -> Any:
    from engine.sql.store import open_engine

    return open_engine(db, create=False)


def _when(epoch_us: int | None) -> str:
    if epoch_us is None:
        return "-"
    return datetime.fromtimestamp(epoch_us / 1e6, UTC).isoformat(timespec="seconds")


def _as_json(entry: OutboxEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "case_id": entry.case_id,
        "seq": entry.seq,
        "idempotency_key": entry.idempotency_key,
        "kind": entry.kind,
        "target": entry.target,
        "state": entry.state,
        "attempts": entry.attempts,
        "next_attempt": None if entry.next_attempt_us is None else _when(entry.next_attempt_us),
        "delivered": None if entry.delivered_us is None else _when(entry.delivered_us),
        "last_error": entry.last_error,
        "payload": entry.payload,
    }


def _print(entries: list[OutboxEntry], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps([_as_json(e) for e in entries], indent=2, ensure_ascii=False))
        return
    if not entries:
        typer.echo("no messages")
        return
    for e in entries:
        settled = e.state in ("delivered", "undeliverable")
        when = _when(e.delivered_us if settled else e.next_attempt_us)
        error = f"  last error: {e.last_error[:80]}" if e.last_error else ""
        typer.echo(
            printable(
                f"{e.id:>8}  {e.state:<13} {e.idempotency_key:<32} {e.kind:<9} -> {e.target:<20} "
                f"attempts {e.attempts}  {when}{error}"
            )
        )


def list_command(
    db: Db = DEFAULT_DB,
    state: State = "pending",
    case: Annotated[str | None, typer.Option(help="Only this case's messages.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="At most this many.")] = 50,
    as_json: AsJson = False,
) -> None:
    """List outbox messages, oldest first."""
    from engine.sql.outbox import list_messages

    engine = _engine(db)
    try:
        _print(list_messages(engine, state=state, case_id=case, limit=limit), as_json)
    finally:
        engine.dispose()


def dead(db: Db = DEFAULT_DB, limit: int = 50, as_json: AsJson = False) -> None:
    """List the dead letters: messages given up on (retry them with `lapor outbox retry`)."""
    list_command(db=db, state="dead", case=None, limit=limit, as_json=as_json)


def show(
    message_id: Annotated[int, typer.Argument(help="The message id (from `lapor outbox list`).")],
    db: Db = DEFAULT_DB,
    as_json: AsJson = False,
) -> None:
    """One message: where it stands, its last error and its payload (never the reporter)."""
    from engine.sql.outbox import get_message

    engine = _engine(db)
    try:
        entry = get_message(engine, message_id)
    finally:
        engine.dispose()
    view = _as_json(entry)
    if as_json:
        typer.echo(json.dumps(view, indent=2, ensure_ascii=False))
        return
    for key, value in view.items():
        if key != "payload":
            typer.echo(printable(f"{key}: {value}"))
    typer.echo(printable("payload: " + json.dumps(entry.payload, indent=2, ensure_ascii=False)))


def retry(
    message_ids: Annotated[
        list[int] | None, typer.Argument(help="Dead letters to put back in the queue.")
    ] = None,
    all_dead: Annotated[bool, typer.Option("--all-dead", help="Every dead letter.")] = False,
    db: Db = DEFAULT_DB,
) -> None:
    """Put dead letters back in the queue with a fresh attempt count (after fixing the cause)."""
    from engine.domain.errors import LaporError
    from engine.sql.outbox import requeue_dead

    if bool(message_ids) == all_dead:
        raise LaporError("give the ids of dead letters to retry, or --all-dead (not both)")
    engine = _engine(db)
    try:
        count = requeue_dead(engine, datetime.now(UTC), ids=None if all_dead else message_ids)
    finally:
        engine.dispose()
    typer.echo(f"requeued {count} dead letter(s)")
