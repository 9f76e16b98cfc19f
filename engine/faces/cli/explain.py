"""``lapor audit explain CASE``: one complaint's history as a timeline a person reads.

An adapter: it reads the case's records and the model they are pinned to from the embedded store
(``SqlHistories``) and hands them to the pure explainer (``engine.apps.audit.explain``). An
unknown case is bad input (exit 2, as for ``lapor status``); a store that cannot be read is
exit 3; both one line on stderr.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from sqlalchemy import Connection

from engine.faces.cli.options import DEFAULT_DB, AsJson, Db
from engine.faces.presenting import printable
from engine.runtime.histories import CaseHistory

__all__ = ["audit_explain", "register"]


def register(audit_app: typer.Typer) -> None:
    """Add ``explain`` to the ``lapor audit`` group."""
    audit_app.command("explain")(audit_explain)


def audit_explain(
    case: Annotated[str, typer.Argument(help="The case id.")],
    lang: Annotated[
        str, typer.Option("--lang", help="Language of the timeline: id (Indonesian) or en.")
    ] = "id",
    db: Db = DEFAULT_DB,
    as_json: AsJson = False,
) -> None:
    """A case's timeline from its recorded history, in Indonesian or English.

    Who did what and when (in the region's zone), which deadlines ran and the holidays they
    skipped, why the case escalated and to whom, and whether each party was on time.
    """
    from engine.apps.audit.explain import check_lang, explain, render
    from engine.domain.events import check_case_id
    from engine.runtime.errors import StoreError, UnknownCaseError
    from engine.runtime.histories import Selection
    from engine.sql import store
    from engine.sql.auditlog import SqlHistories

    chosen = check_lang(lang)  # before the database is opened: a typo costs nothing
    check_case_id(case)

    def read(conn: Connection) -> CaseHistory | None:
        return next(SqlHistories(conn).histories(Selection(case_ids=(case,))), None)

    engine = store.open_engine(db, create=False)
    try:
        found = store.read(engine, read, action="read the case's history")
    finally:
        engine.dispose()
    if found is None or not found.records:
        raise UnknownCaseError(case)
    if found.problem is not None or found.model is None:
        raise StoreError(f"case {case}: {found.problem or 'its model is missing'}")
    steps = explain(found.model, found.records, chosen)
    if as_json:
        out = [step.to_json() for step in steps]
        typer.echo(json.dumps(out, indent=2, ensure_ascii=False))
        return
    model = found.model
    typer.echo(printable(f"{case} · {model.name} {model.version} · model {model.hash[:12]}"))
    typer.echo("")
    typer.echo(printable(render(steps)), nl=False)
