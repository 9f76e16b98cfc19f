"""Hostile arguments to every ``lapor`` command end in one line and an exit status, never a
traceback: each class of fault found by trying (a guard dividing by signal data, a non-UTF-8 or
a 1,000-deep ``--data`` file, a port past 65535, a corrupted case row), then hypothesis over
every quick command's arguments.

The exit statuses (``engine.faces.cli.main``): 0 done, 1 refused by the policy, 2 bad input,
3 database or server unavailable, 70 a bug in lapor-sla (which the fuzz test counts as failure).
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from engine.domain.errors import LaporError
from engine.domain.events import Actor, Started, instant
from engine.domain.guards import evaluate_guard
from engine.domain.machine import decide
from engine.domain.model import Model
from engine.faces.cli.main import app
from engine.runtime.errors import CorruptCaseError

ROOT = Path(__file__).resolve().parents[2]
INTAKE = {"category": "kesehatan", "region": "ID-JK", "channel": "web", "description": "x"}


def lapor(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "engine.faces.cli.main", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "LAPOR_PROJECT": str(ROOT)},
    )


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated lapor.db with one case, and the hostile files."""
    here = tmp_path_factory.mktemp("hostile")
    assert lapor("db", "upgrade", cwd=here).returncode == 0
    (here / "intake.json").write_text(json.dumps(INTAKE))
    started = lapor("start", "--workflow", "sp4n-lapor", "--data", "intake.json",
                    "--case-id", "LAPOR-FUZZ-1", cwd=here)  # fmt: skip
    assert started.returncode == 0, started.stderr
    (here / "latin1.json").write_bytes(b'{"description": "caf\xe9"}')
    (here / "deep.json").write_text('{"a":' * 1000 + "1" + "}" * 1000)
    (here / "list.json").write_text("[1, 2]")
    shutil.copytree(ROOT / "workflows", here / "workflows")
    (here / "hostile.bpmn").write_bytes(
        b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b'<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL">&x;</definitions>'
    )
    return here


def assert_one_line(result: subprocess.CompletedProcess[str], status: int, fragment: str) -> None:
    assert result.returncode == status, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert fragment in result.stderr


def test_a_data_file_that_is_not_utf8_is_one_line(folder: Path) -> None:
    result = lapor("signal", "LAPOR-FUZZ-1", "hold", "--actor", "admin:nasional",
                   "--data", "latin1.json", cwd=folder)  # fmt: skip
    assert_one_line(result, 2, "not UTF-8")


def test_data_nested_a_thousand_deep_is_one_line(folder: Path) -> None:
    result = lapor("start", "--workflow", "sp4n-lapor", "--data", "deep.json", cwd=folder)
    assert_one_line(result, 2, "nested far too deeply")


def test_a_metrics_port_past_65535_is_a_usage_error(folder: Path) -> None:
    result = lapor("run", "--metrics-port", "80000", cwd=folder)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "65535" in result.stderr


def test_a_corrupted_case_row_is_an_infrastructure_error_naming_the_case(
    tmp_path: Path,
) -> None:
    assert lapor("db", "upgrade", cwd=tmp_path).returncode == 0
    (tmp_path / "intake.json").write_text(json.dumps(INTAKE))
    lapor("start", "--workflow", "sp4n-lapor", "--data", "intake.json", "--case-id", "LAPOR-X-1",
          cwd=tmp_path)  # fmt: skip
    with sqlite3.connect(tmp_path / "lapor.db") as conn:
        conn.execute("UPDATE cases SET body = '{\"a\": 1}' WHERE id = 'LAPOR-X-1'")

    result = lapor("status", "LAPOR-X-1", cwd=tmp_path)

    assert_one_line(result, 3, "case LAPOR-X-1: its stored row cannot be read")


def test_a_guard_that_divides_by_signal_data_fails_instead_of_raising(model: Model) -> None:
    started = decide(model, None, Started("C", INTAKE), instant("2026-03-02T10:00:00+07:00"))
    assert started.case is not None
    holds, why = evaluate_guard("10 / data.days > 1", started.case, {"days": 0}, Actor("admin"))
    assert not holds and "ZeroDivisionError" in why


