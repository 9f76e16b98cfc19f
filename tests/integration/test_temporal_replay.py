"""Determinism: ``CaseWorkflow`` histories replay with ``temporalio.worker.Replayer``.

1. Fresh histories: a few policy scenarios run on the Java time-skipping server through
   ``TimeSkippingHarness``; each case's Temporal history (every run of the chain, following
   continue-as-new) is fetched and replayed against ``CaseWorkflow`` with the same sandbox
   settings as the harness worker (``workers.worker.case_worker``). Replay must not fail.
2. Checked-in histories: ``tests/golden/temporal/`` holds histories recorded by earlier builds
   (``WorkflowHistory.to_json()``), one per workflow version (``GOLDENS``); every one must replay
   against today's ``CaseWorkflow``. A change to the workflow's command sequence (timers,
   activities, update handling, search-attribute upserts) breaks this test: such a change needs a
   versioning plan (``workflow.patched``) for in-flight cases and a *new* golden file beside the
   old ones, never a regenerated old one.
3. Negative control: the same checked-in histories replayed against a deliberately different
   definition (registered under the name ``CaseWorkflow``, with an extra timer first) must raise
   ``temporalio.workflow.NondeterminismError``, proving the check above can fail.

Recording the golden history of the current version (after adding it to ``GOLDENS`` as
``CURRENT``)::

    LAPOR_REGEN_GOLDEN=1 .venv/bin/pytest -q tests/integration/test_temporal_replay.py

The fresh-history test then writes ``tests/golden/temporal/<CURRENT>.json``; without the variable
nothing under ``tests/golden`` is written, and older versions' files are never written at all.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from temporalio import workflow

# The workflow sandbox re-imports this module; pass the non-workflow imports through unchanged.
with workflow.unsafe.imports_passed_through():
    import pytest
    from temporalio.api.enums.v1 import EventType
    from temporalio.client import WorkflowHistory
    from temporalio.worker import Replayer
    from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

    from engine.apps.scenarios import run_scenario
    from engine.domain.model import Model
    from workers import search_attributes
    from workers.runtime import TemporalRuntime
    from workers.testing import TimeSkippingHarness
    from workers.workflow import (
        CASE_LIST_PATCH,
        PASSTHROUGH_MODULES,
        SEARCH_ATTRIBUTES_PATCH,
        CaseInput,
        CaseWorkflow,
    )

pytestmark = [pytest.mark.temporal, pytest.mark.usefixtures("temporal_servers")]

# No filesystem or environment access at import time: the sandbox re-imports this module (for
# ``DriftedCaseWorkflow``) and restricts both; paths and flags are computed in the tests.

SCENARIOS = [
    "completion-lapse-climbs-ladder-to-ombudsman",
    "hold-pauses-verification-across-nyepi",
    "dispute-reopens-follow-up",
]
#: The scenario whose history is checked in.
GOLDEN = "completion-lapse-climbs-ladder-to-ombudsman"
#: Checked-in histories (file stems) by the workflow version that recorded them, oldest first,
#: with the patches each recorded: none before search attributes, then ``SEARCH_ATTRIBUTES_PATCH``
#: (six attributes), then ``CASE_LIST_PATCH`` too (the case list's three more).
GOLDENS: dict[str, frozenset[str]] = {
    GOLDEN: frozenset(),  # before search attributes
    f"{GOLDEN}.search-attributes": frozenset({SEARCH_ATTRIBUTES_PATCH}),
    f"{GOLDEN}.case-list": frozenset({SEARCH_ATTRIBUTES_PATCH, CASE_LIST_PATCH}),
}
#: The version today's workflow records (the only file LAPOR_REGEN_GOLDEN=1 writes).
CURRENT = f"{GOLDEN}.case-list"


def _root() -> Path:
    return Path(__file__).resolve().parents[2]


def _golden_dir() -> Path:
    return _root() / "tests" / "golden" / "temporal"


def _regen() -> bool:
    return os.environ.get("LAPOR_REGEN_GOLDEN") == "1"


@workflow.defn(name="CaseWorkflow")
class DriftedCaseWorkflow(CaseWorkflow):
    """``CaseWorkflow`` as a careless edit might leave it: one extra timer before anything else.

    Same name, same handlers, a different command sequence: a history recorded by the real
    workflow must not replay against it.
    """

    @workflow.run
    async def run(self, params: CaseInput) -> dict[str, Any]:
        await workflow.sleep(timedelta(seconds=1))
        return await super().run(params)


@workflow.defn(name="CaseWorkflow")
class UnindexedCaseWorkflow(CaseWorkflow):
    """``CaseWorkflow`` with the search-attribute upserts removed but the patch marker kept."""

    @workflow.run
    async def run(self, params: CaseInput) -> dict[str, Any]:
        return await super().run(params)

    def _index(self) -> None:
        return None


def _replayer(workflow_class: type) -> Replayer:
    """A replayer with the harness worker's sandbox settings (``workers.worker.case_worker``)."""
    restrictions = SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH_MODULES)
    return Replayer(
        workflows=[workflow_class],
        workflow_runner=SandboxedWorkflowRunner(restrictions=restrictions),
    )


def _replay(workflow_class: type, history: WorkflowHistory) -> None:
    asyncio.run(_replayer(workflow_class).replay_workflow(history, raise_on_replay_failure=True))


