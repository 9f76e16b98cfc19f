"""What only Temporal has: continue-as-new keeps every decision, on the time-skipping server.

Every policy scenario runs on Temporal in the contract suite (``tests/contract/``); here the same
scenarios are run again with runs continuing as new after every two records.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from engine.apps.scenarios import run_scenario
from engine.domain.events import Actor, Signal
from engine.domain.model import Model
from workers.runtime import TemporalRuntime
from workers.testing import TimeSkippingHarness

pytestmark = [pytest.mark.temporal, pytest.mark.usefixtures("temporal_servers")]

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = sorted((ROOT / "policies" / "tests").glob("*.yaml"))


@pytest.fixture
def harness(temporal_servers: object) -> Iterator[TimeSkippingHarness]:
    """A time-skipping server per test: the tests run the same scenarios (the same case ids),
    and a case id, once used, stays used."""
    with TimeSkippingHarness() as running:
        yield running


CONTINUED = ["completion-lapse-climbs-ladder-to-ombudsman", "dispute-reopens-follow-up"]


@pytest.mark.parametrize("stem", CONTINUED)
def test_continue_as_new_keeps_the_same_history(
    stem: str, harness: TimeSkippingHarness, models: Mapping[str, Model]
) -> None:
    """Continuing as new after every 2 records (carrying the whole tail) changes no decision."""
    path = ROOT / "policies" / "tests" / f"{stem}.yaml"
    reference = run_scenario(path, models=models)

    def factory(models: Mapping[str, Model], start: datetime) -> TemporalRuntime:
        return harness.factory(models, start, continue_after=2, history_keep=1000)

    result = run_scenario(path, factory, models)

    assert result.passed, result.failures
    assert [r.to_json() for r in result.history] == [r.to_json() for r in reference.history]
    runtime = harness.last_runtime
    assert runtime is not None and result.case is not None
    assert runtime.current_run_id(result.case.id) != runtime.first_run_ids[result.case.id]


def test_history_keep_bounds_what_a_continued_run_carries(
    harness: TimeSkippingHarness, models: Mapping[str, Model]
) -> None:
    path = ROOT / "policies" / "tests" / "completion-lapse-climbs-ladder-to-ombudsman.yaml"
    reference = run_scenario(path, models=models)

    def factory(models: Mapping[str, Model], start: datetime) -> TemporalRuntime:
        return harness.factory(models, start, continue_after=2, history_keep=2)

    result = run_scenario(path, factory, models)
    runtime = harness.last_runtime
    assert runtime is not None and result.case is not None
    tail = runtime.run_records(result.case.id)[-1][1]  # what the latest run carries
    assert result.case == reference.case
    assert 0 < len(tail) <= 2 + 2 < len(reference.history)
    assert tail == [r.to_json() for r in reference.history][-len(tail) :]
    # ... while the case's history is still every record, read across the runs.
    assert [r.to_json() for r in result.history] == [r.to_json() for r in reference.history]


def test_illegal_signal_is_refused_synchronously_and_leaves_history_unchanged(
    harness: TimeSkippingHarness, models: Mapping[str, Model]
) -> None:
    start = datetime(2026, 3, 2, 10, tzinfo=UTC)
    runtime = harness.factory(models, start)
    data = {"category": "kesehatan", "region": "ID-JK", "channel": "web", "description": "x"}
    started = runtime.start("sp4n-lapor", "LAPOR-TMP-REFUSE", data, at=start)
    assert started.accepted
    before = [r.to_json() for r in runtime.history("LAPOR-TMP-REFUSE")]

    decision = runtime.signal(
        "LAPOR-TMP-REFUSE",
        Signal("confirm", Actor.parse("reporter")),
        at=start + timedelta(hours=1),
        reporter_token=started.reporter_token,
    )

    assert decision.rejection is not None and decision.rejection.code == "wrong_state"
    assert [r.to_json() for r in runtime.history("LAPOR-TMP-REFUSE")] == before
    refused = runtime.start("sp4n-lapor", "LAPOR-TMP-REFUSE-2", {"region": "ID-JK"}, at=start)
    assert refused.rejection is not None and refused.rejection.code == "missing_field"
