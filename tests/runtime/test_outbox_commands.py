"""``lapor outbox``: an operator lists, inspects and retries what the runtime owes the world."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import typer
from sqlalchemy import update
from typer.testing import CliRunner

from engine.faces.cli.cases import register as register_cases
from engine.faces.cli.outbox import register as register_outbox
from engine.sql.outbox import DEAD_US
from engine.sql.store import open_engine
from engine.sql.tables import outbox

INTAKE = {"category": "kesehatan", "region": "ID-JK", "channel": "web", "description": "x"}


def app() -> typer.Typer:
    made = typer.Typer()
    register_cases(made)
    register_outbox(made)
    return made


@pytest.fixture
def lapor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    assert runner.invoke(app(), ["db", "upgrade"]).exit_code == 0
    (tmp_path / "intake.json").write_text(json.dumps(INTAKE))
    started = runner.invoke(app(), ["start", "--workflow", "sp4n-lapor", "--data", "intake.json"])
    case_id = started.stdout.strip()
    verified = runner.invoke(
        app(), ["signal", case_id, "verify", "--actor", "admin:nasional", "--data",
                '{"agency": "kemenkes"}'],
    )  # fmt: skip
    assert verified.exit_code == 0, verified.output
    return runner


def test_pending_messages_are_listed_with_their_keys_and_shown_whole(lapor: CliRunner) -> None:
    listed = json.loads(lapor.invoke(app(), ["outbox", "list", "--json"]).stdout)

    assert listed and all(m["state"] == "pending" for m in listed)
    assert {m["kind"] for m in listed} >= {"routed", "notify"}
    first = listed[0]
    assert first["idempotency_key"].startswith(first["case_id"] + ":")
    shown = lapor.invoke(app(), ["outbox", "show", str(first["id"])])
    assert shown.exit_code == 0 and first["idempotency_key"] in shown.stdout
    assert "payload:" in shown.stdout and '"agency"' in shown.stdout
    human = lapor.invoke(app(), ["outbox", "list"]).stdout
    assert "pending" in human and first["idempotency_key"] in human


def test_dead_letters_are_listed_and_retried(lapor: CliRunner) -> None:
    engine = open_engine("sqlite:///lapor.db")
    with engine.begin() as conn:
        conn.execute(
            update(outbox).values(next_attempt_us=DEAD_US, last_error="dead: after 12 attempt(s)")
        )
    engine.dispose()

    dead = json.loads(lapor.invoke(app(), ["outbox", "dead", "--json"]).stdout)
    assert dead and all(m["state"] == "dead" and m["last_error"] for m in dead)
    one = lapor.invoke(app(), ["outbox", "retry", str(dead[0]["id"])])
    assert one.exit_code == 0 and "requeued 1" in one.stdout
    rest = lapor.invoke(app(), ["outbox", "retry", "--all-dead"])
    assert f"requeued {len(dead) - 1}" in rest.stdout
    assert json.loads(lapor.invoke(app(), ["outbox", "dead", "--json"]).stdout) == []
    again = json.loads(lapor.invoke(app(), ["outbox", "list", "--json"]).stdout)
    assert len(again) == len(dead) and all(m["attempts"] == 0 for m in again)
    assert all(m["next_attempt"] <= datetime.now(UTC).isoformat() for m in again)


def test_wrong_calls_are_one_line_errors(lapor: CliRunner) -> None:
    missing = lapor.invoke(app(), ["outbox", "show", "999999"])
    assert missing.exit_code != 0 and "no outbox message 999999" in str(missing.exception)
    neither = lapor.invoke(app(), ["outbox", "retry"])
    assert "--all-dead" in str(neither.exception)
    state = lapor.invoke(app(), ["outbox", "list", "--state", "lost"])
    assert "unknown outbox state 'lost'" in str(state.exception)
