"""The `lapor` command as a user runs it: a real subprocess, real files, exit codes and output."""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from engine.definitions.yamlio import load_yaml_file

ROOT = Path(__file__).resolve().parents[2]


def lapor(
    *args: str, cwd: Path = ROOT, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "engine.faces.cli.main", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", **(env or {})},
    )


def test_validate_accepts_the_shipped_definitions() -> None:
    result = lapor("validate", "workflows/", "policies/")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no problems" in result.stdout


def test_validate_reports_each_problem_as_file_line_col(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "workflows", tmp_path / "workflows")
    shutil.copytree(ROOT / "policies", tmp_path / "policies")
    workflow = tmp_path / "workflows" / "sp4n-lapor.yaml"
    workflow.write_text(workflow.read_text().replace("to: in_progress\n", "to: in_progres\n", 1))
    result = lapor("validate", "workflows/", "policies/", cwd=tmp_path)
    assert result.returncode == 1
    lines = [line for line in result.stdout.splitlines() if "in_progres'" in line]
    assert lines, result.stdout
    path, line, col, message = lines[0].split(":", 3)
    assert path.endswith("workflows/sp4n-lapor.yaml") and line.isdigit() and col.isdigit()
    assert "unknown state 'in_progres'" in message
    assert "Traceback" not in result.stderr


def test_deadline_prints_the_due_instant_in_the_region_zone() -> None:
    result = lapor(
        "deadline",
        "--start",
        "2026-03-13T15:00:00+07:00",
        "--duration",
        "3 working days",
        "--region",
        "ID-JK",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "2026-03-25T23:59:59+07:00"


def test_deadline_in_papua_is_printed_in_wit() -> None:
    result = lapor(
        "deadline",
        "--start",
        "2026-08-04T10:00:00+07:00",
        "--duration",
        "5 hari kerja",
        "--region",
        "ID-PA",
    )
    assert result.stdout.strip() == "2026-08-11T23:59:59+09:00"


@pytest.mark.parametrize(
    ("start", "duration", "region", "fragment"),
    [
        ("2026-03-13T15:00:00", "3 working days", "ID-JK", "no UTC offset"),
        ("2026-03-13T15:00:00+07:00", "3 working dayz", "ID-JK", "cannot read duration"),
        ("2026-03-13T15:00:00+07:00", "3 working days", "ID-XX", "ID-XX"),
        ("2029-03-13T15:00:00+07:00", "3 working days", "ID-JK", "no calendar for 2029"),
    ],
)
def test_deadline_mistakes_are_one_line_errors(
    start: str, duration: str, region: str, fragment: str
) -> None:
    result = lapor("deadline", "--start", start, "--duration", duration, "--region", region)
    assert result.returncode == 2
    assert result.stderr.startswith("error: ")
    assert fragment in result.stderr
    assert "Traceback" not in result.stderr


def test_diagram_is_a_mermaid_state_diagram_with_every_state() -> None:
    result = lapor("diagram", "workflows/sp4n-lapor.yaml")
    assert result.returncode == 0, result.stderr
    assert "stateDiagram-v2" in result.stdout
    for state in ("submitted", "disposed", "awaiting_reporter", "referred_to_ombudsman"):
        assert f" as {state}" in result.stdout
    assert "[*] --> submitted" in result.stdout
    assert "closed --> [*]" in result.stdout
    assert "verification: 3 working days" in result.stdout


def test_schema_validates_every_shipped_definition_file() -> None:
    result = lapor("schema")
    assert result.returncode == 0, result.stderr
    schema = json.loads(result.stdout)
    files = [ROOT / "workflows" / "sp4n-lapor.yaml"]
    for kind in ("sla", "escalation", "routing"):
        files += sorted((ROOT / "policies" / kind).glob("*.yaml"))
    assert len(files) >= 4
    for path in files:
        jsonschema.validate(json.loads(json.dumps(load_yaml_file(path))), schema)


def test_schema_rejects_an_unknown_key() -> None:
    schema = json.loads(lapor("schema").stdout)
    document = json.loads(json.dumps(load_yaml_file(ROOT / "policies/sla/sp4n-lapor.yaml")))
    document["clocks"]["verification"]["pauses"] = ["on_hold"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, schema)


def test_simulate_json_prints_the_case_and_its_hash_chained_history() -> None:
    result = lapor("simulate", "policies/tests/auto-close-after-ten-working-days.yaml", "--json")
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["passed"] is True
    assert payload["case"]["state"] == "closed"
    history = payload["history"]
    assert [r["seq"] for r in history] == list(range(1, len(history) + 1))
    assert all(r["prev_hash"] == p["hash"] for p, r in itertools.pairwise(history))


def test_simulate_prints_a_readable_history() -> None:
    result = lapor("simulate", "policies/tests/hold-pauses-verification-across-nyepi.yaml")
    assert result.returncode == 0, result.stderr
    assert "clock verification paused with 2 working days left" in result.stdout
    assert "2026-03-26 23:59:59 WIB" in result.stdout


def test_test_command_fails_on_a_broken_expectation(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "workflows", tmp_path / "workflows")
    shutil.copytree(
        ROOT / "policies", tmp_path / "policies", ignore=shutil.ignore_patterns("tests")
    )
    scenario = (ROOT / "policies/tests/auto-close-after-ten-working-days.yaml").read_text()
    (tmp_path / "policies" / "tests").mkdir()
    (tmp_path / "policies/tests/ok.yaml").write_text(scenario)
    (tmp_path / "policies/tests/broken.yaml").write_text(
        scenario.replace("status: Selesai", "status: Diarsipkan")
    )
    result = lapor("test", "policies/tests/", cwd=tmp_path)
    assert result.returncode == 1
    assert "1 passed, 1 failed" in result.stdout
    assert "expected status 'Diarsipkan', got 'Selesai'" in result.stdout


def test_test_command_runs_every_shipped_scenario() -> None:
    result = lapor("test", "policies/tests/")
    assert result.returncode == 0, result.stdout
    summary = result.stdout.strip().splitlines()[-1]
    passed = int(summary.split()[1])
    assert passed >= 15 and " 0 failed" in summary


def test_an_unreachable_temporal_server_is_one_line_and_exit_status_2() -> None:
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = lapor("status", "LAPOR-X", "--temporal", f"127.0.0.1:{port}")
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"error: cannot reach Temporal at 127.0.0.1:{port}")
    assert "Traceback" not in result.stderr


