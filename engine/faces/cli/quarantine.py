"""``lapor quarantine``: the cases the timer loop set aside because it could not decide them.

    lapor quarantine list [--json]            # each with why, and since when
    lapor quarantine retry CASE... | --all    # after fixing the cause: decided again by lapor run

A case is set aside (not lost, not half-decided) when deciding its due clock fails: a deadline in
a year no calendar covers, a row that cannot be read. Every other case goes on being fired.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated

import typer

from engine.domain.errors import LaporError
from engine.faces.cli.cases import DEFAULT_DB, AsJson, Db
from engine.faces.presenting import printable

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add the ``quarantine`` group to ``app``."""
    group = typer.Typer(no_args_is_help=True, help="Cases set aside by the timer loop.")
    group.command("list")(list_command)
    group.command("retry")(retry)
    app.add_typer(group, name="quarantine")


def list_command(db: Db = DEFAULT_DB, as_json: AsJson = False) -> None:
    """List the cases set aside, oldest first, with the reason."""
    from engine.sql import store

    engine = store.open_engine(db, create=False)
    try:
        found = store.read(engine, store.list_quarantined, action="list the quarantine")
    finally:
        engine.dispose()
    rows = [
        {
            "case_id": q.case_id,
            "since": datetime.fromtimestamp(q.quarantined_us / 1e6, UTC).isoformat(
                timespec="seconds"
            ),
            "reason": q.reason,
        }
        for q in found
    ]
    if as_json:
        typer.echo(json.dumps(rows, indent=2, ensure_ascii=False))
    elif not rows:
        typer.echo("no case is set aside")
    for row in [] if as_json else rows:
        typer.echo(printable(f"{row['case_id']}  since {row['since']}  {row['reason']}"))


def retry(
    case_ids: Annotated[list[str] | None, typer.Argument(help="Cases to bring back.")] = None,
    all_cases: Annotated[bool, typer.Option("--all", help="Every case set aside.")] = False,
    db: Db = DEFAULT_DB,
) -> None:
    """Bring cases back once the cause is fixed: their deadline is re-derived, and the next
    `lapor run` decides them again (a case that fails again is set aside again)."""
    from engine.sql import store

    if bool(case_ids) == all_cases:
        raise LaporError("give the cases to retry, or --all (not both)")
    engine = store.open_engine(db, create=False)
    try:
        released = store.transact(
            engine,
            lambda conn: store.release_quarantined(conn, None if all_cases else case_ids),
            action="release quarantined cases",
        )
    finally:
        engine.dispose()
    typer.echo(f"released {len(released)} case(s): {', '.join(released) or '-'}")
