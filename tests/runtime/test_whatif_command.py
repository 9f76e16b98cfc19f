"""``lapor whatif`` over a real SQLite file: a copy of the shipped policy whose first follow-up is
due in 3 working days instead of 5, held against a hand computation across the 2026 Nyepi and
Idul Fitri holidays.

Every case is verified (disposed to kemenkes, Jakarta) on Friday 13 March 2026. The working days
after it are Mon 16 and Tue 17 March; 18-24 March are Nyepi, Idul Fitri and cuti bersama (with a
weekend); then Wed 25, Thu 26, Fri 27. So the first follow-up is due

- old (5 working days): Fri 27 March 23:59:59 WIB, lapsing Sat 28 March 00:00:00;
- new (3 working days): Wed 25 March 23:59:59 WIB, lapsing Thu 26 March 00:00:00,

two working days (Thu 26, Fri 27) earlier. The completion clock (5 working days, unchanged) also
lapses on 28 March when nobody answers. By hand, then:

- LAPOR-WI-SILENT (no follow-up): escalates earlier, by -2 working days;
- LAPOR-WI-PROMPT (follow-up and answer on Tue 17): escalates under neither model;
- LAPOR-WI-DAY4 (follow-up and answer on Thu 26, 10:00, the fourth working day): on time under
  the old model, late under the new one: newly escalates, at Thu 26 March 00:00:00 WIB;
- LAPOR-WI-UNVERIFIED (never verified; its verification clock is the same in both): escalates at
  the same instant.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from engine.domain.events import Actor, Signal, instant
from engine.domain.model import Model
from engine.faces.cli.main import app
from engine.runtime.clock import VirtualClock
from engine.sql.embedded import EmbeddedRuntime
from engine.sql.migrations import upgrade
from engine.sql.store import open_engine
from tests.lapor_process import lapor as run_lapor
from tests.policy_copies import project_with_follow_up

ADMIN = Actor.parse("admin:nasional")
AGENCY = Actor.parse("agency:kemenkes")
INTAKE = {"category": "kesehatan", "region": "ID-JK", "channel": "web", "description": "x"}
STARTED = instant("2026-03-12T09:00:00+07:00")
VERIFIED = instant("2026-03-13T10:00:00+07:00")
UNTIL = "2026-03-31T23:59:59+07:00"


def _answer(runtime: EmbeddedRuntime, case_id: str, at: str) -> None:
    moment = instant(at)
    for name in ("follow_up", "complete"):
        signal = Signal(name, AGENCY, {"response": "ditindaklanjuti"})
        assert runtime.signal(case_id, signal, at=moment).accepted


@pytest.fixture
def db(tmp_path: Path, models: Mapping[str, Model]) -> str:
    url = f"sqlite:///{tmp_path / 'lapor.db'}"
    upgrade(url)
    engine = open_engine(url)
    runtime = EmbeddedRuntime(engine, models, VirtualClock(STARTED))
    for case_id in ("LAPOR-WI-SILENT", "LAPOR-WI-PROMPT", "LAPOR-WI-DAY4", "LAPOR-WI-UNVERIFIED"):
        assert runtime.start("sp4n-lapor", case_id, INTAKE, at=STARTED).accepted
    for case_id in ("LAPOR-WI-SILENT", "LAPOR-WI-PROMPT", "LAPOR-WI-DAY4"):
        verify = Signal("verify", ADMIN, {"agency": "kemenkes"})
        assert runtime.signal(case_id, verify, at=VERIFIED).accepted
    _answer(runtime, "LAPOR-WI-PROMPT", "2026-03-17T10:00:00+07:00")
    runtime.advance_to(instant("2026-03-26T09:00:00+07:00"))  # the old model's lapses so far
    _answer(runtime, "LAPOR-WI-DAY4", "2026-03-26T10:00:00+07:00")
    runtime.advance_to(instant(UNTIL))
    engine.dispose()
    return url


@pytest.fixture
def shorter(tmp_path: Path) -> Path:
    return project_with_follow_up(tmp_path, "3 working days")


def lapor(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def _json_lines(result: Result) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    *cases, summary = lines
    assert summary["kind"] == "summary"
    return {case["case_id"]: case for case in cases}, summary


def test_a_shorter_follow_up_deadline_changes_exactly_the_hand_computed_cases(
    db: str, shorter: Path
) -> None:
    changed, summary = _json_lines(
        lapor("whatif", "--workflow", str(shorter), "--db", db, "--until", UNTIL, "--json")
    )

    assert sorted(changed) == ["LAPOR-WI-DAY4", "LAPOR-WI-SILENT"]
    silent = changed["LAPOR-WI-SILENT"]
    assert silent["change"] == "earlier"
    assert instant(silent["old_first_escalation"]) == instant("2026-03-28T00:00:00+07:00")
    assert instant(silent["new_first_escalation"]) == instant("2026-03-26T00:00:00+07:00")
    assert silent["delta_working_days"] == -2
    day4 = changed["LAPOR-WI-DAY4"]
    assert day4["change"] == "newly"
    assert day4["old_first_escalation"] is None
    assert instant(day4["new_first_escalation"]) == instant("2026-03-26T00:00:00+07:00")
    assert day4["diverges_at"] is None  # the late follow-up is still accepted, only late
    assert summary["cases"] == 4
    assert summary["changed"] == 2
    assert (summary["earlier"], summary["newly"], summary["same"], summary["none"]) == (1, 1, 1, 1)
    assert summary["later"] == summary["no_longer"] == 0
    assert summary["per_agency"]["kemenkes"]["changed"] == 2
    assert summary["per_region"]["ID-JK"]["cases"] == 4


def test_the_unchanged_policy_changes_no_case(db: str, tmp_path: Path) -> None:
    same = project_with_follow_up(tmp_path, "5 working days")

    changed, summary = _json_lines(
        lapor("whatif", "--workflow", str(same), "--db", db, "--until", UNTIL, "--json")
    )

    assert changed == {}
    assert summary["cases"] == 4
    assert summary["changed"] == 0


def test_a_longer_deadline_moves_the_silent_case_later_and_spares_the_late_one(
    db: str, tmp_path: Path
) -> None:
    # 7 working days from Fri 13 March: 16, 17, 25, 26, 27, 30, 31 -> lapses Wed 1 April.
    longer = project_with_follow_up(tmp_path, "7 working days")

    changed, summary = _json_lines(
        lapor("whatif", "--workflow", str(longer), "--db", db, "--until", UNTIL, "--json")
    )

    # The silent case still first escalates on 28 March: its completion clock (unchanged) lapses
    # then, and its ladder holds the same rungs; the day-four case is on time under both.
    assert changed == {}
    assert (summary["same"], summary["none"]) == (2, 2)


def test_the_report_and_html_name_the_changes(db: str, shorter: Path, tmp_path: Path) -> None:
    page = tmp_path / "whatif.html"

    result = lapor(
        "whatif", "--workflow", str(shorter), "--db", db, "--until", UNTIL, "--html", str(page)
    )

    assert result.exit_code == 0, result.output
    assert "2 changed" in result.output
    assert "LAPOR-WI-SILENT" in result.output
    html = page.read_text()
    assert html.startswith("<!DOCTYPE html>")
    assert "<svg" in html
    assert "LAPOR-WI-DAY4" in html
    assert "<script" not in html


def test_a_workflow_the_database_does_not_hold_is_one_line(db: str, tmp_path: Path) -> None:
    workflow = project_with_follow_up(tmp_path, "3 working days")
    project = workflow.parents[1]
    for path in [workflow, *(project / "policies").rglob("sp4n-lapor.yaml")]:
        path.write_text(path.read_text().replace("workflow: sp4n-lapor", "workflow: lain", 1))

    done = run_lapor("whatif", "--workflow", str(workflow), "--db", db, cwd=tmp_path)

    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "error: unknown workflow 'lain': " + db + " holds cases of sp4n-lapor; "
        "--workflow must be a changed version of one of them"
    )
