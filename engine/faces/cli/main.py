"""The ``lapor`` command: an adapter over the library, never a second implementation of it.

Mistakes in user input (a malformed file, an unknown region, a bad duration) are ``LaporError``s
and come out as one line on stderr with exit status 2; no traceback.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from engine.domain.calendar import Duration, WorkingCalendar
from engine.domain.errors import DefinitionError, LaporError, Location
from engine.domain.events import instant
from engine.faces.cli.project_option import ProjectDir, note_project, use_project

__all__ = ["app", "main", "run"]

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="lapor-sla: workflow and SLA engine for public-service complaints (SP4N-LAPOR!).",
)
calendar_app = typer.Typer(no_args_is_help=True, help="Working-day calendars.")
app.add_typer(calendar_app, name="calendar")


def _echo_error(text: str) -> None:
    from engine.faces.presenting import printable

    typer.echo(printable(text), err=True)


@app.command()
def validate(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(help="Workflow/policy files or folders (default: the project's)."),
    ] = None,
    project: ProjectDir = None,
) -> None:
    """Check workflow, policy, calendar and scenario files; one line per problem."""
    from engine.apps.scenarios import check_scenario
    from engine.definitions.loader import load_models, validate_paths
    from engine.definitions.project import locate_project

    if not paths:
        found = use_project(project)
        paths = [found.workflows, found.policies]
    problems = list(validate_paths(paths))
    models_by_root: dict[Path, Any] = {}
    for scenario in _scenario_files(paths):
        try:
            root = locate_project(start=scenario.resolve().parent).root
            if root not in models_by_root:
                models_by_root[root] = load_models(root / "workflows", root / "policies")
            problems.extend(check_scenario(scenario, models_by_root[root]))
        except LaporError as exc:
            problems.append(
                exc
                if isinstance(exc, DefinitionError)
                else DefinitionError(exc.message, location=exc.location or Location(str(scenario)))
            )
    for problem in problems:
        typer.echo(str(problem))
    if problems:
        _echo_error(f"{len(problems)} problem(s) found")
        raise typer.Exit(1)
    typer.echo("ok: no problems found")
    _warn_if_calendars_run_out(paths)


def _warn_if_calendars_run_out(paths: list[Path]) -> None:
    """A warning (exit status unchanged) when the calendars validated end within 60 days."""
    from datetime import UTC, datetime

    from engine.definitions.calendars import load_calendars
    from engine.domain.calendar import calendar_runs_out, zone_for_region

    folders = {
        c for p in paths for c in (p, p / "calendars") if c.name == "calendars" and _is_dir(c)
    }
    today = datetime.now(UTC).astimezone(zone_for_region("ID-JK")).date()
    for folder in sorted(folders):
        warning = calendar_runs_out(load_calendars(folder), today)
        if warning:
            _echo_error(f"warning: {folder}: {warning}")


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:
        return False


def _scenario_files(paths: list[Path]) -> list[Path]:
    from engine.definitions.yamlio import load_yaml_file

    found: list[Path] = []
    for path in paths:
        try:
            candidates = sorted(path.rglob("*.y*ml")) if path.is_dir() else [path]
        except OSError:
            continue  # an unusable path: the definitions validator reports it
        for candidate in candidates:
            try:
                head = load_yaml_file(candidate)
            except LaporError:
                continue  # the definitions validator reports unreadable files
            if isinstance(head, dict) and "scenario" in head:
                found.append(candidate)
    return found


@app.command()
def diagram(
    workflow: Annotated[
        Path, typer.Argument(help="A workflow file, e.g. workflows/sp4n-lapor.yaml")
    ],
    policies: Annotated[
        Path | None, typer.Option(help="Policies folder (default: the project's).")
    ] = None,
    project: ProjectDir = None,
) -> None:
    """Print the workflow as a Mermaid state diagram, with its SLA clocks as notes."""
    from engine.definitions.loader import load_model
    from engine.definitions.mermaid import mermaid

    if policies is None:
        policies = use_project(project, workflow.resolve().parent).policies
    model = load_model(workflow, policies)
    typer.echo(mermaid(model), nl=False)


@app.command()
def deadline(
    start: Annotated[str, typer.Option(help="Receipt instant, ISO 8601 with offset.")],
    duration: Annotated[str, typer.Option(help='e.g. "3 working days", "3 working hours".')],
    region: Annotated[str, typer.Option(help="ISO 3166-2:ID province code, e.g. ID-JK.")],
    calendar: Annotated[
        Path | None,
        typer.Option(help="A calendar file or folder (default: the project's policies/calendars)."),
    ] = None,
    project: ProjectDir = None,
) -> None:
    """Print the due instant of a duration started at START, in the region's time zone."""
    working = _load_calendar(calendar if calendar is not None else use_project(project).calendars)
    due = working.due(instant(start), Duration.parse(duration), region)
    typer.echo(due.isoformat())
    if due.year in working.provisional_years:
        _echo_error(
            f"note: {due.year}'s calendar is provisional (its SKB is not checked yet): "
            "this date may still move"
        )


