"""Checked-in golden histories: replay must reproduce them exactly, hashes included.

Each file ``tests/golden/<scenario>.json`` holds the full history (``HistoryRecord.to_json()`` of
every record, in order) that the scenario ``policies/tests/<scenario>.yaml`` produced on the
in-memory runtime. Two things are checked for each:

* the golden history passes ``engine.domain.history.replay`` under the shipped model (chain
  unbroken, every decision re-derived byte for byte);
* running the scenario again gives exactly the golden records.

A golden file changes only on purpose. Any change to the workflow, a policy, a calendar year or
the record format changes the model hash or the record bytes, and these tests fail; when that
change is intended, regenerate the files and review their diff before committing::

    LAPOR_REGEN_GOLDEN=1 .venv/bin/pytest tests/unit/test_golden_histories.py

Without ``LAPOR_REGEN_GOLDEN=1`` nothing is ever written (``regenerate_golden_histories``).

``tests/golden/semantics-1/`` holds the histories the same scenarios produced under decision
semantics 1 (``engine.domain.events.SEMANTICS``), before lapses to one rung were coalesced. They
are never regenerated: they prove that a case recorded under old rules still re-derives.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from engine.apps.scenarios import load_scenario, run_scenario
from engine.domain.history import replay
from engine.domain.model import Model
from engine.domain.records import RECORD_FORMAT, HistoryRecord

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
SCENARIOS = (
    "completion-lapse-climbs-ladder-to-ombudsman",
    "hold-pauses-verification-across-nyepi",
    "auto-close-after-ten-working-days",
    "not-authority-reroutes-and-restarts-clocks",
    "untouched-case-gets-one-notice-per-rung",
)
SEMANTICS_1 = GOLDEN / "semantics-1"
REGEN_VARIABLE = "LAPOR_REGEN_GOLDEN"


def scenario_records(project_root: Path, models: Mapping[str, Model], name: str) -> list[Any]:
    """Run ``policies/tests/<name>.yaml`` and return its history as plain JSON values."""
    result = run_scenario(project_root / "policies" / "tests" / f"{name}.yaml", models=models)
    assert result.passed, result.failures
    return [record.to_json() for record in result.history]


def regenerate_golden_histories(project_root: Path, models: Mapping[str, Model]) -> None:
    """Rewrite each golden file from a fresh run of its scenario (only if LAPOR_REGEN_GOLDEN=1)."""
    GOLDEN.mkdir(exist_ok=True)
    for name in SCENARIOS:
        records = scenario_records(project_root, models, name)
        text = json.dumps(records, indent=2, ensure_ascii=False) + "\n"
        (GOLDEN / f"{name}.json").write_text(text, encoding="utf-8")


@pytest.fixture(scope="module", autouse=True)
def _regenerate_when_asked(project_root: Path, models: Mapping[str, Model]) -> None:
    if os.environ.get(REGEN_VARIABLE) == "1":
        regenerate_golden_histories(project_root, models)


def golden(name: str) -> list[Any]:
    path = GOLDEN / f"{name}.json"
    assert path.is_file(), f"{path} is missing; create it with {REGEN_VARIABLE}=1 (see docstring)"
    records = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(records, list) and records, f"{path}: expected a non-empty list of records"
    return records


@pytest.mark.parametrize("name", SCENARIOS)
def test_golden_history_replays_ok(model: Model, name: str) -> None:
    records = [HistoryRecord.from_json(r) for r in golden(name)]

    report = replay(model, records)

    assert report.ok, report.problems
    assert report.records == len(records)
    assert report.case is not None and report.case.head == records[-1].hash


@pytest.mark.parametrize("name", SCENARIOS)
def test_scenario_reproduces_its_golden_history_exactly(
    project_root: Path, models: Mapping[str, Model], name: str
) -> None:
    assert scenario_records(project_root, models, name) == golden(name)


@pytest.mark.parametrize("name", SCENARIOS)
def test_golden_history_is_in_the_current_record_format(model: Model, name: str) -> None:
    records = golden(name)

    assert {r["format"] for r in records} == {RECORD_FORMAT}
    assert {r["model_hash"] for r in records} == {model.hash}


def test_golden_files_cover_exactly_the_chosen_scenarios() -> None:
    assert sorted(p.stem for p in GOLDEN.glob("*.json")) == sorted(SCENARIOS)


@pytest.mark.parametrize("name", SCENARIOS)
def test_golden_history_holds_no_reporter_identity(project_root: Path, name: str) -> None:
    scenario = load_scenario(project_root / "policies" / "tests" / f"{name}.yaml")
    text = (GOLDEN / f"{name}.json").read_text(encoding="utf-8")

    for value in scenario.start.reporter.values():
        assert str(value) not in text


@pytest.mark.parametrize("path", sorted(SEMANTICS_1.glob("*.json")), ids=lambda p: p.stem)
def test_history_recorded_under_semantics_one_still_replays(model: Model, path: Path) -> None:
    records = [HistoryRecord.from_json(r) for r in json.loads(path.read_text(encoding="utf-8"))]

    report = replay(model, records)

    assert report.ok, report.problems
    assert report.case is not None and report.case.semantics == 1
    assert "semantics" not in records[0].event


def test_semantics_one_goldens_are_kept() -> None:
    assert len(list(SEMANTICS_1.glob("*.json"))) == 4
