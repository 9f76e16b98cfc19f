"""``lapor whatif``: what a changed workflow or SLA policy would have done to the recorded cases.

An adapter over ``engine.apps.audit.whatif`` (the comparison) and ``whatif_html`` (the report);
the histories stream from the embedded store in batches, so memory stays flat over any number of
cases. Differences are findings, not errors: the command exits 0 when it ran.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from sqlalchemy import Connection, func, select

from engine.domain.errors import DefinitionErrors, LaporError
from engine.domain.events import instant
from engine.faces.cli.cases import DEFAULT_DB, Db
from engine.faces.cli.project_option import ProjectDir, use_project
from engine.faces.cli.verify import parse_since

if TYPE_CHECKING:
    from collections import Counter

    from rich.console import Console

    from engine.apps.audit.whatif import CaseDiff, WhatIfSummary
    from engine.domain.model import Model

__all__ = ["load_workflow_model", "register"]


def register(app: typer.Typer) -> None:
    """Add ``lapor whatif`` to ``app``."""
    app.command("whatif")(whatif)


def whatif(
    workflow: Annotated[
        Path,
        typer.Option(
            "--workflow", help="The changed workflow file (same workflow name as the cases')."
        ),
    ],
    policies: Annotated[
        Path | None, typer.Option(help="The changed policies folder (default: the project's).")
    ] = None,
    db: Db = DEFAULT_DB,
    since: Annotated[
        str | None,
        typer.Option(
            help="Only cases opened at or after this date (YYYY-MM-DD, midnight in the national "
            "zone) or instant (ISO 8601 with offset)."
        ),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(
            help="Compare both models up to this instant (default: the latest recorded one)."
        ),
    ] = None,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="One JSON line per changed case, then one summary line."),
    ] = False,
    html: Annotated[
        Path | None, typer.Option(help="Also write a self-contained HTML report here.")
    ] = None,
    top: Annotated[int, typer.Option(min=0, help="How many changed cases to list.")] = 20,
    project: ProjectDir = None,
) -> None:
    """Re-run the recorded inputs of past cases under a changed model and compare.

    Per case: the first escalation earlier, later, new or gone (with the shift in working days),
    each ladder rung likewise, referrals to the final rung (Ombudsman RI) gained or lost, and
    inputs the new model would refuse ("diverges at record N"); counted overall, per agency and
    per region.
    """
    from engine.apps.audit.whatif import WhatIf
    from engine.runtime.histories import Selection
    from engine.sql import store
    from engine.sql.auditlog import SqlHistories

    if policies is None:
        policies = use_project(project, workflow.resolve().parent).policies
    model = load_workflow_model(workflow, policies)
    selection = Selection(since=parse_since(since))
    wanted_until = None if until is None else instant(until)
    engine = store.open_engine(db, create=False)

    def compare(conn: Connection) -> WhatIfSummary:
        _check_workflow(conn, model, db)
        latest = wanted_until or _latest_record(conn)
        if latest is None:
            raise LaporError(f"{store.safe_url(db)} holds no recorded cases to compare")
        run = WhatIf(model, latest, sample_size=top)
        for diff in run.run(SqlHistories(conn).histories(selection)):
            if as_json:
                typer.echo(json.dumps(diff.to_json(), ensure_ascii=False))
        return run.summary

    try:
        summary = store.read(engine, compare, action="read the recorded histories")
    finally:
        engine.dispose()
    if html is not None:
        _write_html(html, summary, model)
    if as_json:
        typer.echo(json.dumps(summary.to_json(), ensure_ascii=False))
    else:
        _print_report(summary, model)


def load_workflow_model(workflow: Path, policies: Path) -> Model:
    """A changed workflow file and its policies, compiled; a definition error is one line."""
    from engine.definitions.loader import load_model

    try:
        return load_model(workflow, policies)
    except DefinitionErrors as exc:
        # One line, as every other bad input: `lapor validate` lists all of them.
        more = len(exc.errors) - 1
        tail = f" (and {more} more problem(s): `lapor validate` lists them)" if more else ""
        raise LaporError(f"{exc.errors[0]}{tail}") from None


def _check_workflow(conn: Connection, model: Model, db: str) -> None:
    from engine.sql.store import safe_url
    from engine.sql.tables import definitions

    names = sorted(conn.scalars(select(definitions.c.name).distinct()))
    if model.name not in names:
        held = ", ".join(names) or "none"
        raise LaporError(
            f"unknown workflow {model.name!r}: {safe_url(db)} holds cases of {held}; "
            "--workflow must be a changed version of one of them"
        )


def _latest_record(conn: Connection) -> datetime | None:
    from engine.sql.tables import history

    # Recorded instants are ISO 8601 in UTC, one format, so the text order is the time order.
    latest = conn.scalar(select(func.max(history.c.at)))
    return None if latest is None else instant(latest)


def _write_html(path: Path, summary: WhatIfSummary, model: Model) -> None:
    from engine.apps.audit.whatif_html import render_html

    try:
        path.write_text(render_html(summary, model), encoding="utf-8")
    except OSError as exc:
        raise LaporError(f"cannot write {path}: {exc.strerror or exc}") from None


# --- the rich report ------------------------------------------------------------------------

_ROWS = 15  # agencies and regions shown; --json and --html hold them all
# Short headers, so the table fits an 80-column terminal.
_GROUP_COLUMNS = (
    ("cases", "cases"),
    ("changed", "chg"),
    ("earlier", "early"),
    ("later", "late"),
    ("newly", "new"),
    ("no_longer", "gone"),
    ("referral_gained", "ref+"),
    ("referral_lost", "ref−"),
    ("diverged", "div"),
)
_GROUP_LEGEND = (
    "chg changed · early/late first escalation · new/gone escalates only under the new/old "
    "model · ref+/ref− referral gained/lost · div inputs refused"
)
_CHANGE_LABELS = {
    "earlier": "escalates earlier",
    "later": "escalates later",
    "newly": "newly escalates",
    "no_longer": "no longer escalates",
    "same": "escalates at the same instant",
    "none": "escalates under neither",
}


def _print_report(summary: WhatIfSummary, model: Model) -> None:
    from rich.box import SIMPLE_HEAD
    from rich.console import Console
    from rich.table import Table

    from engine.apps.audit.whatif import CHANGES, referral_targets, rung_label

    console = Console()
    if not console.is_terminal:
        console = Console(width=120)  # a file or a pipe has room; rich would assume 80
    counts = summary.overall
    console.print(
        f"[bold]What if[/bold] {model.name} {model.version} ({model.hash[:12]}) had decided "
        f"{counts['cases']:,} recorded case(s), up to {summary.until.isoformat()}: "
        f"[bold]{counts['changed']:,} changed[/bold]"
    )
    overall = Table(box=SIMPLE_HEAD, title="Overall", title_justify="left")
    overall.add_column("")
    overall.add_column("cases", justify="right")
    for change in CHANGES:
        overall.add_row(_CHANGE_LABELS[change], f"{counts[change]:,}")
    final = referral_targets(model)
    overall.add_row(f"referral gained ({final})", f"{counts['referral_gained']:,}")
    overall.add_row(f"referral lost ({final})", f"{counts['referral_lost']:,}")
    overall.add_row("inputs the new model refuses (diverges)", f"{counts['diverged']:,}")
    for name, skipped in sorted(summary.skipped_other_workflow.items()):
        overall.add_row(f"skipped: pinned to workflow {name}", f"{skipped:,}")
    if summary.unreadable:
        overall.add_row("skipped: unreadable", f"{summary.unreadable:,}")
    if summary.failed:
        overall.add_row("could not be re-run", f"{summary.failed:,}")
    console.print(overall)
    for failure in summary.failures:
        console.print(f"  [red]not re-run[/red] {failure}", markup=False, highlight=False)
    _print_groups(console, "Per agency", summary.per_agency)
    _print_groups(console, "Per region", summary.per_region)
    if summary.per_rung:
        rungs = Table(
            box=SIMPLE_HEAD, title="Per ladder rung (first reached)", title_justify="left"
        )
        reached = [c for c in CHANGES if c != "none"]  # a rung listed was reached by one
        rungs.add_column("rung")
        for change in reached:
            rungs.add_column(change.replace("_", " "), justify="right")
        for rung, rung_counts in sorted(summary.per_rung.items()):
            rungs.add_row(rung_label(rung), *(f"{rung_counts[c]:,}" for c in reached))
        console.print(rungs)
    if summary.top:
        _print_top(console, summary.top)


def _print_groups(console: Console, title: str, groups: dict[str, Counter[str]]) -> None:
    from rich.box import SIMPLE_HEAD
    from rich.table import Table

    rows = sorted(groups.items(), key=lambda item: (-item[1]["changed"], item[0]))
    table = Table(box=SIMPLE_HEAD, title=title, title_justify="left")
    table.add_column("", no_wrap=True, max_width=16)
    for _, header in _GROUP_COLUMNS:
        table.add_column(header, justify="right", no_wrap=True, min_width=5)
    for name, counts in rows[:_ROWS]:
        table.add_row(name, *(f"{counts[key]:,}" for key, _ in _GROUP_COLUMNS))
    table.caption = _GROUP_LEGEND
    if len(rows) > _ROWS:
        table.caption += f"; {len(rows) - _ROWS} more in --json and --html"
    console.print(table)


def _print_top(console: Console, diffs: list[CaseDiff]) -> None:
    from rich.box import SIMPLE_HEAD
    from rich.table import Table

    table = Table(box=SIMPLE_HEAD, title="Most changed cases", title_justify="left")
    table.add_column("case", no_wrap=True)
    table.add_column("agency", no_wrap=True, max_width=16)
    table.add_column("change", no_wrap=True)
    table.add_column("old 1st escalation", no_wrap=True)
    table.add_column("new 1st escalation", no_wrap=True)
    table.add_column("Δ hk", justify="right", no_wrap=True, min_width=4)
    # Columns nobody in the list fills are left out, so the rest fit a terminal.
    referrals = any(diff.referral for diff in diffs)
    divergences = any(diff.divergence for diff in diffs)
    if referrals:
        table.add_column("referral", no_wrap=True)
    if divergences:
        table.add_column("diverges at")
    for diff in diffs:
        old, new = diff.old.first, diff.new.first
        delta = diff.delta_working_days
        divergence = diff.divergence
        cells = [
            diff.case_id,
            diff.agency or "",
            diff.change.replace("_", " "),
            _short_time(old),
            _short_time(new),
            "" if delta is None else f"{delta:+d}",
        ]
        if referrals:
            cells.append(diff.referral or "")
        if divergences:
            cells.append(
                "" if divergence is None else f"record {divergence.record} ({divergence.code})"
            )
        table.add_row(*cells)
    table.caption = "hk = hari kerja (working days); instants are deadlines' lapses, local time"
    console.print(table)


def _short_time(moment: datetime | None) -> str:
    """Minutes are enough in a table (lapses fall on the minute); --json has the instant."""
    from engine.faces.presenting import local_time

    if moment is None:
        return ""
    text = local_time(moment)  # 2026-03-28 00:00:00 WIB
    day_time, _, zone = text.rpartition(" ")
    return f"{day_time[:-3]} {zone}"
