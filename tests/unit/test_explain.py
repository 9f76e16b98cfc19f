"""``engine.apps.audit.explain``: the timeline of one case, from its records and pinned model.

Histories come from the checked-in golden files, the in-memory runtime, and ``decide`` run by
hand (for a signal whose record also holds the lapses it settled first). Every number asserted
below is counted by hand on the 2026 calendar (policies/calendars/id-2026.yaml).
"""

from __future__ import annotations

import ast
import json
from collections.abc import Sequence
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest

from engine.apps.audit.explain import Step, explain, render
from engine.domain.case import Case
from engine.domain.errors import LaporError
from engine.domain.events import Actor, Event, Signal, Started, instant
from engine.domain.machine import decide
from engine.domain.model import Model
from engine.domain.records import HistoryRecord
from tests.conftest import RuntimeFactory

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden"
LADDER = "completion-lapse-climbs-ladder-to-ombudsman"
NYEPI = "hold-pauses-verification-across-nyepi"
INTAKE = {"category": "infrastruktur", "region": "ID-BA", "channel": "web",
          "description": "Jalan rusak di depan SDN 3 Denpasar"}  # fmt: skip
# Distinctive enough that finding it anywhere in an output can only mean it leaked.
REPORTER = {"name": "Sulistyowati Prawirodirjo-QX7", "email": "sulis.qx7@example.org",
            "phone": "081298765432"}  # fmt: skip
ADMIN = Actor.parse("admin:nasional")
BALI = Actor.parse("agency:pemprov-bali")


def golden(name: str) -> list[HistoryRecord]:
    data = json.loads((GOLDEN / f"{name}.json").read_text(encoding="utf-8"))
    return [HistoryRecord.from_json(r) for r in data]


def text(steps: Sequence[Step]) -> str:
    return render(steps)


def late_follow_up(make_runtime: RuntimeFactory) -> tuple[Model, list[HistoryRecord]]:
    """Disposed Mon 11 May 2026 (Bali, WITA): first follow-up due Wed 20 May (14 May Kenaikan
    and 15 May cuti bersama skipped); the agency posts it Fri 22 May, after the lapse at
    Thu 21 May 00:00 climbed to the agency liaison."""
    start = instant("2026-05-08T10:00:00+08:00")
    runtime = make_runtime(start)
    runtime.start("sp4n-lapor", "LAPOR-X-1", INTAKE, reporter=REPORTER, at=start)
    runtime.signal("LAPOR-X-1", Signal("verify", ADMIN, {"agency": "pemprov-bali"}),
                   at=instant("2026-05-11T10:00:00+08:00"))  # fmt: skip
    runtime.signal("LAPOR-X-1", Signal("follow_up", BALI, {"response": "Sudah ditinjau"}),
                   at=instant("2026-05-22T10:00:00+08:00"))  # fmt: skip
    return runtime.model_of("LAPOR-X-1"), runtime.history("LAPOR-X-1")


def decided(model: Model, events: Sequence[tuple[Event, str]]) -> list[HistoryRecord]:
    """The records ``decide`` gives for ``events`` at their times, no timer ever firing."""
    case: Case | None = None
    records: list[HistoryRecord] = []
    for event, at in events:
        decision = decide(model, case, event, instant(at))
        assert decision.record is not None, decision.rejection
        case = decision.case
        records.append(decision.record)
    return records


def test_escalation_step_names_the_rung_target_and_the_new_deadline(model: Model) -> None:
    steps = explain(model, golden(LADDER), "en")

    lapses = [s for s in steps if s.lapse is not None]
    first = lapses[0].lapse
    assert first is not None and first.escalation is not None
    assert (first.clock, first.level) == ("completion", 0)
    assert first.escalation.to == "agency_liaison"
    assert first.escalation.due_at == instant("2026-05-22T23:59:59+07:00")
    assert "Escalated to level 1 of 4: the agency liaison [agency_liaison]; new deadline " \
        "2 working days, due Friday 22 May 2026 23:59:59 WIB" in text(steps)  # fmt: skip
    indonesian = text(explain(model, golden(LADDER), "id"))
    assert "Eskalasi ke tingkat 1 dari 4: penghubung instansi [agency_liaison]; tenggat baru " \
        "2 hari kerja, jatuh tempo Jumat, 22 Mei 2026 23.59.59 WIB" in indonesian  # fmt: skip