def _copy_project(folder: Path) -> Path:
    shutil.copytree(ROOT / "workflows", folder / "workflows")
    shutil.copytree(ROOT / "policies", folder / "policies")
    return folder


SHIPPED_NOTE = f"lapor: using project {ROOT} (the definitions shipped with lapor-sla)"


def test_validate_and_test_without_paths_use_the_project_and_say_so_when_elsewhere(
    tmp_path: Path,
) -> None:
    here = lapor("validate")
    assert here.returncode == 0 and "no problems" in here.stdout, here.stdout + here.stderr
    assert here.stderr == ""  # the current directory is the project: nothing to say
    below = lapor("validate", cwd=ROOT / "engine")
    assert below.returncode == 0, below.stdout + below.stderr
    assert below.stderr == f"lapor: using project {ROOT} (found above the current directory)\n"
    tested = lapor("test", cwd=tmp_path)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert tested.stdout.count(" PASSED") >= 15 and " 0 failed" in tested.stdout
    assert tested.stderr == SHIPPED_NOTE + "\n"  # once, however many scenarios


def test_project_option_and_variable_pick_the_project(tmp_path: Path) -> None:
    project = _copy_project(tmp_path / "mine")
    workflow = project / "workflows" / "sp4n-lapor.yaml"
    workflow.write_text(workflow.read_text().replace("to: in_progress\n", "to: in_progres\n", 1))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    given = lapor("validate", "--project", str(project), cwd=elsewhere)
    assert given.returncode == 1 and "unknown state 'in_progres'" in given.stdout
    assert f"lapor: using project {project} (given with --project)" in given.stderr
    from_env = lapor("validate", cwd=elsewhere, env={"LAPOR_PROJECT": str(project)})
    assert from_env.returncode == 1 and "unknown state 'in_progres'" in from_env.stdout
    assert f"lapor: using project {project} (from $LAPOR_PROJECT)" in from_env.stderr
    # Paths given: those are checked, as before.
    assert lapor("validate", "workflows/", "policies/", cwd=ROOT).returncode == 0


def test_deadline_diagram_and_simulate_take_the_project(tmp_path: Path) -> None:
    project = _copy_project(tmp_path / "mine")
    for calendar in (project / "policies" / "calendars").glob("*.yaml"):
        calendar.unlink()  # no calendars: the project's are the ones read
    args = ["--start", "2026-03-13T15:00:00+07:00", "--duration", "3 working days"]
    deadline = lapor("deadline", *args, "--region", "ID-JK", "--project", str(project))
    assert deadline.returncode == 2 and "calendars" in deadline.stderr, deadline.stderr
    shipped = lapor("deadline", *args, "--region", "ID-JK", cwd=tmp_path)
    assert shipped.stdout.strip() == "2026-03-25T23:59:59+07:00", shipped.stderr
    assert shipped.stderr == SHIPPED_NOTE + "\n"
    diagram = lapor("diagram", str(ROOT / "workflows/sp4n-lapor.yaml"), cwd=tmp_path)
    assert diagram.returncode == 0 and "stateDiagram-v2" in diagram.stdout, diagram.stderr
    assert diagram.stderr == f"lapor: using project {ROOT} (found above {ROOT / 'workflows'})\n"
    scenario = tmp_path / "mine-too.yaml"
    shutil.copy(ROOT / "policies/tests/hold-pauses-verification-across-nyepi.yaml", scenario)
    simulated = lapor("simulate", str(scenario), cwd=tmp_path)
    assert simulated.returncode == 0, simulated.stdout + simulated.stderr
    assert "clock verification paused with 2 working days left" in simulated.stdout
    assert simulated.stderr == SHIPPED_NOTE + "\n"