def test_a_bug_is_one_line_with_its_own_status_and_the_traceback_on_request(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from engine.faces.cli import main as cli

    def broken() -> None:
        raise ZeroDivisionError("planted")

    monkeypatch.setattr(cli, "app", broken)
    with pytest.raises(SystemExit) as done:
        cli.main()
    assert done.value.code == cli.EXIT_INTERNAL
    assert "internal error: ZeroDivisionError: planted" in capsys.readouterr().err
    monkeypatch.setenv("LAPOR_DEBUG", "1")
    with pytest.raises(ZeroDivisionError):
        cli.main()


# --- hypothesis over the arguments of every quick command -----------------------------------

COMMANDS = [
    ["validate"], ["diagram"], ["deadline"], ["simulate"], ["test"], ["schema"],
    ["calendar", "seed"], ["start"], ["signal"], ["status"], ["history"], ["audit"],
    ["db", "upgrade"], ["outbox", "list"], ["outbox", "show"], ["outbox", "retry"],
    ["outbox", "dead"], ["identity", "init"], ["identity", "add-key"], ["identity", "rewrap"],
    ["identity", "show"], ["identity", "erase"], ["import"], ["export"],
    ["audit", "verify"], ["audit", "export"], ["audit", "explain"], ["audit", "checkpoint"],
    ["whatif"], ["migrate"], ["keys", "create"], ["keys", "list"], ["keys", "revoke"],
]  # fmt: skip
# Long-running or server-starting commands (demo, run, worker, temporal dev) have their own tests.
WORDS = [
    "--db", "--data", "--actor", "--workflow", "--key", "--reporter", "--case-id", "--json",
    "--start", "--duration", "--region", "--calendar", "--policies", "--project", "--state",
    "--limit", "--all-dead", "--temporal", "--reporter-token", "--key-id", "rt1.k1.AAAA",
    "rt1..", "ring.json", "nowhere/ring.json", "-o", "out.bpmn", "out.yaml",
    "workflows/sp4n-lapor.yaml", "workflows/sp4n-lapor.bpmn", "hostile.bpmn", "--force",
    "sqlite:///lapor.db", "sqlite:///nowhere/x.db", "postgresql://u:secret@127.0.0.1:1/x",
    "mysql://x", "sqlite://", "LAPOR-FUZZ-1", "LAPOR-NOPE", "sp4n-lapor", "verify", "hold",
    "admin:nasional", "agency:", "system", "reporter", ":", "intake.json", "latin1.json",
    "deep.json", "list.json", "/dev/null", "/etc", ".", "..", "workflows/", "policies/",
    "{}", "{", '{"agency": 1}', '{"a": [' + "[" * 50 + "]" * 50 + "]}", "[]",
    "2026-03-13T15:00:00+07:00", "2026-03-13T15:00:00", "3 working days", "-1 working days",
    "99999999999 working days", "ID-JK", "ID-XX", "9999", "-5", "0", "1e308", "",
    "\x1b[31mred", "a\x00b", "é" * 300, "x" * 5000, "--", "-", "--help",
    "--lang", "id", "en", "xx", "--since", "--until", "2026-03-13", "--html", "out.html",
    "--to", "--map", "submitted=on_hold", "on_hold", "a=", "--dry-run", "--at", "--top",
    "--checkpoint", "--verifier", "out.jsonl", "missing.jsonl", "--role", "agency", "channel",
    "--agency", "kemenkes", "--name", "--as-of",
# Relative paths only: the commands run in a copy, and `import --force -o` must never reach the
# repository's own files.
]  # fmt: skip


@pytest.fixture(scope="module")
def runner() -> Iterator[CliRunner]:
    yield CliRunner()


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(command=st.sampled_from(COMMANDS), words=st.lists(st.sampled_from(WORDS), max_size=6))
def test_no_argument_list_reaches_a_traceback(
    command: list[str],
    words: list[str],
    folder: Path,
    runner: CliRunner,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(folder)
    monkeypatch.setenv("LAPOR_PROJECT", str(ROOT))
    result = runner.invoke(app, [*command, *words])
    error = result.exception
    # typer's usage errors and our own exits are SystemExit; a LaporError becomes one line and
    # status 2 or 3 in main(). Anything else would have been a traceback.
    assert error is None or isinstance(error, SystemExit | LaporError | CorruptCaseError), (
        f"lapor {' '.join([*command, *words])!r} raised {type(error).__name__}: {error}"
    )


@pytest.mark.parametrize(
    ("guard", "fragment"),
    [
        ("data.xs.map(a, data.xs.map(b, a * b)).size() > 0", "nests a comprehension macro"),
        ("data.xs.all(a, data.ys.exists(b, b == a))", "nests a comprehension macro"),
        ("data.a.all(x, x > 0) && data.b.all(x, x > 0) && data.c.all(x, x > 0) && "
         "data.d.all(x, x > 0) && data.e.all(x, x > 0)", "5 comprehension macros"),
        ("data.s == '" + "x" * 1000 + "'", "characters long"),
    ],
)  # fmt: skip
def test_a_guard_whose_cost_could_grow_without_bound_is_refused_at_load_and_run(
    guard: str, fragment: str, model: Model
) -> None:
    from engine.definitions.checks import check_guard

    problem = check_guard(guard)
    assert problem is not None and fragment in problem
    started = decide(model, None, Started("C", INTAKE), instant("2026-03-02T10:00:00+07:00"))
    assert started.case is not None
    # A model stored before the rule still never evaluates it: the guard fails, cheaply.
    holds, why = evaluate_guard(guard, started.case, {"xs": list(range(500))}, Actor("admin"))
    assert not holds and fragment in why