def test_last_rung_refers_to_ombudsman_with_no_further_deadline(model: Model) -> None:
    steps = explain(model, golden(LADDER), "id")

    last = steps[-1]
    assert last.lapse is not None and last.lapse.escalation is not None
    assert last.lapse.escalation.to == "ombudsman_ri"
    assert last.lapse.escalation.due_at is None
    assert (last.trigger, last.state_to, last.outcome) == (
        "refer_to_ombudsman", "referred_to_ombudsman", "referred_to_ombudsman")  # fmt: skip
    assert "Eskalasi ke tingkat terakhir 4 dari 4: Ombudsman RI [ombudsman_ri]" in text(steps)


def test_escalated_deadline_names_the_holidays_it_skipped(model: Model) -> None:
    steps = explain(model, golden(LADDER), "en")

    second = steps[4].lapse
    assert second is not None and second.escalation is not None
    # 22 May + 3 working days: Mon 25, Tue 26, (Idul Adha Wed 27, cuti bersama Thu 28), Fri 29.
    assert [h.day for h in second.escalation.holidays] == [date(2026, 5, 27), date(2026, 5, 28)]
    # Waisak falls on Sunday 31 May: no working day lost, so it is not listed as skipped.
    third = steps[5].lapse
    assert third is not None and third.escalation is not None
    assert [h.name for h in third.escalation.holidays] == ["Hari Lahir Pancasila"]


def test_late_follow_up_says_how_many_working_days_late(make_runtime: RuntimeFactory) -> None:
    pinned, records = late_follow_up(make_runtime)

    steps = explain(pinned, records, "en")

    follow_up = steps[-1]
    assert follow_up.trigger == "follow_up"
    (verdict,) = follow_up.stopped
    # Due Wed 20 May; Thu 21 and Fri 22 May are working days: 2 late.
    assert (verdict.clock, verdict.on_time, verdict.late_working_days) == (
        "first_follow_up", False, 2)  # fmt: skip
    assert verdict.level == 1
    assert "stopped: late by 2 working days" in text(steps)
    assert "berhenti: terlambat 2 hari kerja" in text(explain(pinned, records, "id"))


def test_signal_on_time_says_so(model: Model) -> None:
    steps = explain(model, golden(LADDER), "id")

    (verdict,) = steps[2].stopped  # the follow-up on Wed 13 May, due 20 May
    assert verdict.on_time is True and verdict.late_working_days is None
    assert "Jam tindak lanjut pertama [first_follow_up] berhenti: tepat waktu" in text(steps)


def test_lapses_settled_by_a_late_signal_come_before_it_at_their_own_deadline(
    model: Model,
) -> None:
    records = decided(model, [
        (Started("LAPOR-X-2", INTAKE), "2026-05-08T10:00:00+08:00"),
        (Signal("verify", ADMIN, {"agency": "pemprov-bali"}), "2026-05-11T10:00:00+08:00"),
        (Signal("follow_up", BALI, {"response": "x"}), "2026-05-22T10:00:00+08:00"),
    ])  # fmt: skip

    steps = explain(model, records, "en")

    assert [(s.seq, s.kind) for s in steps] == [
        (1, "started"), (2, "signal"), (3, "lapsed"), (3, "lapsed"), (3, "signal")]  # fmt: skip
    assert steps[2].at == instant("2026-05-21T00:00:00+08:00")
    assert steps[3].lapse is not None and steps[3].lapse.escalation is not None
    assert steps[3].lapse.escalation.notice_of == "first_follow_up"  # one notice for both
    (verdict,) = steps[4].stopped
    assert (verdict.on_time, verdict.late_working_days) == (False, 2)
    assert steps[4].state_from == "disposed" and steps[4].state_to == "in_progress"


def test_nyepi_is_named_as_a_skipped_holiday(model: Model) -> None:
    for lang in ("id", "en"):
        steps = explain(model, golden(NYEPI), lang)

        (deadline,) = steps[0].deadlines
        # Received Fri 13 Mar, due Wed 25 Mar: 18, 19 (Nyepi), 20, 23, 24 Mar are days off.
        assert deadline.due_at == instant("2026-03-25T23:59:59+07:00")
        nyepi = [h for h in deadline.holidays if h.day == date(2026, 3, 19)]
        assert nyepi and "Nyepi" in nyepi[0].name
        assert "Hari Suci Nyepi (Tahun Baru Saka 1948)" in text(steps)


