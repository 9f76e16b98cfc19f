"""One case that cannot be decided never stops SLA enforcement for the others: the timer loop
sets it aside (quarantine, with the reason), logs and counts it, and goes on; ``lapor
quarantine`` lists it and brings it back once the cause is fixed. SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

import pytest
import typer
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from engine.domain.events import instant
from engine.domain.model import Model
from engine.runtime import metrics
from engine.sql import store
from engine.sql.embedded import EmbeddedRuntime
from engine.sql.tables import cases

INTAKE = {"category": "kesehatan", "region": "ID-JK", "channel": "web", "description": "x"}
NEW_YEAR = instant("2028-01-01T08:00:00+07:00")


class FixedClock:
    def __init__(self, moment: datetime) -> None:
        self.moment = moment

    def now(self) -> datetime:
        return self.moment


def quarantined(engine: Engine) -> dict[str, str]:
    with engine.connect() as conn:
        return {q.case_id: q.reason for q in store.list_quarantined(conn)}


def test_a_deadline_past_the_calendars_sets_its_case_aside_and_the_others_fire(
    engine: Engine, models: Mapping[str, Model]
) -> None:
    runtime = EmbeddedRuntime(engine, models, FixedClock(NEW_YEAR))
    # Verification of the late one lapses on 31 Dec 2027; its next rung would end in 2028,
    # which the shipped calendars do not cover. The early one's ladder ends inside 2027.
    runtime.start("sp4n-lapor", "C-LATE", INTAKE, at=instant("2027-12-28T10:00:00+07:00"))
    runtime.start("sp4n-lapor", "C-EARLY", INTAKE, at=instant("2027-12-13T10:00:00+07:00"))
    before = metrics.quarantined_total._value.get()

    handled = runtime.fire_due(NEW_YEAR)
    runtime.fire_due(NEW_YEAR)

    assert handled == 2
    assert runtime.case("C-EARLY").outcome == "referred_to_ombudsman"
    aside = quarantined(engine)
    assert list(aside) == ["C-LATE"] and "2028" in aside["C-LATE"]
    assert len(runtime.history("C-LATE")) == 1  # nothing half-decided
    assert metrics.quarantined_total._value.get() == before + 1
    assert runtime.fire_due(NEW_YEAR) == 0  # out of the due index: not claimed again


def test_an_unreadable_case_row_is_set_aside_and_comes_back_when_fixed(
    engine: Engine, models: Mapping[str, Model]
) -> None:
    t0 = instant("2026-03-02T10:00:00+07:00")
    later = instant("2026-03-10T00:00:00+07:00")
    runtime = EmbeddedRuntime(engine, models, FixedClock(later))
    for case_id in ("C1", "C2", "C3"):
        runtime.start("sp4n-lapor", case_id, INTAKE, at=t0)
    with engine.begin() as conn:
        good = conn.scalar(select(cases.c.body).where(cases.c.id == "C2"))
        conn.execute(cases.update().where(cases.c.id == "C2").values(body="{torn"))

    runtime = EmbeddedRuntime(engine, models, FixedClock(later))  # another process, say
    runtime.fire_due(later)

    assert runtime.case("C1").escalation_level >= 1 and runtime.case("C3").escalation_level >= 1
    assert "CorruptCaseError" in quarantined(engine)["C2"]
    with engine.begin() as conn:  # the operator restores the row from a backup
        conn.execute(cases.update().where(cases.c.id == "C2").values(body=good))
        assert store.release_quarantined(conn, ["C2"]) == ["C2"]
    assert quarantined(engine) == {}
    runtime.fire_due(later)
    assert runtime.case("C2").escalation_level == runtime.case("C1").escalation_level


def test_lapor_quarantine_lists_and_retries(
    engine: Engine, models: Mapping[str, Model], tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine.faces.cli.quarantine import register

    t0 = instant("2026-03-02T10:00:00+07:00")
    runtime = EmbeddedRuntime(engine, models, FixedClock(instant("2026-03-10T00:00:00+07:00")))
    runtime.start("sp4n-lapor", "C9", INTAKE, at=t0)
    with engine.begin() as conn:
        good = conn.scalar(select(cases.c.body).where(cases.c.id == "C9"))
        conn.execute(cases.update().where(cases.c.id == "C9").values(body="[]"))
    runtime = EmbeddedRuntime(engine, models, FixedClock(instant("2026-03-10T00:00:00+07:00")))
    runtime.fire_due(instant("2026-03-10T00:00:00+07:00"))
    app = typer.Typer()
    register(app)
    url = engine.url.render_as_string(hide_password=False)
    runner = CliRunner()

    listed = runner.invoke(app, ["quarantine", "list", "--db", url, "--json"])
    assert listed.exit_code == 0, listed.output
    [entry] = json.loads(listed.stdout)
    assert entry["case_id"] == "C9" and "CorruptCaseError" in entry["reason"]
    broken = runner.invoke(app, ["quarantine", "retry", "C9", "--db", url])
    assert "cannot be read" in str(broken.exception)  # still broken: it stays aside
    with engine.begin() as conn:
        conn.execute(cases.update().where(cases.c.id == "C9").values(body=good))
    retried = runner.invoke(app, ["quarantine", "retry", "--all", "--db", url])
    assert retried.exit_code == 0 and "released 1 case(s): C9" in retried.stdout
    assert (
        json.loads(runner.invoke(app, ["quarantine", "list", "--db", url, "--json"]).stdout) == []
    )


def test_run_and_validate_warn_before_the_calendar_runs_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sixty days before the open cases' calendar ends, `lapor run` says so (and sets the
    metric); a day later than that it would be too late to review an SKB."""
    from engine.domain.calendar import calendar_runs_out
    from engine.faces.cli.cases import register as register_cases

    monkeypatch.chdir(tmp_path)
    app = typer.Typer()
    register_cases(app)
    runner = CliRunner()
    runner.invoke(app, ["db", "upgrade"])
    (tmp_path / "intake.json").write_text(json.dumps(INTAKE))
    runner.invoke(app, ["start", "--workflow", "sp4n-lapor", "--data", "intake.json"])

    late = runner.invoke(
        app, ["run", "--until", "2027-11-15T00:00:00+07:00", "--beyond-now", "--log-json"]
    )

    assert late.exit_code == 0, late.output
    assert "run.calendar_runs_out" in late.output and "deadlines will reach 2028" in late.output
    assert metrics.calendar_days_left.labels(workflow="sp4n-lapor")._value.get() == 46
    models_calendar = runner_models()["sp4n-lapor"].calendar
    assert calendar_runs_out(models_calendar, instant("2027-10-01T00:00:00+07:00").date()) is None


def runner_models() -> Mapping[str, Model]:
    from engine.definitions.loader import load_models
    from engine.definitions.project import shipped_root

    return load_models(shipped_root() / "workflows", shipped_root() / "policies")
