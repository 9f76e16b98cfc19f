"""``Case`` and ``ClockState``: the hand-written fast paths agree with the dataclass fields."""

from __future__ import annotations

import dataclasses

import pytest

from engine.domain.calendar import Duration
from engine.domain.case import Case, ClockState
from engine.domain.events import instant

T0 = instant("2026-03-02T10:00:00+07:00")
CLOCK = ClockState(
    "verification", True, instant("2026-03-05T23:59:59+07:00"), None, "wd", 0, "ID-JK"
)
CASE = Case(
    id="C1",
    workflow="sp4n-lapor",
    model_hash="m" * 64,
    state="submitted",
    status="Belum Terverifikasi",
    data={"category": "kesehatan"},
    region="ID-JK",
    opened_at=T0,
    last_at=T0,
    clocks=(CLOCK,),
    reporter={"name": "Siti"},
)


def test_evolve_copies_every_field_and_changes_only_the_given_ones() -> None:
    sentinel = {f.name: object() for f in dataclasses.fields(Case)}
    for name, value in sentinel.items():
        evolved = CASE.evolve(**{name: value})
        for field in dataclasses.fields(Case):
            expected = value if field.name == name else getattr(CASE, field.name)
            assert getattr(evolved, field.name) is expected, (name, field.name)


def test_evolve_refuses_a_field_case_does_not_have() -> None:
    with pytest.raises(TypeError, match="no field"):
        CASE.evolve(stat="closed")


def test_evolve_with_nothing_is_an_equal_copy() -> None:
    copy = CASE.evolve()
    assert copy == CASE and copy is not CASE and copy.reporter == CASE.reporter


def test_a_clocks_cached_json_is_a_copy_and_survives_replace() -> None:
    first = CLOCK.to_json()
    first["due_at"] = "tampered"
    assert CLOCK.to_json()["due_at"] == "2026-03-05T23:59:59+07:00"
    paused = dataclasses.replace(
        CLOCK, running=False, due_at=None, remaining=Duration.parse("2 working days")
    )
    assert paused.to_json()["due_at"] is None and paused.to_json()["running"] is False
    assert ClockState.from_json(paused.to_json()) == paused
