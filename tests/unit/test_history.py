"""The hash chain, audit replay and what-if over a recorded history."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import pytest

from engine.domain.calendar import Duration
from engine.domain.case import GENESIS, Case
from engine.domain.events import Actor, Escalated, Lapsed, Signal
from engine.domain.history import replay, verify_chain, what_if
from engine.domain.machine import Decision
from engine.domain.model import ClockDuration, Model
from engine.domain.records import HistoryRecord
from engine.runtime.memory import MemoryRuntime

CASE_ID = "LAPOR-HIST-1"
INTAKE: Mapping[str, Any] = {
    "category": "kesehatan",
    "region": "ID-JK",
    "channel": "app",
    "description": "Antrean BPJS di RSUD mengular",
}
ADMIN = Actor("admin", "nasional")
KEMENKES = Actor("agency", "kemenkes")
REPORTER = Actor("reporter")

Tamper = Callable[[HistoryRecord], HistoryRecord]


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def run(
    make_runtime: Callable[[datetime], MemoryRuntime],
    steps: Sequence[tuple[str, Signal | None]],
    start: str = "2026-03-02T10:00:00+07:00",
) -> MemoryRuntime:
    """Start ``CASE_ID`` at ``start``, then send each signal at its time (``None``: advance)."""
    runtime = make_runtime(at(start))
    started = runtime.start("sp4n-lapor", CASE_ID, INTAKE, at=at(start))
    assert started.accepted
    for when, signal in steps:
        if signal is None:
            runtime.advance_to(at(when))
        else:
            token = started.reporter_token
            decision = runtime.signal(CASE_ID, signal, at=at(when), reporter_token=token)
            assert decision.accepted, decision.rejection
    return runtime


# Verification (due Thu 5 Mar) lapses by timer; a late verify; the first follow-up and completion
# clocks (both due Fri 13 Mar) lapse together on the first of their two timers; then a late
# follow-up, the answer and the reporter's confirmation: every kind of record, 7 in all.
LATE_BUT_RESOLVED: list[tuple[str, Signal | None]] = [
    ("2026-03-06T10:00:00+07:00", Signal("verify", ADMIN, {"agency": "kemenkes"})),
    ("2026-03-16T09:00:00+07:00", Signal("follow_up", KEMENKES, {"response": "Sedang dicek"})),
    ("2026-03-16T10:00:00+07:00", Signal("complete", KEMENKES, {"response": "Loket ditambah"})),
    ("2026-03-17T09:00:00+07:00", Signal("confirm", REPORTER, {"rating": 4})),
]


@pytest.fixture(scope="module")
def recorded(make_runtime: Callable[[datetime], MemoryRuntime]) -> tuple[list[HistoryRecord], Case]:
    runtime = run(make_runtime, LATE_BUT_RESOLVED)
    history = runtime.history(CASE_ID)
    kinds = [r.event["kind"] for r in history]
    assert kinds.count("clock_lapsed") == 2 and kinds.count("signal") == 4
    return history, runtime.case(CASE_ID)


@pytest.fixture
def history(recorded: tuple[list[HistoryRecord], Case]) -> list[HistoryRecord]:
    return list(recorded[0])


def reseal(records: Sequence[HistoryRecord]) -> list[HistoryRecord]:
    """Recompute every hash as a forger would, so the chain itself is consistent again."""
    out: list[HistoryRecord] = []
    prev = GENESIS
    for r in records:
        sealed = HistoryRecord.seal(
            seq=r.seq,
            at=r.at,
            actor=r.actor,
            model_hash=r.model_hash,
            event=r.event,
            effects=r.effects,
            prev_hash=prev,
        )
        out.append(sealed)
        prev = sealed.hash
    return out


def with_verification(model: Model, duration: str) -> Model:
    """``model`` with another verification deadline (and, so, another hash)."""
    clocks = tuple(
        dataclasses.replace(c, duration=ClockDuration(Duration.parse(duration)))
        if c.name == "verification"
        else c
        for c in model.clocks
    )
    return dataclasses.replace(model, clocks=clocks)


# --- tampering --------------------------------------------------------------------------------


def _event_data(r: HistoryRecord) -> HistoryRecord:
    data = {**r.event.get("data", {}), "agency": "kemensos"}
    return dataclasses.replace(r, event={**r.event, "data": data})


def _effect_value(r: HistoryRecord) -> HistoryRecord:
    first, *rest = r.effects
    field = next(k for k in first if k != "kind")
    return dataclasses.replace(r, effects=({**first, field: "tampered"}, *rest))


def _effect_dropped(r: HistoryRecord) -> HistoryRecord:
    return dataclasses.replace(r, effects=r.effects[:-1])


def _effect_added(r: HistoryRecord) -> HistoryRecord:
    extra = {"kind": "notify", "to": "reporter", "template": "report_verified"}
    return dataclasses.replace(r, effects=(*r.effects, extra))


def _time(r: HistoryRecord) -> HistoryRecord:
    moment = at(r.at)
    return dataclasses.replace(r, at=moment.replace(second=(moment.second + 1) % 60).isoformat())


def _actor(r: HistoryRecord) -> HistoryRecord:
    return dataclasses.replace(r, actor="admin:palsu")


def _model_hash(r: HistoryRecord) -> HistoryRecord:
    return dataclasses.replace(r, model_hash="f" * 64)


TAMPERS: dict[str, Tamper] = {
    "event-data": _event_data,
    "effect-value": _effect_value,
    "effect-dropped": _effect_dropped,
    "effect-added": _effect_added,
    "at": _time,
    "actor": _actor,
    "model-hash": _model_hash,
}
RECORDS = range(7)  # the history of LATE_BUT_RESOLVED has 7 records (checked below)


def test_untouched_history_has_an_unbroken_chain(history: list[HistoryRecord]) -> None:
    assert len(history) == len(RECORDS)
    assert verify_chain(history) == []
    assert history[0].prev_hash == GENESIS
    assert [r.seq for r in history] == list(range(1, len(history) + 1))


@pytest.mark.parametrize("index", RECORDS)
@pytest.mark.parametrize("tamper", TAMPERS.values(), ids=TAMPERS.keys())
def test_tampering_with_any_field_of_any_record_is_detected(
    model: Model, history: list[HistoryRecord], index: int, tamper: Tamper
) -> None:
    history[index] = tamper(history[index])

    assert any(f"record {index + 1}:" in p for p in verify_chain(history))
    assert not replay(model, history).ok


@pytest.mark.parametrize("index", RECORDS)
@pytest.mark.parametrize(
    "tamper",
    [_effect_value, _effect_dropped, _effect_added, _actor],
    ids=["effect-value", "effect-dropped", "effect-added", "actor"],
)
def test_forged_decision_is_detected_even_with_a_resealed_chain(
    model: Model, history: list[HistoryRecord], index: int, tamper: Tamper
) -> None:
    history[index] = tamper(history[index])
    forged = reseal(history)
    assert verify_chain(forged) == []  # the chain alone cannot tell...

    report = replay(model, forged)  # ...re-deriving the decisions can

    assert not report.ok
    assert any(f"record {index + 1}:" in p for p in report.problems)


@pytest.mark.parametrize("index", RECORDS[:-1])
def test_dropping_a_record_is_detected(
    model: Model, history: list[HistoryRecord], index: int
) -> None:
    del history[index]

    assert verify_chain(history) != []
    assert not replay(model, history).ok


def test_dropping_the_last_record_shows_against_the_case_head(
    model: Model, recorded: tuple[list[HistoryRecord], Case]
) -> None:
    history, case = recorded
    truncated = history[:-1]

    # A prefix of a valid chain is a valid chain: truncation only shows against the stored head.
    report = replay(model, truncated)
    assert report.ok and report.case is not None
    assert (report.case.seq, report.case.head) != (case.seq, case.head)


@pytest.mark.parametrize("index", RECORDS[:-1])
def test_reordering_two_records_is_detected(
    model: Model, history: list[HistoryRecord], index: int
) -> None:
    history[index], history[index + 1] = history[index + 1], history[index]

    assert verify_chain(history) != []
    assert not replay(model, history).ok


# --- replay -----------------------------------------------------------------------------------


def test_replay_of_an_untouched_history_is_ok_and_rederives_the_final_case(
    model: Model, recorded: tuple[list[HistoryRecord], Case]
) -> None:
    history, case = recorded

    report = replay(model, history)

    assert report.ok, report.problems
    assert report.records == len(history)
    assert report.case == case
    assert report.case is not None and report.case.head == history[-1].hash
    assert report.case.state == "closed"


def test_replay_of_a_history_read_back_from_json_is_ok(
    model: Model, history: list[HistoryRecord]
) -> None:
    text = json.dumps([r.to_json() for r in history], ensure_ascii=False)

    restored = [HistoryRecord.from_json(r) for r in json.loads(text)]

    assert restored == history
    assert replay(model, restored).ok


def test_replay_with_a_different_model_is_reported_as_a_model_mismatch(
    model: Model, history: list[HistoryRecord]
) -> None:
    other = with_verification(model, "5 working days")
    assert other.hash != model.hash

    report = replay(other, history)

    assert not report.ok
    assert any("decided under model" in p for p in report.problems)


def test_a_model_changed_with_dataclasses_replace_gets_a_new_hash(model: Model) -> None:
    changed = dataclasses.replace(model, clocks=model.clocks[1:])

    assert changed.hash != model.hash


def test_empty_history_replays_to_no_case(model: Model) -> None:
    report = replay(model, [])

    assert report.ok and report.records == 0 and report.case is None


# --- what-if ----------------------------------------------------------------------------------


def _escalations(decisions: Sequence[Decision]) -> list[tuple[str, Lapsed, Escalated]]:
    """``(decided at, lapse, escalation)`` for every escalation the accepted decisions made."""
    out: list[tuple[str, Lapsed, Escalated]] = []
    for decision in decisions:
        if decision.record is None:
            continue
        lapse: Lapsed | None = None
        for effect in decision.effects:
            if isinstance(effect, Lapsed):
                lapse = effect
            elif isinstance(effect, Escalated):
                assert lapse is not None and lapse.clock == effect.clock
                out.append((decision.record.at, lapse, effect))
    return out


def test_what_if_under_the_recorded_model_rederives_the_recorded_history(
    model: Model, history: list[HistoryRecord]
) -> None:
    decisions = what_if(model, history)

    assert [d.record for d in decisions] == history


def test_what_if_with_a_shorter_verification_deadline_escalates_earlier(
    model: Model, history: list[HistoryRecord]
) -> None:
    recorded = [
        (r.at, e["due_at"])
        for r in history
        for e in r.effects
        if e["kind"] == "escalated" and e["clock"] == "verification"
    ]
    assert recorded == [("2026-03-05T17:00:00+00:00", "2026-03-09T23:59:59+07:00")]

    decisions = what_if(with_verification(model, "2 working days"), history)

    assert all(d.accepted for d in decisions)
    verification = [e for e in _escalations(decisions) if e[1].clock == "verification"]
    # Due Wed 4 Mar instead of Thu 5 Mar: escalated a day earlier, with an earlier rung deadline.
    assert verification == [
        (
            "2026-03-04T17:00:00+00:00",
            Lapsed("verification", at("2026-03-04T23:59:59+07:00"), 0),
            Escalated("verification", 1, "admin_supervisor", at("2026-03-06T23:59:59+07:00")),
        )
    ]


def test_what_if_shows_the_escalations_of_a_case_nobody_acts_on(
    model: Model, make_runtime: Callable[[datetime], MemoryRuntime]
) -> None:
    history = run(make_runtime, [("2026-03-20T00:00:00+07:00", None)]).history(CASE_ID)
    assert [r.event["kind"] for r in history] == ["started", "clock_lapsed", "clock_lapsed"]

    decisions = what_if(with_verification(model, "1 working day"), history)

    assert _escalations(decisions) != []
