"""``lapor migrate``: move open cases onto a changed workflow or policy (a regulation shortened a
deadline), on the embedded store or Temporal. The plan is decided first for every case, in
memory, by the same core that will record it; ``--dry-run`` prints it, and a plan with any
refusal (a state the new model lacks, without ``--map``) changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from engine.domain.case import Case
from engine.domain.errors import LaporError
from engine.domain.events import Actor, Migrated, instant
from engine.domain.machine import decide
from engine.domain.model import Model
from engine.faces.cli.options import DEFAULT_DB, Db, Temporal
from engine.faces.cli.project_option import ProjectDir, use_project
from engine.faces.cli.whatif import load_workflow_model
from engine.faces.presenting import describe_effect, printable
from engine.runtime.contract import Runtime

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    app.command("migrate")(migrate)


@dataclass(frozen=True, slots=True)
class _Step:
    case_id: str
    lines: tuple[str, ...]
    refusal: str | None = None


def migrate(
    to: Annotated[Path, typer.Option("--to", help="The new workflow file (YAML or BPMN).")],
    cases: Annotated[
        list[str] | None,
        typer.Argument(help="The cases to move (default: every open case of the workflow)."),
    ] = None,
    policies: Annotated[
        Path | None, typer.Option(help="Policies folder (default: the project's).")
    ] = None,
    mapping: Annotated[
        list[str] | None,
        typer.Option(
            "--map",
            help="OLD=NEW: the new state for cases in a state the new model "
            "lacks (repeat for several).",
        ),
    ] = None,
    actor: Annotated[str, typer.Option(help="Who migrates (recorded).")] = "admin:nasional",
    at: Annotated[
        str | None, typer.Option(help="When the new rules take effect (default: now).")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would change; change nothing.")
    ] = False,
    db: Db = DEFAULT_DB,
    temporal: Temporal = None,
    project: ProjectDir = None,
) -> None:
    """Move open cases onto a changed workflow: each records a migration (old model -> new,
    state mapping) and its open clocks are recomputed under the new rules."""
    if policies is None:
        policies = use_project(project, to.resolve().parent).policies
    target = load_workflow_model(to, policies)
    states = _mapping(mapping or [])
    who = Actor.parse(actor)
    now = instant(at) if at is not None else datetime.now(UTC)
    runtime = _runtime(db, temporal, target)
    try:
        ids = list(cases or []) or _open_cases(runtime, db, temporal, target)
        plan = [_plan(runtime, case_id, target, states, who, now) for case_id in ids]
        moving = [step for step in plan if step.refusal is None and step.lines != ("unchanged",)]
        for step in plan:
            head = "REFUSED" if step.refusal else ("would move" if dry_run else "moving")
            typer.echo(
                printable(f"{step.case_id}: {head}: {step.refusal or '; '.join(step.lines)}")
            )
        refused = [step for step in plan if step.refusal]
        if refused:
            typer.echo(f"{len(refused)} case(s) cannot move; nothing was changed", err=True)
            raise typer.Exit(1)
        if dry_run:
            _print_what_if(runtime, [step.case_id for step in moving], target, now)
            typer.echo(f"dry run: {len(moving)} case(s) would move to {target.hash[:12]}")
            return
        for step in moving:
            outcome = runtime.migrate(step.case_id, target, who, states, at=now)
            if not outcome.accepted:  # the case changed since the plan: say so, go on
                typer.echo(printable(f"{step.case_id}: REFUSED: {outcome.reason}"), err=True)
        typer.echo(f"moved {len(moving)} case(s) to model {target.hash[:12]}")
    finally:
        runtime.close()


def _mapping(pairs: list[str]) -> Mapping[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        old, sep, new = pair.partition("=")
        if not sep or not old.strip() or not new.strip():
            raise LaporError(f"--map {pair!r}: expected OLD_STATE=NEW_STATE")
        out[old.strip()] = new.strip()
    return out


def _runtime(db: str, temporal: str | None, target: Model) -> Runtime:
    if temporal is not None:
        from workers.connection import TemporalTarget
        from workers.runtime import TemporalRuntime

        return TemporalRuntime.connect(TemporalTarget.from_env(temporal))
    from engine.runtime.clock import WallClock
    from engine.runtime.identity import KeyRing
    from engine.sql import store
    from engine.sql.embedded import EmbeddedRuntime

    engine = store.open_engine(db, create=False)
    return EmbeddedRuntime(engine, {target.name: target}, WallClock(), keyring=KeyRing.from_env())


def _open_cases(runtime: Runtime, db: str, temporal: str | None, target: Model) -> list[str]:
    from sqlalchemy import select

    from engine.sql import store
    from engine.sql.embedded import EmbeddedRuntime
    from engine.sql.tables import cases

    if not isinstance(runtime, EmbeddedRuntime):  # Temporal: its visibility store lists them
        listed: list[str] = runtime.case_ids()  # type: ignore[attr-defined]
        return [c for c in listed if _movable(runtime.case(c), target)]

    query = (
        select(cases.c.id)
        .where(cases.c.outcome.is_(None), cases.c.workflow == target.name)
        .where(cases.c.model_hash != target.hash)
        .order_by(cases.c.id)
    )
    engine = runtime.engine
    return list(store.read(engine, lambda conn: list(conn.scalars(query)), action="list cases"))


def _movable(case: Case, target: Model) -> bool:
    return not case.closed and case.workflow == target.name and case.model_hash != target.hash


def _plan(
    runtime: Runtime,
    case_id: str,
    target: Model,
    states: Mapping[str, str],
    actor: Actor,
    now: datetime,
) -> _Step:
    """What the migration would record for ``case_id``, decided in memory by the core."""
    case = runtime.case(case_id)
    if case.model_hash == target.hash:
        return _Step(case_id, ("unchanged",))
    source = runtime.model_of(case_id)
    applied = {k: v for k, v in states.items() if k == case.state}
    event = Migrated(case.model_hash, target.hash, actor, applied, source)
    decision = decide(target, case, event, max(now, case.last_at))
    if decision.record is None:
        return _Step(case_id, (), decision.rejection.reason if decision.rejection else "refused")
    effects = [describe_effect(e) for e in decision.record.effects] or ["no clock changes"]
    return _Step(case_id, tuple(effects))


def _print_what_if(runtime: Runtime, case_ids: list[str], target: Model, now: datetime) -> None:
    """``lapor whatif`` for exactly the cases the migration would move: their recorded inputs
    re-run under the new model up to ``now``, so the author sees which of them would already
    have escalated earlier or later had the new rules been in force from their start."""
    from engine.apps.audit.whatif import WhatIf
    from engine.runtime.histories import CaseHistory

    run = WhatIf(target, now, sample_size=0)
    for case_id in case_ids:
        history = CaseHistory(
            case_id,
            tuple(runtime.history(case_id)),
            runtime.model_of(case_id),
            runtime.case(case_id),
        )
        diff = run.compare(history)
        if diff is not None and diff.changed:
            shift = "" if diff.delta_working_days is None else f" ({diff.delta_working_days:+d} hk)"
            change = diff.change.replace("_", " ")
            line = f"{case_id}: what-if under the new model: escalates {change}{shift}"
            typer.echo(printable(line))
    counts = run.summary.overall
    typer.echo(
        f"what-if over these {counts['cases']} case(s) up to {now.isoformat()}: "
        f"{counts['changed']} changed ({counts['earlier']} earlier, {counts['later']} later, "
        f"{counts['newly']} newly, {counts['no_longer']} no longer escalate)"
    )