def _load_calendar(path: Path) -> WorkingCalendar:
    from engine.definitions.calendars import load_calendar_year, load_calendars

    if path.is_dir():
        return load_calendars(path)
    return WorkingCalendar([load_calendar_year(path)])


@app.command()
def simulate(
    scenario: Annotated[Path, typer.Argument(help="A scenario file.")],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the case and history as JSON.")
    ] = False,
    project: ProjectDir = None,
) -> None:
    """Run one case on a virtual clock and print its history."""
    from engine.apps.scenarios import run_scenario
    from engine.definitions.loader import load_models
    from engine.faces.presenting import history_lines

    found = use_project(project, scenario.resolve().parent)
    result = run_scenario(scenario, models=load_models(found.workflows, found.policies))
    if as_json:
        payload = {
            "scenario": result.name,
            "passed": result.passed,
            "failures": result.failures,
            "case": result.case.to_json() if result.case else None,
            "history": [r.to_json() for r in result.history],
        }
        typer.echo(json.dumps(payload, indent=2, ensure_ascii=False))
    else:
        typer.echo(f"Scenario: {result.name}")
        if result.case is not None:
            for line in history_lines(result.case, result.history):
                typer.echo(line)
        for failure in result.failures:
            typer.echo(f"FAILED {failure}")
    if result.failures:
        raise typer.Exit(1)


@app.command("test")
def test_command(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(help="Scenario files or folders (default: the project's policies/tests)."),
    ] = None,
    project: ProjectDir = None,
) -> None:
    """Run every scenario that states expectations; pytest-like summary, exit 1 on failure."""
    from engine.apps.scenarios import run_scenario
    from engine.definitions.loader import load_models
    from engine.definitions.project import locate_project

    noted: set[Path] = set()
    if not paths:
        found = use_project(project)
        noted.add(found.root)
        paths = [found.scenarios]
    files = _scenario_files(paths)
    if not files:
        _echo_error("no scenario files found")
        raise typer.Exit(1)
    began = time.perf_counter()
    passed = failed = skipped = 0
    models_by_root: dict[Path, object] = {}
    reports: list[str] = []
    for path in files:
        # Each scenario runs in its own project, unless --project or $LAPOR_PROJECT names one.
        found = locate_project(project, path.resolve().parent)
        root = found.root
        if root not in noted:
            noted.add(root)
            note_project(found)
        if root not in models_by_root:
            models_by_root[root] = load_models(found.workflows, found.policies)
        try:
            result = run_scenario(path, models=models_by_root[root])  # type: ignore[arg-type]
        except LaporError as exc:
            failed += 1
            typer.echo(f"{path} ERROR")
            reports.append(f"{path}: {exc}")
            continue
        if not result.has_expectations:
            skipped += 1
            typer.echo(f"{path} SKIPPED (no expectations)")
        elif result.passed:
            passed += 1
            typer.echo(f"{path} PASSED")
        else:
            failed += 1
            typer.echo(f"{path} FAILED")
            reports.extend(f"{path}: {failure}" for failure in result.failures)
    if reports:
        typer.echo("\n=== failures ===")
        for line in reports:
            typer.echo(line)
    summary = f"{passed} passed, {failed} failed"
    if skipped:
        summary += f", {skipped} skipped"
    typer.echo(f"=== {summary} in {time.perf_counter() - began:.2f}s ===")
    if failed:
        raise typer.Exit(1)


