"""Migrating open cases onto a changed policy, the same on every runtime (memory, SQLite,
PostgreSQL, Temporal): a shortened deadline moves a running clock, a deadline the new rule puts
in the past lapses right after the move, a state the new model lacks needs a mapping, and the
history still re-derives across the migration."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping
from datetime import timedelta

import pytest

from engine.domain.calendar import Duration
from engine.domain.events import Actor, Signal, instant
from engine.domain.history import audit_case
from engine.domain.model import ClockDuration, Model
from engine.runtime.contract import Runtime
from tests.contract.conftest import Factory

WORKFLOW = "sp4n-lapor"
T0 = instant("2026-03-02T10:00:00+07:00")  # Monday; no holiday until Nyepi (19 March)
INTAKE = {"category": "kesehatan", "region": "ID-JK", "channel": "web", "description": "x"}
ADMIN = Actor.parse("admin:nasional")
VERIFY = Signal("verify", ADMIN, {"agency": "kemenkes"})
HOLD = Signal("hold", ADMIN, {"missing_info": "Nama puskesmas?"})


def with_clock(model: Model, clock: str, duration: str) -> Model:
    clocks = tuple(
        dataclasses.replace(c, duration=ClockDuration(Duration.parse(duration)))
        if c.name == clock
        else c
        for c in model.clocks
    )
    return dataclasses.replace(model, clocks=clocks)


def without_hold(model: Model) -> Model:
    """The model with no Tunda: state ``on_hold`` and the transitions into and out of it gone."""
    states = {k: v for k, v in model.states.items() if k != "on_hold"}
    transitions = {
        k: t
        for k, t in model.transitions.items()
        if t.target != "on_hold" and "on_hold" not in t.sources
    }
    clocks = tuple(
        dataclasses.replace(c, pauses_in=tuple(s for s in c.pauses_in if s != "on_hold"))
        for c in model.clocks
    )
    return dataclasses.replace(model, states=states, transitions=transitions, clocks=clocks)


def new_case(runtime: Runtime) -> str:
    case_id = f"LAPOR-M-{uuid.uuid4().hex[:10]}"
    assert runtime.start(WORKFLOW, case_id, INTAKE, at=T0).accepted
    return case_id


def audited(runtime: Runtime, case_id: str, *models: Model) -> list[str]:
    by_hash = {m.hash: m for m in models}
    records = runtime.history(case_id)
    first = by_hash[records[0].model_hash]
    report = audit_case(runtime.case(case_id), first, records, models=by_hash.get)
    return list(report.problems)


@pytest.fixture
def shipped(models: Mapping[str, Model]) -> Model:
    return models[WORKFLOW]


def test_a_shortened_deadline_moves_the_running_clock_and_the_audit_still_verifies(
    runtime_factory: Factory, models: Mapping[str, Model], shipped: Model
) -> None:
    runtime = runtime_factory(models, T0)
    case_id = new_case(runtime)
    assert runtime.signal(case_id, VERIFY, at=T0 + timedelta(hours=1)).accepted
    before = runtime.case(case_id).clock("first_follow_up")
    assert before is not None and before.due_at == instant("2026-03-09T23:59:59+07:00")
    shorter = with_clock(shipped, "first_follow_up", "3 working days")

    moved = runtime.migrate(case_id, shorter, ADMIN, at=instant("2026-03-04T10:00:00+07:00"))

    assert moved.accepted, moved.reason
    assert moved.record is not None and moved.record.model_hash == shorter.hash
    assert moved.record.event["from_model"] == shipped.hash
    rescheduled = {"kind": "clock_rescheduled", "clock": "first_follow_up",
                   "due_at": "2026-03-05T23:59:59+07:00", "remaining": None}  # fmt: skip
    assert rescheduled in moved.record.effects
    # As if the case had started under the new rule: 3 working days from 2 March.
    runtime.advance_to(instant("2026-03-06T12:00:00+07:00"))
    lapse = runtime.history(case_id)[-1]
    assert lapse.event["kind"] == "clock_lapsed" and lapse.model_hash == shorter.hash
    assert runtime.model_of(case_id).hash == shorter.hash
    assert audited(runtime, case_id, shipped, shorter) == []


def test_a_deadline_the_new_rule_puts_in_the_past_lapses_right_after_the_migration(
    runtime_factory: Factory, models: Mapping[str, Model], shipped: Model
) -> None:
    runtime = runtime_factory(models, T0)
    case_id = new_case(runtime)
    assert runtime.signal(case_id, VERIFY, at=T0 + timedelta(hours=1)).accepted
    shorter = with_clock(shipped, "first_follow_up", "3 working days")
    at = instant("2026-03-06T10:00:00+07:00")  # day 4 of 5: past a 3-day deadline

    moved = runtime.migrate(case_id, shorter, ADMIN, at=at)
    runtime.advance_to(at + timedelta(minutes=5))

    assert moved.accepted, moved.reason
    lapse = runtime.history(case_id)[-1]
    assert lapse.event == {"kind": "clock_lapsed", "clock": "first_follow_up",
                           "due_at": "2026-03-06T03:00:00+00:00"}  # fmt: skip
    assert any(e["kind"] == "escalated" for e in lapse.effects)
    assert audited(runtime, case_id, shipped, shorter) == []


def test_a_state_missing_from_the_new_model_needs_an_explicit_mapping(
    runtime_factory: Factory, models: Mapping[str, Model], shipped: Model
) -> None:
    runtime = runtime_factory(models, T0)
    case_id = new_case(runtime)
    assert runtime.signal(case_id, HOLD, at=T0 + timedelta(hours=1)).accepted
    no_hold = without_hold(shipped)
    at = instant("2026-03-03T10:00:00+07:00")

    refused = runtime.migrate(case_id, no_hold, ADMIN, at=at)
    mapped = runtime.migrate(case_id, no_hold, ADMIN, {"on_hold": "submitted"}, at=at)

    assert refused.code == "cannot_migrate"
    assert (
        refused.reason is not None and "state 'on_hold' is not in the new model" in refused.reason
    )
    assert mapped.accepted, mapped.reason
    assert mapped.record is not None
    assert mapped.record.event["states"] == {"on_hold": "submitted"}
    case = runtime.case(case_id)
    assert (case.state, case.model_hash) == ("submitted", no_hold.hash)
    verification = case.clock("verification")
    # Paused with 3 working days left on 2 March; resumed on 3 March: due 6 March.
    assert verification is not None and verification.running
    assert verification.due_at == instant("2026-03-06T23:59:59+07:00")
    assert audited(runtime, case_id, shipped, no_hold) == []


def test_a_migration_to_another_workflow_is_refused_and_changes_nothing(
    runtime_factory: Factory, models: Mapping[str, Model], shipped: Model
) -> None:
    runtime = runtime_factory(models, T0)
    case_id = new_case(runtime)
    other = dataclasses.replace(shipped, name="another-workflow")

    refused = runtime.migrate(case_id, other, ADMIN, at=T0 + timedelta(hours=2))

    assert refused.code == "cannot_migrate"
    assert len(runtime.history(case_id)) == 1
    assert runtime.case(case_id).model_hash == shipped.hash