async def _fetch_chain(
    harness: TimeSkippingHarness, case_id: str, first_run_id: str
) -> list[WorkflowHistory]:
    """Every run's history, first to latest, following continue-as-new."""
    assert harness.env is not None
    chain: list[WorkflowHistory] = []
    run_id: str | None = first_run_id
    while run_id:
        handle = harness.env.client.get_workflow_handle(case_id, run_id=run_id)
        history = await handle.fetch_history()
        chain.append(history)
        last = history.events[-1]
        run_id = None
        if last.HasField("workflow_execution_continued_as_new_event_attributes"):
            run_id = last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
    return chain


@pytest.fixture
def harness(temporal_servers: object) -> Iterator[TimeSkippingHarness]:
    """A server per test: these tests run the same scenarios, and a case id stays used."""
    with TimeSkippingHarness() as running:
        yield running


def _golden_path(name: str) -> Path:
    return _golden_dir() / f"{name}.json"


def _golden(name: str) -> WorkflowHistory:
    path = _golden_path(name)
    if not path.exists():
        hint = "record it with LAPOR_REGEN_GOLDEN=1" if name == CURRENT else "restore it from git"
        pytest.fail(f"{path} is missing; {hint}")
    return WorkflowHistory.from_json(name, path.read_text(encoding="utf-8"))


def _event_types(history: WorkflowHistory) -> set[int]:
    return {event.event_type for event in history.events}


def _patches(history: WorkflowHistory) -> set[str]:
    """The ids of the ``workflow.patched`` markers recorded in ``history``."""
    found: set[str] = set()
    for event in history.events:
        if event.event_type != EventType.EVENT_TYPE_MARKER_RECORDED:
            continue
        details = event.marker_recorded_event_attributes.details
        if "patch-data" in details:  # the SDK's own marker ("core_patch")
            found.add(json.loads(details["patch-data"].payloads[0].data)["id"])
    return found


def _upserted(history: WorkflowHistory) -> set[str]:
    """The names of the search attributes ``history``'s upserts set."""
    found: set[str] = set()
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
            attributes = event.upsert_workflow_search_attributes_event_attributes
            found |= set(attributes.search_attributes.indexed_fields)
    return found


@pytest.mark.parametrize("stem", SCENARIOS)
def test_fresh_history_replays(
    stem: str, harness: TimeSkippingHarness, models: Mapping[str, Model]
) -> None:
    result = run_scenario(_root() / "policies" / "tests" / f"{stem}.yaml", harness.factory, models)
    assert result.passed, result.failures
    runtime = harness.last_runtime
    assert runtime is not None and result.case is not None
    case_id = result.case.id

    chain = harness.run(_fetch_chain(harness, case_id, runtime.first_run_ids[case_id]))

    assert chain and all(h.events for h in chain)
    for history in chain:
        _replay(CaseWorkflow, history)  # raises NondeterminismError on drift
    if _regen() and stem == GOLDEN:
        assert len(chain) == 1, "the golden scenario must not continue as new"
        _golden_dir().mkdir(parents=True, exist_ok=True)
        _golden_path(CURRENT).write_text(chain[0].to_json() + "\n", encoding="utf-8")


def test_continued_chain_replays_run_by_run(
    harness: TimeSkippingHarness, models: Mapping[str, Model]
) -> None:
    """Continuing as new after every 2 records: each run of the chain replays on its own."""
    stem = "dispute-reopens-follow-up"

    def factory(models: Mapping[str, Model], start: datetime) -> TemporalRuntime:
        return harness.factory(models, start, continue_after=2, history_keep=1000)

    result = run_scenario(_root() / "policies" / "tests" / f"{stem}.yaml", factory, models)
    assert result.passed, result.failures
    runtime = harness.last_runtime
    assert runtime is not None and result.case is not None
    case_id = result.case.id

    chain = harness.run(_fetch_chain(harness, case_id, runtime.first_run_ids[case_id]))

    assert len(chain) > 1
    assert len({h.run_id for h in chain}) == len(chain)
    for history in chain:
        _replay(CaseWorkflow, history)


@pytest.mark.parametrize("name", list(GOLDENS))
def test_checked_in_history_replays(name: str) -> None:
    history = _golden(name)
    assert len(history.events) > 10
    # Each file exercises the code path it stands for: the unpatched one (no marker, no upsert),
    # the six attributes only, or the case list's too.
    patches = GOLDENS[name]
    upserts = EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES in _event_types(history)
    assert upserts == (SEARCH_ATTRIBUTES_PATCH in patches)
    assert _patches(history) & {SEARCH_ATTRIBUTES_PATCH, CASE_LIST_PATCH} == patches
    upserted = _upserted(history)
    assert (search_attributes.OPENED_AT.name in upserted) == (CASE_LIST_PATCH in patches)
    _replay(CaseWorkflow, history)


@pytest.mark.parametrize("name", list(GOLDENS))
def test_checked_in_history_rejects_a_drifted_workflow(name: str) -> None:
    """Negative control: the replay check does fail when the command sequence changes."""
    history = _golden(name)
    with pytest.raises(workflow.NondeterminismError):
        _replay(DriftedCaseWorkflow, history)


def test_a_patched_history_does_not_replay_without_its_upserts() -> None:
    """The search-attribute upserts are commands: a workflow that drops them is caught too."""
    history = _golden(CURRENT)
    with pytest.raises(workflow.NondeterminismError):
        _replay(UnindexedCaseWorkflow, history)