@app.command()
def schema() -> None:
    """Print the JSON Schema of workflow and policy files (for editor completion)."""
    from engine.definitions.schema import json_schema

    typer.echo(json.dumps(json_schema(), indent=2, ensure_ascii=False))


@calendar_app.command("seed")
def calendar_seed(
    year: Annotated[int, typer.Argument(help="The year to draft, e.g. 2028.")],
) -> None:
    """Draft policies/calendars/id-YEAR.yaml from the `holidays` package (review it before use)."""
    from engine.definitions.calendars import seed_calendar_year

    typer.echo(seed_calendar_year(year), nl=False)


def _register_adapters() -> None:
    # The runtime and demo commands live in their own modules; they import heavy dependencies
    # (SQLAlchemy, Alembic) only when a command runs.
    from engine.faces.cli.bpmn import register as register_bpmn
    from engine.faces.cli.cases import register as register_runtime
    from engine.faces.cli.demo import register as register_demo
    from engine.faces.cli.identity import register as register_identity
    from engine.faces.cli.keys import register as register_keys
    from engine.faces.cli.migrate import register as register_migrate
    from engine.faces.cli.outbox import register as register_outbox
    from engine.faces.cli.quarantine import register as register_quarantine
    from engine.faces.cli.serve import register as register_serve
    from engine.faces.cli.temporal import register as register_temporal
    from engine.faces.cli.whatif import register as register_whatif

    register_runtime(app)
    register_bpmn(app)
    register_outbox(app)
    register_quarantine(app)
    register_identity(app)
    register_keys(app)
    register_serve(app)
    register_demo(app)
    register_temporal(app)
    register_whatif(app)
    register_migrate(app)


_register_adapters()


EXIT_REJECTED = 1  # the policy refused the request (a rejection code and reason on stderr)
EXIT_BAD_INPUT = 2  # the input is wrong: a file, an argument, an unknown case (typer's too)
EXIT_UNAVAILABLE = 3  # the database or the Temporal server failed or could not be reached
EXIT_INTERNAL = 70  # a bug in lapor-sla (EX_SOFTWARE); LAPOR_DEBUG=1 shows the traceback


def main() -> None:
    """``lapor``: each kind of failure is one line on stderr and its own exit status."""
    from engine.runtime.errors import (
        IdentityAccessError,
        IdentityErasedError,
        RuntimeUnavailableError,
        StoreError,
    )

    try:
        app()
    except (
        IdentityAccessError,
        IdentityErasedError,
    ) as exc:  # refused by policy, like a rejected signal
        _echo_error(f"refused: {exc}")
        sys.exit(EXIT_REJECTED)
    except (StoreError, RuntimeUnavailableError) as exc:
        _echo_error(f"error: {exc}")
        sys.exit(EXIT_UNAVAILABLE)
    except LaporError as exc:
        _echo_error(f"error: {exc}")
        sys.exit(EXIT_BAD_INPUT)
    except Exception as exc:  # the last resort: a user never gets a traceback for our bug
        if os.environ.get("LAPOR_DEBUG"):
            raise
        _echo_error(
            f"internal error: {type(exc).__name__}: {exc} (a bug in lapor-sla; run again with "
            "LAPOR_DEBUG=1 for the traceback, and report it)"
        )
        sys.exit(EXIT_INTERNAL)


def run() -> None:
    """The ``lapor`` executable: ``main``, then an exit that a Temporal client cannot spoil."""
    try:
        main()
    except SystemExit as done:
        if "temporalio.bridge.client" in sys.modules:
            _exit_now(done.code)
        raise


def _exit_now(code: object) -> None:
    """Leave without interpreter finalisation once a Temporal client has run: the SDK's Rust
    threads may still call into Python while it tears down and abort the process (SIGABRT,
    temporalio/sdk-python#300), turning a finished command into a crash."""
    if code is not None and not isinstance(code, int):
        _echo_error(str(code))
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)


if __name__ == "__main__":
    run()
