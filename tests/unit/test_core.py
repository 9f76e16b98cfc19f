"""What ``decide(model, case, event, now)`` does, event by event, under the sp4n-lapor model.

Dates are real 2026 dates, so deadlines step over the real Indonesian holidays: 2 Mar 2026 is a
Monday with no holiday until Nyepi (18-24 Mar is Nyepi, Idul Fitri and their cuti bersama).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from engine.domain.case import Case
from engine.domain.errors import LaporError
from engine.domain.events import (
    SEMANTICS,
    Actor,
    ClockLapsed,
    ClockPaused,
    ClockResumed,
    ClockStarted,
    ClockStopped,
    Closed,
    Escalated,
    Event,
    Lapsed,
    Notify,
    Signal,
    Started,
    event_from_json,
)
from engine.domain.machine import Decision, decide
from engine.domain.model import Model

INTAKE: Mapping[str, Any] = {
    "category": "kesehatan",
    "region": "ID-JK",
    "channel": "web",
    "description": "Obat tidak tersedia di puskesmas",
}
REPORTER: Mapping[str, str] = {
    "name": "Siti Rahmawati",
    "phone": "+62-812-5550-1234",
    "email": "siti.rahmawati@example.org",
    "nik": "3174056708900002",
}
ADMIN = Actor("admin", "nasional")
KEMENKES = Actor("agency", "kemenkes")
REPORTER_ACTOR = Actor("reporter")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def start(
    model: Model,
    when: str = "2026-03-02T10:00:00+07:00",
    data: Mapping[str, Any] = INTAKE,
    reporter: Mapping[str, Any] | None = None,
) -> Case:
    decision = decide(
        model, None, Started("LAPOR-CORE-1", dict(data), reporter=reporter or {}), at(when)
    )
    assert decision.case is not None and decision.accepted, decision.rejection
    return decision.case


def accept(model: Model, case: Case, event: Event, when: str) -> Decision:
    """Decide ``event`` and insist it was accepted (for the steps that set a test up)."""
    decision = decide(model, case, event, at(when))
    assert decision.accepted, decision.rejection
    return decision


def signal(name: str, actor: Actor, **data: Any) -> Signal:
    return Signal(name, actor, data)


def kinds(decision: Decision) -> list[str]:
    assert decision.record is not None
    return [effect["kind"] for effect in decision.record.effects]


def verified(model: Model) -> Case:
    """A case disposed to Kemenkes on Tue 3 Mar 2026 (both follow-up clocks due Tue 10 Mar)."""
    case = start(model)
    decision = accept(
        model, case, signal("verify", ADMIN, agency="kemenkes"), "2026-03-03T09:00:00+07:00"
    )
    assert decision.case is not None
    return decision.case


def assert_nothing_decided(decision: Decision, case: Case) -> None:
    assert decision.case is case
    assert decision.record is None
    assert decision.rejection is None
    assert decision.effects == ()


# --- start ------------------------------------------------------------------------------------


def test_start_enters_submitted_and_starts_the_verification_clock(model: Model) -> None:
    case = start(model)

    assert (case.state, case.status) == ("submitted", "Belum Terverifikasi")
    assert case.seq == 1
    verification = case.clock("verification")
    assert verification is not None and verification.running
    assert verification.due_at == at("2026-03-05T23:59:59+07:00")  # 3 hari kerja: Tue, Wed, Thu


def test_second_start_is_rejected(model: Model) -> None:
    case = start(model)

    decision = decide(model, case, Started(case.id, dict(INTAKE)), at("2026-03-02T11:00:00+07:00"))

    assert decision.rejection is not None and decision.rejection.code == "already_started"
    assert decision.case is case
    assert decision.record is None


def test_signal_before_start_is_rejected(model: Model) -> None:
    decision = decide(model, None, signal("verify", ADMIN), at("2026-03-02T10:00:00+07:00"))

    assert decision.rejection is not None and decision.rejection.code == "not_started"
    assert decision.case is None
    assert decision.record is None
    assert decision.effects == ()


def test_start_without_a_required_field_is_rejected(model: Model) -> None:
    data = {k: v for k, v in INTAKE.items() if k != "description"}

    decision = decide(model, None, Started("LAPOR-CORE-1", data), at("2026-03-02T10:00:00+07:00"))

    assert decision.rejection is not None and decision.rejection.code == "missing_field"
    assert decision.record is None


def test_start_with_data_that_is_not_json_is_rejected_naming_the_field(model: Model) -> None:
    data = {**INTAKE, "title": float("inf")}

    decision = decide(model, None, Started("LAPOR-CORE-1", data), at("2026-03-02T10:00:00+07:00"))

    assert decision.rejection is not None and decision.rejection.code == "invalid_data"
    assert "data.title is inf" in decision.rejection.reason


# --- rejection --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "code"),
    [
        (signal("verify", REPORTER_ACTOR, agency="kemenkes"), "wrong_role"),
        (signal("confirm", REPORTER_ACTOR), "wrong_state"),
        (signal("hold", ADMIN), "missing_field"),
        (signal("verify", ADMIN, agency="kemenkes", nik="3174056708900002"), "unexpected_field"),
        (signal("verify", ADMIN, agency="no-such-agency"), "invalid_data"),
        (signal("verify", ADMIN, tier="urgent"), "invalid_data"),
        (signal("hold", ADMIN, missing_info=float("nan")), "invalid_data"),  # not JSON
        (signal("escalate_now", ADMIN), "unknown_signal"),
        (signal("auto_close", Actor("system")), "wrong_role"),  # the engine acts by lapses
    ],
)
def test_rejected_signal_leaves_case_unchanged(model: Model, event: Signal, code: str) -> None:
    case = start(model)
    snapshot = case.to_json(include_reporter=True)

    decision = decide(model, case, event, at("2026-03-02T11:00:00+07:00"))

    assert decision.rejection is not None and decision.rejection.code == code
    assert decision.case is case
    assert decision.case.to_json(include_reporter=True) == snapshot
    assert decision.record is None
    assert decision.effects == ()
    assert not decision.accepted


def test_signal_rejected_after_a_missed_deadline_records_no_lapse(model: Model) -> None:
    case = start(model)  # verification due Thu 5 Mar, no timer delivered

    decision = decide(
        model, case, signal("confirm", REPORTER_ACTOR), at("2026-03-06T10:00:00+07:00")
    )

    assert decision.rejection is not None and decision.rejection.code == "wrong_state"
    assert decision.case is case
    assert decision.record is None and decision.effects == ()


def test_agency_cannot_act_on_a_case_disposed_to_another_agency(model: Model) -> None:
    case = verified(model)

    decision = decide(
        model,
        case,
        signal("follow_up", Actor("agency", "kemensos"), response="sudah"),
        at("2026-03-04T09:00:00+07:00"),
    )

    assert decision.rejection is not None and decision.rejection.code == "not_assigned"
    assert decision.case is case


@pytest.mark.parametrize("name", ["refer_to_ombudsman", "auto_close", "verify"])
def test_no_caller_may_act_as_the_engine_itself(model: Model, name: str) -> None:
    """``system`` transitions happen when deadlines lapse; a signal claiming the role (say, to
    refer any case to Ombudsman RI at once) is refused, whatever it asks for."""
    case = verified(model)

    decision = decide(model, case, signal(name, Actor("system")), at("2026-03-04T09:00:00+07:00"))

    assert decision.rejection is not None and decision.rejection.code == "wrong_role"
    assert "engine's own" in decision.rejection.reason and decision.case is case


def test_agency_cannot_reroute_a_report_not_yet_disposed_to_it(model: Model) -> None:
    case = start(model)  # submitted: not verified, not disposed to any agency

    decision = decide(
        model,
        case,
        signal("not_authority", Actor("agency", "polri"), agency="kemensos", reason="Bukan kami"),
        at("2026-03-02T11:00:00+07:00"),
    )

    assert decision.rejection is not None and decision.rejection.code == "not_assigned"
    assert decision.case is case


def test_signal_dated_before_the_case_opened_is_not_recorded(model: Model) -> None:
    case = start(model, "2026-03-02T10:00:00+07:00")

    try:
        decision = decide(model, case, signal("verify", ADMIN), at("2026-03-01T10:00:00+07:00"))
    except (ValueError, LaporError):
        return  # refused as a runtime error: fine
    assert not decision.accepted


# --- timers -----------------------------------------------------------------------------------


def test_lapse_escalates_one_rung(model: Model) -> None:
    case = start(model)
    due = at("2026-03-05T23:59:59+07:00")

    decision = accept(model, case, ClockLapsed("verification", due), "2026-03-06T00:00:00+07:00")

    assert decision.effects[:2] == (
        Lapsed("verification", due, 0),
        Escalated("verification", 1, "admin_supervisor", at("2026-03-09T23:59:59+07:00")),
    )
    assert decision.case is not None
    assert (decision.case.escalation_level, decision.case.escalated_to) == (1, "admin_supervisor")


def test_duplicate_timer_does_not_escalate_twice(model: Model) -> None:
    case = start(model)
    timer = ClockLapsed("verification", at("2026-03-05T23:59:59+07:00"))
    first = accept(model, case, timer, "2026-03-06T00:00:00+07:00")
    assert first.case is not None

    again = decide(model, first.case, timer, at("2026-03-06T00:00:05+07:00"))

    assert_nothing_decided(again, first.case)
    assert first.case.escalation_level == 1


@pytest.mark.parametrize(
    "when",
    ["2026-03-04T12:00:00+07:00", "2026-03-05T23:59:59+07:00"],
    ids=["before-the-deadline", "at-the-deadline"],
)
def test_early_timer_decides_nothing(model: Model, when: str) -> None:
    case = start(model)

    decision = decide(
        model, case, ClockLapsed("verification", at("2026-03-05T23:59:59+07:00")), at(when)
    )

    assert_nothing_decided(decision, case)


def test_timer_for_a_deadline_the_clock_does_not_have_decides_nothing(model: Model) -> None:
    case = start(model)

    decision = decide(
        model,
        case,
        ClockLapsed("verification", at("2026-03-04T23:59:59+07:00")),
        at("2026-03-06T00:00:00+07:00"),
    )

    assert_nothing_decided(decision, case)


def test_stale_timer_of_restarted_clock_is_ignored(model: Model) -> None:
    case = verified(model)
    old_due = at("2026-03-10T23:59:59+07:00")
    assert case.clock("first_follow_up") is not None
    assert case.clock("first_follow_up").due_at == old_due  # type: ignore[union-attr]
    rerouted = accept(
        model,
        case,
        signal("not_authority", KEMENKES, agency="kemensos", reason="Bukan wewenang kami"),
        "2026-03-05T09:00:00+07:00",
    ).case
    assert rerouted is not None
    restarted = rerouted.clock("first_follow_up")
    assert restarted is not None and restarted.due_at == at("2026-03-12T23:59:59+07:00")

    decision = decide(
        model, rerouted, ClockLapsed("first_follow_up", old_due), at("2026-03-11T00:00:00+07:00")
    )

    assert_nothing_decided(decision, rerouted)


def test_timer_of_a_paused_clock_decides_nothing(model: Model) -> None:
    case = start(model)
    held = accept(
        model, case, signal("hold", ADMIN, missing_info="Nomor KTP"), "2026-03-03T10:00:00+07:00"
    ).case
    assert held is not None

    decision = decide(
        model,
        held,
        ClockLapsed("verification", at("2026-03-05T23:59:59+07:00")),
        at("2026-03-06T00:00:00+07:00"),
    )

    assert_nothing_decided(decision, held)


def test_signal_after_missed_deadline_settles_the_lapse_first(model: Model) -> None:
    case = start(model)  # verification due Thu 5 Mar; its timer never arrives

    decision = accept(
        model, case, signal("verify", ADMIN, agency="kemenkes"), "2026-03-06T10:00:00+07:00"
    )

    effects = kinds(decision)
    assert effects[:3] == ["lapsed", "escalated", "notify"]
    assert effects.index("escalated") < effects.index("routed") < effects.index("entered")
    assert effects.count("lapsed") == 1 and effects.count("escalated") == 1
    assert decision.effects[0] == Lapsed("verification", at("2026-03-05T23:59:59+07:00"), 0)
    assert decision.case is not None
    assert decision.case.state == "disposed"
    assert decision.case.escalation_level == 1
    assert decision.case.clock("verification") is None
    assert decision.record is not None and decision.record.event["kind"] == "signal"


def test_escalation_deadline_counts_from_the_lapsed_deadline_not_from_now(model: Model) -> None:
    case = start(model)
    due = at("2026-03-05T23:59:59+07:00")

    # The timer arrives a working day late, on Fri 6 Mar: 2 hari kerja from the lapsed deadline
    # (Thu 5 Mar) end Mon 9 Mar; counted from "now" they would end Tue 10 Mar.
    decision = accept(model, case, ClockLapsed("verification", due), "2026-03-06T15:00:00+07:00")

    escalated = [e for e in decision.effects if isinstance(e, Escalated)]
    assert escalated == [
        Escalated("verification", 1, "admin_supervisor", at("2026-03-09T23:59:59+07:00"))
    ]
    assert decision.case is not None
    clock = decision.case.clock("verification")
    assert clock is not None and (clock.due_at, clock.level) == (at("2026-03-09T23:59:59+07:00"), 1)


def test_very_late_timer_climbs_every_rung_it_missed_in_one_decision(model: Model) -> None:
    case = start(model)

    decision = accept(
        model,
        case,
        ClockLapsed("verification", at("2026-03-05T23:59:59+07:00")),
        "2026-03-10T09:00:00+07:00",
    )

    lapses = [e for e in decision.effects if isinstance(e, Lapsed)]
    assert [(e.due_at, e.level) for e in lapses] == [
        (at("2026-03-05T23:59:59+07:00"), 0),
        (at("2026-03-09T23:59:59+07:00"), 1),
    ]
    assert decision.case is not None
    assert decision.case.state == "referred_to_ombudsman"
    assert decision.case.escalated_to == "ombudsman_ri"


# --- clocks -----------------------------------------------------------------------------------


def test_pause_keeps_remaining_working_days_and_resume_recounts(model: Model) -> None:
    # Received Fri 13 Mar: due Wed 25 Mar (16, 17, then 25 Mar after the Nyepi/Lebaran days off).
    case = start(model, "2026-03-13T09:00:00+07:00", {**INTAKE, "region": "ID-JI"})
    assert case.clock("verification").due_at == at("2026-03-25T23:59:59+07:00")  # type: ignore[union-attr]

    held = accept(
        model, case, signal("hold", ADMIN, missing_info="Nomor KTP"), "2026-03-16T10:00:00+07:00"
    )
    assert held.case is not None
    paused = held.case.clock("verification")
    assert paused is not None
    assert (paused.running, paused.due_at, str(paused.remaining)) == (False, None, "2 working days")
    assert [e for e in held.effects if isinstance(e, ClockPaused)] == [
        ClockPaused("verification", paused.remaining)  # type: ignore[arg-type]
    ]
    assert held.case.next_due is None

    # Answered on Nyepi (Thu 19 Mar): the 2 remaining days are the next working days, 25 and 26 Mar.
    resumed = accept(
        model,
        held.case,
        signal("supply_info", REPORTER_ACTOR, info="NIK terlampir"),
        "2026-03-19T10:00:00+07:00",
    )

    assert resumed.case is not None
    clock = resumed.case.clock("verification")
    assert clock is not None and clock.running and clock.remaining is None
    assert clock.due_at == at("2026-03-26T23:59:59+07:00")
    assert ClockResumed("verification", at("2026-03-26T23:59:59+07:00")) in resumed.effects


def test_pause_keeps_the_escalation_level(model: Model) -> None:
    case = start(model)
    escalated = accept(
        model,
        case,
        ClockLapsed("verification", at("2026-03-05T23:59:59+07:00")),
        "2026-03-06T00:00:00+07:00",
    ).case
    assert escalated is not None

    held = accept(
        model, escalated, signal("hold", ADMIN, missing_info="Lokasi"), "2026-03-06T10:00:00+07:00"
    ).case
    assert held is not None
    paused = held.clock("verification")
    assert paused is not None and str(paused.remaining) == "1 working day"  # Mon 9 Mar
    resumed = accept(
        model,
        held,
        signal("supply_info", REPORTER_ACTOR, info="Jl. Merdeka 1"),
        "2026-03-09T10:00:00+07:00",
    ).case

    assert resumed is not None
    clock = resumed.clock("verification")
    assert clock is not None and clock.level == 1
    assert clock.due_at == at("2026-03-10T23:59:59+07:00")  # the 1 day left: Tue 10 Mar


@pytest.mark.parametrize(
    ("path", "outcome"),
    [
        ([("archive", ADMIN, {"reason": "Bukan pelayanan publik"})], "archived"),
        (
            [
                ("hold", ADMIN, {"missing_info": "Nomor KTP"}),
                ("archive", ADMIN, {"reason": "Tidak dilengkapi"}),
            ],
            "archived",
        ),
        (
            [
                ("verify", ADMIN, {"agency": "kemenkes"}),
                ("complete", KEMENKES, {"response": "Stok obat sudah tersedia"}),
                ("confirm", REPORTER_ACTOR, {"rating": 5}),
            ],
            "resolved",
        ),
    ],
    ids=["archived-while-submitted", "archived-while-held", "confirmed"],
)
def test_final_state_stops_every_clock(
    model: Model, path: Sequence[tuple[str, Actor, dict[str, Any]]], outcome: str
) -> None:
    case = start(model)
    when = at("2026-03-02T11:00:00+07:00")
    decision: Decision | None = None
    for name, actor, data in path:
        open_clocks = [c.name for c in case.clocks]
        decision = decide(model, case, Signal(name, actor, data), when)
        assert decision.case is not None and decision.accepted, decision.rejection
        case = decision.case
        when += timedelta(hours=1)
    assert decision is not None

    stopped = [e.clock for e in decision.effects if isinstance(e, ClockStopped)]
    assert sorted(stopped) == sorted(open_clocks)
    assert not any(isinstance(e, ClockStarted | ClockResumed) for e in decision.effects)
    assert decision.effects[-1] == Closed(outcome)
    assert case.clocks == ()
    assert case.next_due is None
    assert case.closed and case.outcome == outcome and case.closed_at == when - timedelta(hours=1)


def test_closed_case_refuses_signals_and_ignores_timers(model: Model) -> None:
    case = start(model)
    due = case.clock("verification").due_at  # type: ignore[union-attr]
    closed = accept(
        model, case, signal("archive", ADMIN, reason="Spam"), "2026-03-02T11:00:00+07:00"
    ).case
    assert closed is not None and due is not None

    refused = decide(model, closed, signal("verify", ADMIN), at("2026-03-03T10:00:00+07:00"))
    timer = decide(model, closed, ClockLapsed("verification", due), at("2026-03-06T00:00:00+07:00"))

    assert refused.rejection is not None and refused.rejection.code == "closed"
    assert refused.case is closed and refused.record is None
    assert_nothing_decided(timer, closed)


# --- model pinning ----------------------------------------------------------------------------


def test_model_hash_mismatch_is_refused(model: Model) -> None:
    case = start(model)
    other = dataclasses.replace(model, version="2026.2-draft")
    assert other.hash != model.hash

    with pytest.raises(ValueError, match="pinned to model"):
        decide(other, case, signal("verify", ADMIN), at("2026-03-02T11:00:00+07:00"))


# --- reporter identity ------------------------------------------------------------------------


def _full_history(model: Model, reporter: Mapping[str, Any]) -> tuple[Case, list[Decision]]:
    """Start with ``reporter``, then every kind of decision: hold, resume, lapse, route, close."""
    started = decide(
        model,
        None,
        Started("LAPOR-CORE-1", {**INTAKE, "anonymous": True}, reporter=reporter),
        at("2026-03-02T10:00:00+07:00"),
    )
    assert started.case is not None
    case, decisions = started.case, [started]
    steps: list[tuple[Event, str]] = [
        (signal("hold", ADMIN, missing_info="Lokasi puskesmas"), "2026-03-03T10:00:00+07:00"),
        (
            signal("supply_info", REPORTER_ACTOR, info="Puskesmas Tebet"),
            "2026-03-04T10:00:00+07:00",
        ),
        (signal("verify", ADMIN), "2026-03-09T10:00:00+07:00"),  # late: lapse + escalation
        (signal("complete", KEMENKES, response="Obat sudah dikirim"), "2026-03-10T10:00:00+07:00"),
        (signal("confirm", REPORTER_ACTOR, rating=4), "2026-03-11T10:00:00+07:00"),
    ]
    for event, when in steps:
        decision = accept(model, case, event, when)
        assert decision.case is not None
        case = decision.case
        decisions.append(decision)
    return case, decisions


def test_reporter_identity_never_enters_history_or_effects(model: Model) -> None:
    case, decisions = _full_history(model, REPORTER)
    assert case.reporter == REPORTER  # carried for the runtime to store apart...
    assert "escalated" in [kind for d in decisions for kind in kinds(d)]

    texts = [json.dumps(d.record.to_json(), ensure_ascii=False) for d in decisions if d.record]
    texts += [repr(effect) for d in decisions for effect in d.effects]
    texts += [json.dumps(case.to_json(), ensure_ascii=False), repr(case)]
    assert len(texts) > len(decisions) * 2
    for value in REPORTER.values():  # ...but is never written anywhere else
        assert not any(value in text for text in texts), value


def test_anonymous_flag_is_kept_in_case_data(model: Model) -> None:
    case = start(model, data={**INTAKE, "anonymous": True, "confidential": True})

    assert case.anonymous and case.confidential
    assert case.data["anonymous"] is True
    verified_case = accept(model, case, signal("verify", ADMIN), "2026-03-02T11:00:00+07:00").case
    assert verified_case is not None and verified_case.anonymous
    assert verified_case.to_json()["data"]["anonymous"] is True


def test_admin_can_mark_a_report_anonymous_on_verification(model: Model) -> None:
    case = start(model)
    assert not case.anonymous

    decision = accept(
        model, case, signal("verify", ADMIN, anonymous=True), "2026-03-02T11:00:00+07:00"
    )

    assert decision.case is not None and decision.case.anonymous


def test_reporter_identity_is_not_in_the_started_event_repr() -> None:
    event = Started("LAPOR-CORE-1", dict(INTAKE), reporter=REPORTER)

    assert not any(value in repr(event) for value in REPORTER.values())


# --- time zones -------------------------------------------------------------------------------


def _hashes_for(model: Model, offset: str) -> list[str]:
    """The same instants as ``_WIB_STEPS``, written with another UTC offset."""

    def moved(text: str) -> datetime:
        return at(text).astimezone(at(f"2026-01-01T00:00:00{offset}").tzinfo)

    started = decide(
        model, None, Started("LAPOR-TZ-1", dict(INTAKE)), moved("2026-03-02T10:00:00+07:00")
    )
    assert started.case is not None and started.record is not None
    case, hashes = started.case, [started.record.hash]
    for event, when in _WIB_STEPS:
        decision = decide(model, case, event, moved(when))
        assert decision.case is not None and decision.record is not None, decision.rejection
        case, hashes = decision.case, [*hashes, decision.record.hash]
    return hashes


_WIB_STEPS: list[tuple[Event, str]] = [
    (Signal("hold", ADMIN, {"missing_info": "Lokasi"}), "2026-03-03T10:00:00+07:00"),
    (Signal("supply_info", REPORTER_ACTOR, {"info": "Tebet"}), "2026-03-04T10:00:00+07:00"),
    (ClockLapsed("verification", at("2026-03-06T23:59:59+07:00")), "2026-03-07T00:00:00+07:00"),
    (Signal("verify", ADMIN, {"agency": "kemenkes"}), "2026-03-09T10:00:00+07:00"),
    (Signal("complete", KEMENKES, {"response": "Selesai"}), "2026-03-10T10:00:00+07:00"),
]


def test_times_are_recorded_in_utc_so_the_offset_given_does_not_change_hashes(model: Model) -> None:
    in_wib = _hashes_for(model, "+07:00")
    in_wit = _hashes_for(model, "+09:00")
    in_utc = _hashes_for(model, "+00:00")

    assert in_wib == in_wit == in_utc
    assert len(in_wib) == 1 + len(_WIB_STEPS)


def test_recorded_time_is_utc_text(model: Model) -> None:
    decision = decide(
        model, None, Started("LAPOR-TZ-1", dict(INTAKE)), at("2026-03-02T10:00:00+09:00")
    )

    assert decision.record is not None
    assert decision.record.at == "2026-03-02T01:00:00+00:00"
    assert datetime.fromisoformat(decision.record.at).tzinfo == UTC


def test_timer_deadline_given_in_another_offset_records_the_same_bytes(model: Model) -> None:
    case = start(model)
    due = at("2026-03-05T23:59:59+07:00")
    now = "2026-03-06T00:00:00+07:00"

    in_wib = accept(model, case, ClockLapsed("verification", due), now)
    in_utc = accept(model, case, ClockLapsed("verification", due.astimezone(UTC)), now)

    assert in_wib.effects == in_utc.effects  # the same decision...
    assert in_wib.record is not None and in_utc.record is not None
    assert in_wib.record.hash == in_utc.record.hash  # ...should be the same record


def test_simultaneous_deadlines_record_the_same_history_whichever_timer_arrives_first(
    model: Model,
) -> None:
    case = start(model, "2026-03-02T10:00:00+07:00")
    verified = accept(
        model, case, signal("verify", ADMIN, agency="kemenkes"), "2026-03-02T11:00:00+07:00"
    )
    both = [c for c in verified.case.clocks if c.running]
    assert {c.name for c in both} == {"first_follow_up", "completion"}
    assert len({c.due_at for c in both}) == 1  # the same deadline
    wake = both[0].due_at + timedelta(seconds=1)

    records = [
        decide(model, verified.case, ClockLapsed(clock.name, clock.due_at), wake).record
        for clock in both
    ]

    assert records[0] is not None and records[1] is not None
    assert records[0].hash == records[1].hash
    assert records[0].event["clock"] == "first_follow_up"  # model order breaks the tie


def _lockstep_lapse(model: Model, semantics: int) -> Decision:
    """First follow-up and completion, both due on the same day, lapse together."""
    started = decide(
        model,
        None,
        Started("LAPOR-CORE-1", dict(INTAKE), semantics=semantics),
        at("2026-03-02T10:00:00+07:00"),
    )
    assert started.case is not None
    verified = accept(
        model, started.case, signal("verify", ADMIN, agency="kemenkes"), "2026-03-02T11:00:00+07:00"
    )
    assert verified.case is not None
    due = verified.case.clock("completion").due_at  # type: ignore[union-attr]
    assert due is not None and verified.case.clock("first_follow_up").due_at == due  # type: ignore[union-attr]
    wake = (due + timedelta(seconds=1)).isoformat()
    return accept(model, verified.case, ClockLapsed("completion", due), wake)


def test_clocks_lapsing_to_one_rung_together_send_one_notice_naming_both(model: Model) -> None:
    decision = _lockstep_lapse(model, semantics=2)

    lapsed = [e.clock for e in decision.effects if isinstance(e, Lapsed)]
    escalated = [e for e in decision.effects if isinstance(e, Escalated)]
    notices = [e for e in decision.effects if isinstance(e, Notify)]
    assert lapsed == ["first_follow_up", "completion"]  # the history still records each lapse
    assert [(e.clock, e.to, e.joined) for e in escalated] == [
        ("first_follow_up", "agency_liaison", ("completion",))
    ]
    assert [n.to for n in notices] == ["agency_liaison"]
    assert decision.case is not None
    assert {c.name: c.level for c in decision.case.clocks} == {
        "first_follow_up": 1,
        "completion": 1,
    }


def test_cases_started_under_semantics_one_keep_a_notice_per_clock(model: Model) -> None:
    decision = _lockstep_lapse(model, semantics=1)

    escalated = [e for e in decision.effects if isinstance(e, Escalated)]
    assert [(e.clock, e.joined) for e in escalated] == [("first_follow_up", ()), ("completion", ())]
    assert [n.to for n in decision.effects if isinstance(n, Notify)] == ["agency_liaison"] * 2
    assert decision.record is not None
    assert "semantics" not in decision.record.event  # a version-1 record stays as it was


def test_a_start_record_names_its_semantics_and_replays_under_it(model: Model) -> None:
    current = decide(
        model, None, Started("LAPOR-CORE-1", dict(INTAKE)), at("2026-03-02T10:00:00+07:00")
    )
    assert current.record is not None and current.record.event["semantics"] == SEMANTICS
    assert event_from_json(current.record.event) == Started("LAPOR-CORE-1", dict(INTAKE))
    with pytest.raises(LaporError, match="semantics 99"):
        event_from_json({**current.record.event, "semantics": 99})