def test_a_hold_pauses_the_count_of_working_days(model: Model) -> None:
    steps = explain(model, golden(NYEPI), "en")

    assert steps[1].paused[0].remaining.amount == 2
    assert steps[2].deadlines[0].action == "resumed"
    verify = steps[3].stopped[0]
    # Fri 13 to Thu 26 Mar: 16, 17, 25, 26 are working days; 17 Mar was on hold.
    assert (verify.on_time, verify.working_days_since_start, verify.working_days_counted) == (
        True, 4, 3)  # fmt: skip


def test_times_are_shown_in_the_case_region_zone(make_runtime: RuntimeFactory) -> None:
    pinned, records = late_follow_up(make_runtime)

    steps = explain(pinned, records, "en")

    assert steps[0].lines[0] == "1. Friday 8 May 2026 10:00 WITA · record #1"
    # Verification is Admin Nasional's clock, counted on Jakarta time.
    assert "due Wednesday 13 May 2026 23:59:59 WIB" in steps[0].lines[-1]


@pytest.mark.parametrize("name", sorted(p.stem for p in GOLDEN.glob("*.json")))
def test_indonesian_and_english_tell_the_same_steps(model: Model, name: str) -> None:
    indonesian = explain(model, golden(name), "id")
    english = explain(model, golden(name), "en")

    assert indonesian == english  # every field but the words
    assert [len(s.lines) for s in indonesian] == [len(s.lines) for s in english]
    assert [s.lines for s in indonesian] != [s.lines for s in english]


def test_json_holds_the_same_steps_as_the_text(model: Model) -> None:
    steps = explain(model, golden(LADDER), "en")

    data = json.loads(json.dumps([s.to_json() for s in steps]))

    assert [d["lines"] for d in data] == [list(s.lines) for s in steps]
    assert data[3]["lapse"]["escalation"]["to"] == "agency_liaison"
    assert data[3]["lapse"]["escalation"]["due_at"] == "2026-05-22T23:59:59+07:00"
    assert data[1]["deadlines"][0]["duration"] == {"amount": 5, "unit": "working_days"}


def test_no_reporter_identity_appears_in_any_output(make_runtime: RuntimeFactory) -> None:
    pinned, records = late_follow_up(make_runtime)

    outputs = [text(explain(pinned, records, lang)) for lang in ("id", "en")]
    outputs += [json.dumps([s.to_json() for s in explain(pinned, records, "en")])]

    for output in outputs:
        for value in REPORTER.values():
            assert value not in output
        assert "Prawirodirjo" not in output


def test_free_text_is_named_but_not_shown(make_runtime: RuntimeFactory) -> None:
    pinned, records = late_follow_up(make_runtime)

    output = text(explain(pinned, records, "en"))

    assert "description (text not shown)" in output
    assert INTAKE["description"] not in output and "Sudah ditinjau" not in output


def test_unknown_language_is_refused(model: Model) -> None:
    with pytest.raises(LaporError, match="unknown language 'fr'; use one of: id, en"):
        explain(model, golden(LADDER), "fr")


def test_records_of_another_model_are_refused(model: Model) -> None:
    other = replace(model, version="other")

    with pytest.raises(LaporError, match="pinned to model"):
        explain(other, golden(LADDER), "en")


def test_explainer_reads_no_clock_and_does_no_io() -> None:
    allowed = {"__future__", "collections", "dataclasses", "datetime", "typing", "engine"}
    for name in ("explain.py", "explain_words.py"):
        tree = ast.parse((ROOT / "engine" / "apps" / "audit" / name).read_text(encoding="utf-8"))
        imported = {
            (n.module or "").split(".")[0]
            if isinstance(n, ast.ImportFrom)
            else a.name.split(".")[0]
            for n in ast.walk(tree)
            if isinstance(n, ast.Import | ast.ImportFrom)
            for a in n.names
        }
        assert imported <= allowed, f"{name} imports {imported - allowed}"
        calls = {ast.unparse(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
        assert not calls & {"datetime.now", "date.today", "open", "print"}


def test_re_route_says_the_clocks_restarted_for_the_new_agency(model: Model) -> None:
    steps = explain(model, golden("not-authority-reroutes-and-restarts-clocks"), "en")

    reroute = steps[2]
    assert reroute.routed_to == "kemenkes"
    assert [(d.clock, d.action) for d in reroute.deadlines] == [
        ("first_follow_up", "restarted"), ("completion", "restarted")]  # fmt: skip
    assert "Clock completion restarted: 5 working days, due Friday 22 May 2026" in text(steps)
