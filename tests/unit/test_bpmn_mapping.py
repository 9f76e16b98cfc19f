"""What the BPMN importer makes of the constructs beyond tasks and flows, and that the result
runs: a subprocess timer is one clock across its states, an event-based gateway is a waiting
state racing a signal against a timer, a non-interrupting timer climbs the ladder drawn after it,
and an exclusive gateway's default flow is guarded by the negation of the others."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from engine.definitions.loader import load_bpmn_model
from engine.domain.events import Actor, Signal, instant
from engine.domain.model import Model
from engine.runtime.clock import VirtualClock
from engine.runtime.memory import MemoryRuntime

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "bpmn" / "permit-span-race-ladder.bpmn"
T0 = instant("2026-03-02T10:00:00+07:00")  # a Monday; no holiday until Nyepi (18 Mar)
OFFICER = Actor("officer")


@pytest.fixture(scope="module")
def permit() -> Model:
    return load_bpmn_model(FIXTURE)


def started(model: Model) -> MemoryRuntime:
    runtime = MemoryRuntime({model.name: model}, VirtualClock(T0))
    assert runtime.start(model.name, "P-1", {"region": "ID-JK"}, at=T0).accepted
    return runtime


def test_a_timer_on_a_subprocess_is_one_clock_across_its_states(permit: Model) -> None:
    clock = permit.clock("handling_late")
    assert clock.runs_in == ("review", "inspect") and str(clock.duration.default) == (
        "5 working days"
    )
    runtime = started(permit)
    runtime.signal("P-1", Signal("review", OFFICER), at=T0 + timedelta(days=3))

    runtime.advance_to(instant("2026-03-10T00:00:01+07:00"))

    # Moving from review to inspect did not restart it: due 9 Mar, 5 working days after 2 Mar.
    assert runtime.case("P-1").state == "lapsed"


def test_a_message_boundary_on_a_subprocess_leaves_from_any_of_its_states(permit: Model) -> None:
    assert permit.transitions["withdraw"].sources == ("review", "inspect")


def test_an_event_based_gateway_races_the_answer_against_a_timer(permit: Model) -> None:
    runtime = started(permit)
    runtime.signal("P-1", Signal("review", OFFICER), at=T0)
    runtime.signal("P-1", Signal("inspect", OFFICER), at=T0)
    assert runtime.case("P-1").state == "waiting_for_the_applicant"

    runtime.advance_to(instant("2026-03-05T23:59:59+07:00"))
    assert runtime.case("P-1").state == "waiting_for_the_applicant"
    runtime.advance_to(instant("2026-03-06T00:00:01+07:00"))

    # P3D is 3 calendar days, ending at 23:59:59 local as a day deadline does (PT72H is exact).
    assert runtime.case("P-1").state == "lapsed"


def test_a_non_interrupting_timer_climbs_the_ladder_drawn_after_it(permit: Model) -> None:
    [ladder] = permit.ladders.values()
    assert [(r.to, str(r.deadline), r.final, r.fire) for r in ladder.levels] == [
        ("supervisor", "1 working day", False, None),
        ("ombudsman", "None", True, "referred"),
    ]
    runtime = started(permit)
    for name in ("review", "inspect"):
        runtime.signal("P-1", Signal(name, OFFICER), at=T0)
    runtime.signal("P-1", Signal("answer", Actor("applicant")), at=T0 + timedelta(hours=1))

    runtime.advance_to(instant("2026-03-06T00:00:01+07:00"))

    case = runtime.case("P-1")
    assert case.state == "referred" and case.escalated_to == "ombudsman"


def test_the_default_flow_is_guarded_by_the_negation_of_the_others(permit: Model) -> None:
    assert permit.transitions["grant"].guard == "data.score >= 70"
    assert permit.transitions["reject"].guard == "!(data.score >= 70)"
    runtime = started(permit)
    for name in ("review", "inspect"):
        runtime.signal("P-1", Signal(name, OFFICER), at=T0)
    runtime.signal("P-1", Signal("answer", Actor("applicant")), at=T0)

    refused = runtime.signal("P-1", Signal("reject", OFFICER, {"score": 80}), at=T0)
    granted = runtime.signal("P-1", Signal("grant", OFFICER, {"score": 80}), at=T0)

    assert refused.code == "guard_failed" and granted.accepted
    assert runtime.case("P-1").state == "granted"
