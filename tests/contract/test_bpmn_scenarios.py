"""Every shipped policy scenario, run on the model read from ``workflows/sp4n-lapor.bpmn``,
records exactly the history the YAML workflow records, on the embedded and Temporal runtimes."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from engine.apps.scenarios import run_scenario
from engine.definitions.loader import load_bpmn_model
from engine.domain.model import Model
from tests.contract.conftest import KEYRING, Factory

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = sorted((ROOT / "policies" / "tests").glob("*.yaml"))


@pytest.fixture(scope="module")
def harness(temporal_servers: object) -> Iterator[Any]:
    """A time-skipping server of this module's own: the scenarios' case ids are fixed, and the
    contract suite's server already holds workflows under them."""
    from workers.testing import TimeSkippingHarness

    with TimeSkippingHarness(keyring=KEYRING) as running:
        yield running


@pytest.fixture(scope="module")
def bpmn_models() -> dict[str, Model]:
    model = load_bpmn_model(ROOT / "workflows" / "sp4n-lapor.bpmn", ROOT / "policies")
    return {model.name: model}


@pytest.mark.parametrize("runtime_kind", ["sqlite", "temporal"], indirect=True)
@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_a_scenario_run_from_the_bpmn_decides_as_the_yaml_does(
    path: Path,
    runtime_factory: Factory,
    models: Mapping[str, Model],
    bpmn_models: dict[str, Model],
) -> None:
    reference = run_scenario(path, models=models)

    result = run_scenario(path, runtime_factory, bpmn_models)

    assert result.passed, result.failures
    assert [r.to_json() for r in result.history] == [r.to_json() for r in reference.history]
