"""``lapor migrate`` over a real SQLite file: a copy of the shipped policy with a shortened
follow-up deadline, a dry run that changes nothing, the move itself, and the audit across it."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from engine.domain.errors import LaporError
from engine.domain.events import Actor, Signal, instant
from engine.domain.model import Model
from engine.faces.cli.main import app
from engine.runtime.clock import VirtualClock
from engine.sql.embedded import EmbeddedRuntime
from engine.sql.migrations import upgrade
from engine.sql.store import open_engine
from tests.policy_copies import project_with_follow_up

T0 = instant("2026-03-02T10:00:00+07:00")
INTAKE = {"category": "kesehatan", "region": "ID-JK", "channel": "web", "description": "x"}
ADMIN = Actor.parse("admin:nasional")
MOVE_AT = "2026-03-04T10:00:00+07:00"


@pytest.fixture
def db(tmp_path: Path, models: Mapping[str, Model]) -> str:
    """Three cases: disposed (its follow-up clock runs), on hold, and one archived (closed)."""
    url = f"sqlite:///{tmp_path / 'lapor.db'}"
    upgrade(url)
    engine = open_engine(url)
    runtime = EmbeddedRuntime(engine, models, VirtualClock(T0))
    for case_id in ("LAPOR-MV-1", "LAPOR-MV-2", "LAPOR-MV-3"):
        assert runtime.start("sp4n-lapor", case_id, INTAKE, at=T0).accepted
    at = T0 + timedelta(hours=1)
    runtime.signal("LAPOR-MV-1", Signal("verify", ADMIN, {"agency": "kemenkes"}), at=at)
    runtime.signal("LAPOR-MV-2", Signal("hold", ADMIN, {"missing_info": "?"}), at=at)
    runtime.signal("LAPOR-MV-3", Signal("archive", ADMIN, {"reason": "duplikat"}), at=at)
    engine.dispose()
    return url


@pytest.fixture
def shorter(tmp_path: Path) -> Path:
    """A project copy whose first follow-up is due in 3 working days, not 5."""
    return project_with_follow_up(tmp_path, "3 working days")


def lapor(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def test_a_dry_run_shows_each_open_case_and_changes_nothing(db: str, shorter: Path) -> None:
    result = lapor("migrate", "--to", str(shorter), "--db", db, "--at", MOVE_AT, "--dry-run")

    assert result.exit_code == 0, result.output
    assert (
        "LAPOR-MV-1: would move: clock first_follow_up rescheduled, due 2026-03-05 23:59:59 WIB"
        in result.output
    )
    assert "LAPOR-MV-2: would move" in result.output
    assert "LAPOR-MV-3" not in result.output  # closed: not moved
    assert "dry run: 2 case(s) would move" in result.output
    # Up to the move, neither case has reached a deadline the shorter rule would have moved.
    assert "what-if over these 2 case(s) up to 2026-03-04T10:00:00+07:00: 0 changed" in (
        result.output
    )
    history = lapor("history", "LAPOR-MV-1", "--db", db)
    assert "migrated" not in history.output


def test_a_dry_run_shows_the_what_if_of_exactly_the_cases_it_would_move(
    db: str, shorter: Path
) -> None:
    # Disposed Mon 2 March: under 3 working days the follow-up was due Thu 5 March 23:59:59 and
    # has lapsed by Friday 10:00; under 5 it is due Mon 9 March. The held case has no such clock.
    result = lapor(
        "migrate", "--to", str(shorter), "--db", db, "--at", "2026-03-06T10:00:00+07:00",
        "--dry-run",
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    assert "LAPOR-MV-1: what-if under the new model: escalates newly" in result.output
    assert "LAPOR-MV-2: what-if" not in result.output
    assert "LAPOR-MV-3" not in result.output
    assert "what-if over these 2 case(s) up to 2026-03-06T10:00:00+07:00: 1 changed" in (
        result.output
    )


def test_migrating_records_the_move_and_the_audit_verifies_across_it(
    db: str, shorter: Path
) -> None:
    result = lapor("migrate", "--to", str(shorter), "--db", db, "--at", MOVE_AT)

    assert result.exit_code == 0, result.output
    assert "moved 2 case(s)" in result.output
    history = lapor("history", "LAPOR-MV-1", "--db", db)
    assert "migrated by admin:nasional from model" in history.output
    verified = lapor("audit", "verify", "--db", db, "--as-of", MOVE_AT)
    assert verified.exit_code == 0, verified.output
    assert lapor("audit", "LAPOR-MV-1", "--db", db).exit_code == 0
    again = lapor("migrate", "--to", str(shorter), "--db", db, "--at", MOVE_AT, "--dry-run")
    assert "dry run: 0 case(s) would move" in again.output


def test_a_bad_mapping_is_refused_as_a_mistake_in_the_command(db: str, shorter: Path) -> None:
    result = lapor("migrate", "--to", str(shorter), "--db", db, "--map", "on_hold")

    # ``main`` prints a LaporError as one line with exit status 2.
    assert isinstance(result.exception, LaporError)
    assert "expected OLD_STATE=NEW_STATE" in str(result.exception)