COMMANDS_READING_DEFINITIONS = [
    ["validate"],
    ["test"],
    ["diagram", str(ROOT / "workflows/sp4n-lapor.yaml")],
    ["deadline", "--start", "2026-03-13T15:00:00+07:00", "--duration", "1 hk", "--region", "ID-JK"],
    ["simulate", str(ROOT / "policies/tests/long-hold-never-lapses.yaml")],
    ["start", "--workflow", "sp4n-lapor", "--data", "{}", "--db", "sqlite:///never.db"],
    ["demo", "--complaints", "1", "--memory"],
]


@pytest.mark.parametrize("how", ["--project", "LAPOR_PROJECT"])
@pytest.mark.parametrize("command", COMMANDS_READING_DEFINITIONS, ids=lambda c: c[0])
def test_a_project_that_is_not_one_is_one_line_and_exit_status_2(
    command: list[str], how: str, tmp_path: Path
) -> None:
    if how == "--project":
        result = lapor(*command, "--project", str(tmp_path), cwd=tmp_path)
    else:
        result = lapor(*command, cwd=tmp_path, env={"LAPOR_PROJECT": str(tmp_path)})
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.splitlines() == [
        f"error: {how}: {tmp_path} is not a project folder (it needs workflows/ and policies/)"
    ]
    assert not (tmp_path / "never.db").exists()


def test_validate_finds_what_would_break_a_scenario_before_it_runs(tmp_path: Path) -> None:
    scenario = tmp_path / "broken.yaml"
    scenario.write_text(
        "scenario: a broken one\nworkflow: sp4n-lapor\n"
        'start: {at: "2026-03-02T10:00:00", data: {}, colour: red}\n'
    )
    first = lapor("validate", str(scenario), env={"LAPOR_PROJECT": str(ROOT)})
    assert first.returncode == 1
    assert f"{scenario}:3:" in first.stdout and "unknown key 'colour' in 'start'" in first.stdout
    assert "Extra inputs" not in first.stdout

    scenario.write_text(
        "scenario: a broken one\nworkflow: sp4n-lapor\n"
        'start: {at: "2026-03-02T10:00:00", data: {}}\n'
        "steps:\n"
        '  - {at: "2031-03-03T10:00:00+07:00", signal: verfy, actor: admin:nasional,'
        " expect: {state: dispossed}}\n"
        '  - {at: "2026-03-04T10:00:00+07:00", signal: escalate_now, actor: admin:nasional,'
        " expect: {rejected: unknown_signal}}\n"
    )
    second = lapor("validate", str(scenario), env={"LAPOR_PROJECT": str(ROOT)})
    assert second.returncode == 1
    out = second.stdout
    assert "unknown signal 'verfy'" in out and "did" not in out.split("verfy")[0]
    assert "unknown state 'dispossed'" in out
    assert (
        "has no UTC offset" in out and "2031, which the workflow's calendar does not cover" in out
    )
    assert "escalate_now" not in out  # a step that expects the rejection may send it


def test_a_deadline_on_a_provisional_calendar_year_is_announced() -> None:
    confirmed = lapor("deadline", "--start", "2026-03-02T10:00:00+07:00", "--duration",
                      "3 working days", "--region", "ID-JK")  # fmt: skip
    provisional = lapor("deadline", "--start", "2027-03-01T10:00:00+07:00", "--duration",
                        "3 working days", "--region", "ID-JK")  # fmt: skip
    assert confirmed.returncode == provisional.returncode == 0
    assert "provisional" not in confirmed.stderr
    assert provisional.stdout.strip() == "2027-03-04T23:59:59+07:00"
    assert "2027's calendar is provisional" in provisional.stderr


def test_a_worker_without_a_delivery_handler_refuses_to_start() -> None:
    """Deliver-to-nowhere is never a default: a Temporal delivery cannot wait for a handler."""
    result = lapor("worker", "--temporal", "127.0.0.1:1")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "lapor worker needs --handler" in result.stderr
