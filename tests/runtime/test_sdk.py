"""The client (``engine.faces.sdk``) and the ``lapor`` runtime commands on the embedded runtime."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
import typer
from sqlalchemy import text
from typer.testing import CliRunner

from engine.domain.errors import LaporError
from engine.domain.events import instant, utc_text
from engine.faces.cli.cases import register
from engine.faces.sdk import Client
from engine.runtime.errors import KeyReuseError

T0 = instant("2026-03-02T10:00:00+07:00")
INTAKE = {"category": "kesehatan", "region": "ID-PA", "channel": "sms_1708", "description": "x"}
REPORTER = {"name": "Budi Santoso", "phone": "081234567890"}


class FixedClock:
    def __init__(self, moment: datetime) -> None:
        self.moment = moment

    def now(self) -> datetime:
        return self.moment


@pytest.fixture
def client(tmp_path: Path) -> Iterator[Client]:
    made = Client(f"sqlite:///{tmp_path / 'lapor.db'}", clock=FixedClock(T0), migrate=True)
    yield made
    made.close()


def test_start_draws_a_tracking_number_and_a_key_makes_it_safe_to_retry(client: Client) -> None:
    first = client.start("sp4n-lapor", INTAKE, reporter=REPORTER, key="web-123")
    again = client.start("sp4n-lapor", INTAKE, reporter=REPORTER, key="web-123")

    # A keyed start takes its id from the key, so a retry reaches the same case everywhere.
    assert first.accepted and re.fullmatch(r"LAPOR-K-[A-Z2-7]{12}", first.case_id)
    assert again.replayed and again.case_id == first.case_id and again.seq == 1
    drawn = client.start("sp4n-lapor", INTAKE)
    assert re.fullmatch(r"LAPOR-2026-[2-9A-HJ-NP-Z]{8}", drawn.case_id)
    with pytest.raises(KeyReuseError):
        client.start("sp4n-lapor", {**INTAKE, "description": "another"}, key="web-123")
    assert client.start("sp4n-lapor", INTAKE, case_id=first.case_id).code == "already_started"
    refused = client.start("sp4n-lapor", {"region": "ID-JK"})
    assert not refused.accepted and refused.code == "missing_field"


def test_signal_status_history_and_audit(client: Client) -> None:
    case_id = client.start("sp4n-lapor", INTAKE, reporter=REPORTER).case_id
    rejected = client.signal(case_id, "verify", actor="agency:kemenkes")
    assert not rejected.accepted and rejected.code == "wrong_role" and rejected.reason

    verified = client.signal(
        case_id, "verify", actor="admin:nasional", data={"agency": "pemprov-papua"}
    )
    assert verified.accepted and verified.status == "Terdisposisi" and verified.seq == 2

    status = client.status(case_id)
    assert status["state"] == "disposed" and status["agency"] == "pemprov-papua"
    assert "complete" in status["allowed_signals"] and "verify" not in status["allowed_signals"]
    assert {c["name"] for c in status["clocks"]} == {"first_follow_up", "completion"}
    assert all(c["due_at"].endswith("+09:00") for c in status["clocks"])  # WIT: the agency's zone
    assert "Budi" not in json.dumps(status) and "0812" not in json.dumps(status)

    records = client.history(case_id)
    assert [r.seq for r in records] == [1, 2] and records[1].at == utc_text(T0)
    assert client.audit(case_id).ok
    with pytest.raises(LaporError, match="unknown case"):
        client.signal("LAPOR-2026-NOPE", "verify", actor="admin:nasional")


def test_audit_finds_a_tampered_case_row(client: Client, tmp_path: Path) -> None:
    case_id = client.start("sp4n-lapor", INTAKE).case_id
    engine = client.runtime.engine  # type: ignore[attr-defined]
    with engine.begin() as conn:
        body = conn.execute(text("SELECT body FROM cases WHERE id = :i"), {"i": case_id}).scalar()
        forged = body.replace('"escalation_level":0', '"escalation_level":3')
        conn.execute(text("UPDATE cases SET body = :b WHERE id = :i"), {"b": forged, "i": case_id})
    report = client.audit(case_id)
    assert not report.ok and "stored case differs" in report.problems[0]


# --- the commands -----------------------------------------------------------------------------


@pytest.fixture
def lapor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(tmp_path)  # --db defaults to sqlite:///lapor.db in the cwd
    return CliRunner()


def app() -> typer.Typer:
    made = typer.Typer()
    register(made)
    return made


def test_commands_drive_a_case(lapor: CliRunner, tmp_path: Path) -> None:
    assert lapor.invoke(app(), ["db", "upgrade"]).exit_code == 0
    assert (tmp_path / "lapor.db").exists()
    (tmp_path / "intake.json").write_text(json.dumps(INTAKE))
    (tmp_path / "reporter.json").write_text(json.dumps(REPORTER))

    started = lapor.invoke(
        app(),
        [
            "start",
            "--workflow",
            "sp4n-lapor",
            "--data",
            "intake.json",
            "--reporter",
            "reporter.json",
            "--key",
            "k1",
        ],
    )
    assert started.exit_code == 0, started.output
    case_id = started.stdout.strip()  # stderr may say which project was used

    wrong = lapor.invoke(app(), ["signal", case_id, "verify", "--actor", "agency:kemenkes"])
    assert wrong.exit_code == 1 and "wrong_role" in wrong.output
    ok = lapor.invoke(
        app(),
        [
            "signal",
            case_id,
            "verify",
            "--actor",
            "admin:nasional",
            "--data",
            '{"agency": "pemprov-papua", "tier": "simple"}',
        ],
    )
    assert ok.exit_code == 0 and "accepted: disposed (Terdisposisi)" in ok.output

    status = lapor.invoke(app(), ["status", case_id, "--json"])
    assert json.loads(status.output)["agency"] == "pemprov-papua"
    assert "WIT" in lapor.invoke(app(), ["status", case_id]).output
    human = lapor.invoke(app(), ["history", case_id]).output
    assert "signal verify by admin:nasional" in human and "Budi" not in human
    assert len(json.loads(lapor.invoke(app(), ["history", case_id, "--json"]).output)) == 2
    audited = lapor.invoke(app(), ["audit", case_id])
    assert audited.exit_code == 0 and audited.output.startswith("ok:")


def test_run_until_fires_every_timer_and_delivers_the_outbox_only_to_a_handler(
    lapor: CliRunner, tmp_path: Path
) -> None:
    lapor.invoke(app(), ["db", "upgrade"])
    (tmp_path / "intake.json").write_text(json.dumps(INTAKE))
    case_id = lapor.invoke(
        app(), ["start", "--workflow", "sp4n-lapor", "--data", "intake.json"]
    ).stdout.strip()

    def pending() -> int:
        client = Client("sqlite:///lapor.db")
        try:
            with client.runtime.engine.connect() as conn:  # type: ignore[attr-defined]
                query = text("SELECT count(*) FROM outbox WHERE delivered_us IS NULL")
                return int(conn.execute(query).scalar_one())
        finally:
            client.close()

    until = ["run", "--until", "2099-12-31T00:00:00+07:00", "--beyond-now", "--log-json"]
    kept = lapor.invoke(app(), until)

    assert kept.exit_code == 0, kept.output
    view = json.loads(lapor.invoke(app(), ["status", case_id, "--json"]).output)
    assert view["outcome"] == "referred_to_ombudsman"
    # No handler: nothing is marked delivered that nobody received; the run says so.
    assert pending() > 0 and "run.outbox_kept" in kept.output

    delivered = lapor.invoke(app(), [*until, "--handler", "log"])
    assert delivered.exit_code == 0, delivered.output
    assert pending() == 0


def test_run_until_beyond_now_is_refused_on_a_live_database(
    lapor: CliRunner, tmp_path: Path
) -> None:
    lapor.invoke(app(), ["db", "upgrade"])
    refused = lapor.invoke(app(), ["run", "--until", "2099-01-01T00:00:00+07:00"])
    assert isinstance(refused.exception, LaporError)
    assert "is after now" in str(refused.exception) and "--beyond-now" in str(refused.exception)
    past = lapor.invoke(app(), ["run", "--until", "2026-03-01T00:00:00+07:00", "--log-json"])
    assert past.exit_code == 0, past.output


def test_an_unmigrated_database_is_one_line_of_advice(lapor: CliRunner) -> None:
    result = lapor.invoke(app(), ["status", "LAPOR-2026-X"])
    assert isinstance(result.exception, LaporError)
    assert "lapor db upgrade" in str(result.exception)


def test_a_read_on_a_missing_sqlite_file_creates_nothing(lapor: CliRunner, tmp_path: Path) -> None:
    for command in (["status", "X"], ["history", "X"], ["run", "--until", "2026-01-01T00:00:00Z"]):
        result = lapor.invoke(app(), [*command, "--db", "sqlite:///missing.db"])
        assert isinstance(result.exception, LaporError), command
        assert "no database at missing.db" in str(result.exception)
    assert not (tmp_path / "missing.db").exists()


def test_run_until_on_postgresql_waits_for_due_cases_another_worker_holds(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SKIP LOCKED passes over the cases another worker is deciding; `--until` must not call
    that caught up while they are due (it used to exit with work left before T)."""
    import threading
    import time

    from sqlalchemy import select

    from engine.sql.store import open_engine
    from engine.sql.tables import cases

    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    assert runner.invoke(app(), ["db", "upgrade", "--db", pg_url]).exit_code == 0
    (tmp_path / "intake.json").write_text(json.dumps(INTAKE))
    case_id = runner.invoke(
        app(), ["start", "--workflow", "sp4n-lapor", "--data", "intake.json", "--db", pg_url]
    ).stdout.strip()
    engine = open_engine(pg_url)
    held = threading.Event()

    def other_worker() -> None:
        with engine.begin() as conn:  # holds the case row as a deciding worker would
            conn.execute(select(cases.c.id).where(cases.c.id == case_id).with_for_update())
            held.set()
            time.sleep(1.5)

    thread = threading.Thread(target=other_worker)
    thread.start()
    held.wait(10)
    ran = runner.invoke(
        app(),
        ["run", "--db", pg_url, "--until", "2027-06-30T00:00:00+07:00", "--beyond-now",
         "--log-json", "--interval", "0.1"],
    )  # fmt: skip
    thread.join()
    engine.dispose()

    assert ran.exit_code == 0, ran.output
    assert "run.waiting_for_other_workers" in ran.output
    view = json.loads(runner.invoke(app(), ["status", case_id, "--db", pg_url, "--json"]).stdout)
    assert view["outcome"] == "referred_to_ombudsman"
