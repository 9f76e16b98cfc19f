"""Personal data written into an anonymous or confidential report never reaches an agency."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta

import pytest

from engine.domain.case import agency_view
from engine.domain.events import Actor, Signal, instant
from engine.domain.masking import MASK, mask_personal_data
from engine.domain.model import Model
from engine.runtime.clock import VirtualClock
from engine.runtime.memory import MemoryRuntime
from tests.recorder import Recorder

T0 = instant("2026-03-02T10:00:00+07:00")


@pytest.mark.parametrize(
    "text",
    [
        "NIK saya 3171234567890123, tolong dibantu",
        "NIK 3171 2345 6789 0123",
        "hubungi 081234567890",
        "hubungi 0812-3456-7890 sore hari",
        "WA +62 812 3456 7890",
        "atau 6281234567890",
        "email budi.santoso@example.co.id ya",
    ],
)
def test_each_kind_of_personal_data_is_masked(text: str) -> None:
    masked = mask_personal_data(text)
    assert MASK in masked
    assert not re.search(r"\d{8,}", re.sub(r"[\s.+-]", "", masked))  # no long number is left
    assert "@" not in masked


@pytest.mark.parametrize(
    "text",
    [
        "Obat habis sejak 12 Maret 2026",
        "antrean 3 jam, loket 2",
        "Rp 150.000 dipungut",
        "RT 004/RW 07",
    ],
)
def test_ordinary_numbers_are_left_alone(text: str) -> None:
    assert mask_personal_data(text) == text


@pytest.mark.parametrize("flag", ["anonymous", "confidential"])
def test_an_agency_never_reads_the_reporters_contacts_in_a_protected_report(
    flag: str, models: Mapping[str, Model]
) -> None:
    recorder = Recorder()
    runtime = MemoryRuntime(models, VirtualClock(T0), handlers=[recorder])
    intake = {
        "category": "kesehatan",
        "region": "ID-JK",
        "channel": "web",
        "description": "Saya (NIK 3171234567890123, 081234567890) ditolak di puskesmas",
        flag: True,
    }
    runtime.start("sp4n-lapor", "LAPOR-M-1", intake, at=T0)
    reply = Signal("verify", Actor.parse("admin:nasional"), {"agency": "kemenkes"})
    runtime.signal("LAPOR-M-1", reply, at=T0 + timedelta(hours=1))
    runtime.deliver()

    payloads = str([m.payload for m in recorder.messages])
    assert recorder.messages and "3171234567890123" not in payloads and "0812" not in payloads
    assert MASK in payloads
    # The history keeps what the reporter wrote, for the reporter's own view and for audit.
    assert "3171234567890123" in str(runtime.history("LAPOR-M-1")[0].event)


def test_an_ordinary_report_reaches_the_agency_as_written(models: Mapping[str, Model]) -> None:
    runtime = MemoryRuntime(models, VirtualClock(T0))
    intake = {"category": "kesehatan", "region": "ID-JK", "channel": "web", "description": "x 0812"}
    case = runtime.start("sp4n-lapor", "LAPOR-M-2", intake, at=T0).case
    assert case is not None and agency_view(case)["data"]["description"] == "x 0812"
