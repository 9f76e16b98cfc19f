"""A project whose only workflow is a BPMN file: `lapor` validates it and runs cases of it
directly, no import step."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from tests.lapor_process import lapor as run_lapor

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "bpmn" / "permit-span-race-ladder.bpmn"


def lapor(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_lapor(*args, cwd=cwd, env={"LAPOR_IDENTITY_KEY": ""})


def test_a_bpmn_workflow_in_a_project_validates_and_runs_cases(tmp_path: Path) -> None:
    (tmp_path / "workflows").mkdir()
    shutil.copy(FIXTURE, tmp_path / "workflows" / "permit.bpmn")
    shutil.copytree(ROOT / "policies" / "calendars", tmp_path / "policies" / "calendars")

    checked = lapor("validate", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert lapor("db", "upgrade", cwd=tmp_path).returncode == 0
    started = lapor("start", "--workflow", "permit", "--data", '{"region": "ID-JK"}',
                    "--case-id", "P-1", cwd=tmp_path)  # fmt: skip
    assert started.returncode == 0, started.stderr
    reviewed = lapor("signal", "P-1", "review", "--actor", "officer", cwd=tmp_path)
    assert reviewed.returncode == 0 and "inspect" in reviewed.stdout, reviewed.stderr
    status = json.loads(lapor("status", "P-1", "--json", cwd=tmp_path).stdout)
    assert status["state"] == "inspect"
    assert [c["name"] for c in status["clocks"]] == ["handling_late"]
