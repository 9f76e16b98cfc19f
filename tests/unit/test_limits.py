"""Sizes and identifiers are bounded where data enters: a case id fits its column and a terminal,
an actor is letters and digits, and no field grows every outbox row without limit."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from engine.domain.canonical import MAX_ITEMS, MAX_TEXT
from engine.domain.errors import LaporError
from engine.domain.events import Actor, Started, instant
from engine.domain.machine import decide
from engine.domain.model import Model
from engine.runtime.contract import StartCommand

INTAKE = {"category": "kesehatan", "region": "ID-JK", "channel": "web", "description": "x"}
T0 = instant("2026-03-02T10:00:00+07:00")


@pytest.mark.parametrize(
    "case_id",
    ["", "x" * 65, "LAPOR 1", "LAPOR-\x1b[31m", "LAPOR-\x00", "-LAPOR", "LAPOR/1", "ŁAPOR-1"],
)
def test_a_case_id_outside_the_safe_set_is_refused(case_id: str) -> None:
    with pytest.raises(LaporError, match="invalid case id"):
        StartCommand("sp4n-lapor", case_id, INTAKE)


@pytest.mark.parametrize("case_id", ["LAPOR-2026-7K3QXM2P", "LAPOR-K-ABCDEF234567", "C1", "a.b_c"])
def test_ordinary_case_ids_pass(case_id: str) -> None:
    assert StartCommand("sp4n-lapor", case_id, INTAKE).case_id == case_id


@pytest.mark.parametrize(
    "text", ["agency:kemenkes\x1b[2J", "admin:" + "n" * 101, "r" * 51, "agency:ke menkes", ":x"]
)
def test_an_actor_outside_the_safe_set_is_refused(text: str) -> None:
    with pytest.raises(LaporError, match="invalid actor"):
        Actor.parse(text)


def test_an_oversized_field_or_list_is_invalid_data(model: Model) -> None:
    huge = {**INTAKE, "description": "x" * (MAX_TEXT + 1)}
    long_list = {**INTAKE, "location": list(range(MAX_ITEMS + 1))}
    for data, fragment in ((huge, "characters"), (long_list, "entries")):
        decision = decide(model, None, Started("C1", data), T0)
        assert decision.rejection is not None and decision.rejection.code == "invalid_data"
        assert fragment in decision.rejection.reason


def test_a_long_but_ordinary_complaint_is_accepted(models: Mapping[str, Model]) -> None:
    data = {**INTAKE, "description": "Pelayanan lambat. " * 500}  # ~9,000 characters
    assert decide(models["sp4n-lapor"], None, Started("C1", data), T0).accepted


def test_terminal_output_never_carries_raw_control_sequences() -> None:
    from engine.faces.presenting import printable

    shown = printable("rejected: \x1b[2J\x1b[31mred\x07 \u202eevil\x9b ok\tfine\nnext")
    assert "\x1b" not in shown and "\x07" not in shown and "\u202e" not in shown
    assert "\x9b" not in shown
    assert "\\x1b[2J" in shown and "ok\tfine\nnext" in shown  # visible, and tabs/lines kept
