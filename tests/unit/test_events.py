"""Effects are recorded as JSON: each type's hand-written encoder must say every field, in order,
and read back to the same effect."""

from __future__ import annotations

from dataclasses import fields
from datetime import UTC, datetime
from typing import Any, get_args

import pytest

from engine.domain.calendar import Duration
from engine.domain.events import (
    ClockPaused,
    ClockRescheduled,
    ClockResumed,
    ClockStarted,
    ClockStopped,
    Closed,
    Effect,
    Entered,
    Escalated,
    Lapsed,
    Notify,
    Routed,
    effect_from_json,
    effect_to_json,
)

DUE = datetime(2026, 3, 13, 16, 59, 59, tzinfo=UTC)
SAMPLES: list[Effect] = [
    Entered("verified", "Terverifikasi"),
    ClockStarted("verification", DUE),
    ClockStopped("verification"),
    ClockPaused("completion", Duration.parse("3 working days")),
    ClockResumed("completion", DUE),
    ClockRescheduled("completion", DUE, None),
    ClockRescheduled("verification", None, Duration(2, "working_days")),
    Lapsed("completion", DUE, 1),
    Escalated("completion", 2, "ombudsman", None),
    Escalated("completion", 1, "supervisor:kemenkes", DUE),
    Escalated("completion", 1, "agency_liaison", DUE, ("first_follow_up",)),
    Routed("kemenkes", "signal"),
    Notify("reporter", "received"),
    Closed("resolved"),
]


def generic_encoding(effect: Effect) -> dict[str, Any]:
    """What an encoder must produce: the kind, then every field in declaration order."""
    out: dict[str, Any] = {"kind": effect_to_json(effect)["kind"]}
    for f in fields(effect):
        value = getattr(effect, f.name)
        if f.name == "joined":  # written only when some clock joined the notice
            if value:
                out[f.name] = list(value)
            continue
        if isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, Duration):
            value = str(value)
        out[f.name] = value
    return out


def test_every_effect_type_has_a_sample() -> None:
    assert {type(e) for e in SAMPLES} == set(get_args(Effect))


@pytest.mark.parametrize("effect", SAMPLES, ids=lambda e: type(e).__name__)
def test_effect_encoding_names_every_field_in_order_and_reads_back(effect: Effect) -> None:
    encoded = effect_to_json(effect)
    assert list(encoded.items()) == list(generic_encoding(effect).items())
    assert effect_from_json(encoded) == effect
