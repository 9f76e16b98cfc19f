"""Same scenario, same history: every policy scenario passes on every runtime, and each durable
runtime records exactly the decisions (hashes included) the in-memory reference runtime records.

Runtimes are a parametrized fixture: a new runtime (Temporal) is one more entry in ``RUNTIMES``
and one more branch in ``runtime_factory``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path

import pytest

from engine.migrations import upgrade
from engine.model import Model
from engine.runtime.clock import VirtualClock
from engine.runtime.embedded import EmbeddedRuntime
from engine.runtime.memory import MemoryRuntime
from engine.runtime.store import open_engine
from engine.scenario import ScenarioRuntime, run_scenario

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = sorted((ROOT / "policies" / "tests").glob("*.yaml"))
RUNTIMES = ["memory", "sqlite", "postgresql"]

Factory = Callable[[Mapping[str, Model], datetime], ScenarioRuntime]


@pytest.fixture(params=RUNTIMES)
def runtime_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Factory:
    """``factory(models, start)`` for the runtime under test, on a virtual clock at ``start``."""
    if request.param == "memory":
        return lambda models, start: MemoryRuntime(models, VirtualClock(start))
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'lapor.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    upgrade(url)
    engine = open_engine(url)
    request.addfinalizer(engine.dispose)
    return lambda models, start: EmbeddedRuntime(engine, models, VirtualClock(start))


def test_every_shipped_scenario_is_covered() -> None:
    assert len(SCENARIOS) >= 20


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_scenario_records_the_reference_history(
    path: Path, runtime_factory: Factory, models: Mapping[str, Model]
) -> None:
    reference = run_scenario(path, models=models)
    assert reference.passed, reference.failures

    result = run_scenario(path, runtime_factory, models)

    assert result.passed, result.failures
    assert [r.to_json() for r in result.history] == [r.to_json() for r in reference.history]
    assert result.case == reference.case
