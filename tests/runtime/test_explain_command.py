"""``lapor audit explain CASE`` as a user runs it (a separate process) over a real SQLite file:
the timeline in Indonesian and English, the same steps as JSON, and one line on stderr with the
documented exit status for an unknown case, a bad ``--lang`` and a missing database."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import pytest

from engine.domain.events import Actor, Signal, instant
from engine.domain.model import Model
from engine.runtime.clock import VirtualClock
from engine.sql.embedded import EmbeddedRuntime
from engine.sql.migrations import upgrade
from engine.sql.store import open_engine
from tests.lapor_process import lapor

CASE = "LAPOR-E-1"
INTAKE = {"category": "infrastruktur", "region": "ID-BA", "channel": "web",
          "description": "Jalan rusak di depan SDN 3 Denpasar"}  # fmt: skip
REPORTER = {"name": "Sulistyowati Prawirodirjo-QX7", "email": "sulis.qx7@example.org"}


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory, models: Mapping[str, Model]) -> str:
    """A case disposed Mon 11 May 2026 whose agency followed up Fri 22 May, two working days
    after its first follow-up was due (Wed 20 May), so the lapse climbed to the liaison."""
    url = f"sqlite:///{tmp_path_factory.mktemp('explain') / 'lapor.db'}"
    upgrade(url)
    engine = open_engine(url)
    start = instant("2026-05-08T10:00:00+08:00")
    runtime = EmbeddedRuntime(engine, models, VirtualClock(start))
    runtime.start("sp4n-lapor", CASE, INTAKE, reporter=REPORTER, at=start)
    verify = Signal("verify", Actor.parse("admin:nasional"), {"agency": "pemprov-bali"})
    runtime.signal(CASE, verify, at=instant("2026-05-11T10:00:00+08:00"))
    follow_up = Signal("follow_up", Actor.parse("agency:pemprov-bali"), {"response": "Ditinjau"})
    runtime.signal(CASE, follow_up, at=instant("2026-05-22T10:00:00+08:00"))
    runtime.close()
    engine.dispose()
    return url


def test_explain_tells_the_timeline_in_indonesian_by_default(db: str, tmp_path: Path) -> None:
    done = lapor("audit", "explain", CASE, "--db", db, cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{CASE} · sp4n-lapor 2026.1 · model ")
    assert "1. Jumat, 8 Mei 2026 10.00 WITA · catatan #1" in done.stdout
    assert "Eskalasi ke tingkat 1 dari 4: penghubung instansi [agency_liaison]" in done.stdout
    assert "berhenti: terlambat 2 hari kerja" in done.stdout


def test_explain_in_english_tells_the_same_steps(db: str, tmp_path: Path) -> None:
    english = lapor("audit", "explain", CASE, "--lang", "en", "--db", db, cwd=tmp_path)
    indonesian = lapor("audit", "explain", CASE, "--db", db, cwd=tmp_path)

    assert english.returncode == 0, english.stderr
    assert "stopped: late by 2 working days" in english.stdout
    assert "Holidays skipped: Kenaikan Yesus Kristus (Thursday 14 May 2026" in english.stdout
    assert english.stdout.count("\n") == indonesian.stdout.count("\n")


def test_explain_json_is_a_list_of_steps_with_fields(db: str, tmp_path: Path) -> None:
    done = lapor("audit", "explain", CASE, "--json", "--lang", "en", "--db", db, cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    steps = json.loads(done.stdout)
    assert [s["kind"] for s in steps] == ["started", "signal", "lapsed", "lapsed", "signal"]
    (verdict,) = steps[-1]["stopped"]
    assert verdict == {
        "clock": "first_follow_up",
        "due_at": "2026-05-22T23:59:59+08:00",
        "first_due": "2026-05-20T23:59:59+08:00",
        "level": 1,
        "on_time": False,
        "late_working_days": 2,
        "working_days_since_start": 7,
        "working_days_counted": 7,
    }
    assert steps[0]["lines"][0] == "1. Friday 8 May 2026 10:00 WITA · record #1"


def test_explain_shows_no_reporter_identity(db: str, tmp_path: Path) -> None:
    for args in ((), ("--lang", "en"), ("--json",)):
        done = lapor("audit", "explain", CASE, *args, "--db", db, cwd=tmp_path)

        assert done.returncode == 0, done.stderr
        for value in REPORTER.values():
            assert value not in done.stdout + done.stderr


def test_unknown_case_is_one_line_and_exit_2(db: str, tmp_path: Path) -> None:
    done = lapor("audit", "explain", "LAPOR-NOPE", "--db", db, cwd=tmp_path)

    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == "error: unknown case 'LAPOR-NOPE'\n"


def test_bad_language_is_one_line_and_exit_2(db: str, tmp_path: Path) -> None:
    done = lapor("audit", "explain", CASE, "--lang", "fr", "--db", db, cwd=tmp_path)

    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == "error: unknown language 'fr'; use one of: id, en\n"


def test_missing_database_is_one_line_and_exit_3(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'none.db'}"

    done = lapor("audit", "explain", CASE, "--db", url, cwd=tmp_path)

    assert done.returncode == 3
    assert done.stderr.count("\n") == 1 and "no database at" in done.stderr
    assert not (tmp_path / "none.db").exists()
