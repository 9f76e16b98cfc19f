"""The runtime contract (``engine.runtime.contract``), held on every runtime alike.

Each test runs on memory, SQLite, PostgreSQL and Temporal (``conftest.runtime_factory``). The
in-memory runtime is the reference: where a test compares, the others must record exactly what it
records, hashes included.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from engine.apps.scenarios import run_scenario
from engine.domain.events import Actor, Signal, instant
from engine.domain.model import Model
from engine.runtime.clock import VirtualClock
from engine.runtime.contract import Runtime, keyed_case_id
from engine.runtime.errors import KeyReuseError, UnknownCaseError, UnknownWorkflowError
from engine.runtime.memory import MemoryRuntime
from tests.contract.conftest import Factory
from tests.recorder import Recorder

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = sorted((ROOT / "policies" / "tests").glob("*.yaml"))
WORKFLOW = "sp4n-lapor"
T0 = instant("2026-03-02T10:00:00+07:00")
INTAKE = {"category": "kesehatan", "region": "ID-JK", "channel": "sms_1708", "description": "x"}
OTHER = {**INTAKE, "description": "another complaint"}
REPORTER = {"name": "Siti Rahmawati", "phone": "081298765432"}
ADMIN = Actor.parse("admin:nasional")
VERIFY = Signal("verify", ADMIN, {"agency": "kemenkes"})


def delivered(recorder: Recorder) -> list[tuple[str, str, str, str]]:
    """What was delivered, as (idempotency key, kind, target, payload JSON), in key order."""
    return sorted(
        (m.idempotency_key, m.kind, m.target, json.dumps(m.payload, sort_keys=True))
        for m in recorder.messages
    )


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_every_policy_scenario_records_the_reference_history(
    path: Path, runtime_factory: Factory, models: Mapping[str, Model]
) -> None:
    reference = run_scenario(path, models=models)
    assert reference.passed, reference.failures

    result = run_scenario(path, runtime_factory, models)

    assert result.passed, result.failures
    assert [r.to_json() for r in result.history] == [r.to_json() for r in reference.history]
    assert result.case == reference.case


def test_every_shipped_scenario_is_covered() -> None:
    assert len(SCENARIOS) >= 20


def test_a_retried_keyed_start_answers_the_first_case(
    runtime_factory: Factory, models: Mapping[str, Model]
) -> None:
    runtime = runtime_factory(models, T0)
    case_id = keyed_case_id("web-123")
    first = runtime.start(WORKFLOW, case_id, INTAKE, key="web-123", at=T0)
    again = runtime.start(WORKFLOW, case_id, INTAKE, key="web-123", at=T0 + timedelta(minutes=1))

    assert first.accepted and not first.replayed
    assert again.replayed and again.case_id == case_id and again.seq == 1
    assert again.record == first.record
    assert len(runtime.history(case_id)) == 1


def test_a_key_reused_for_another_complaint_is_refused(
    runtime_factory: Factory, models: Mapping[str, Model]
) -> None:
    runtime = runtime_factory(models, T0)
    case_id = keyed_case_id("web-456")
    runtime.start(WORKFLOW, case_id, INTAKE, key="web-456", at=T0)

    with pytest.raises(KeyReuseError, match="different request"):
        runtime.start(WORKFLOW, case_id, OTHER, key="web-456", at=T0 + timedelta(minutes=1))
    assert runtime.case(case_id).data["description"] == "x"
    assert len(runtime.history(case_id)) == 1


def test_a_retried_keyed_signal_is_applied_once(
    runtime_factory: Factory, models: Mapping[str, Model]
) -> None:
    runtime = runtime_factory(models, T0)
    runtime.start(WORKFLOW, "LAPOR-C-1", INTAKE, at=T0)
    keyed = Signal("verify", ADMIN, {"agency": "kemenkes"}, key="verify-1")

    first = runtime.signal("LAPOR-C-1", keyed, at=T0 + timedelta(hours=1))
    again = runtime.signal("LAPOR-C-1", keyed, at=T0 + timedelta(hours=2))

    assert first.accepted and not first.replayed and first.seq == 2
    assert again.replayed and again.seq == 2 and again.record == first.record
    assert [r.seq for r in runtime.history("LAPOR-C-1")] == [1, 2]


def test_a_signal_key_reused_for_another_signal_is_refused(
    runtime_factory: Factory, models: Mapping[str, Model]
) -> None:
    runtime = runtime_factory(models, T0)
    runtime.start(WORKFLOW, "LAPOR-C-2", INTAKE, at=T0)
    runtime.signal("LAPOR-C-2", Signal("verify", ADMIN, {"agency": "kemenkes"}, key="k"), at=T0)
    other = Signal("verify", ADMIN, {"agency": "kemendikbud"}, key="k")

    with pytest.raises(KeyReuseError):
        runtime.signal("LAPOR-C-2", other, at=T0 + timedelta(hours=1))
    assert runtime.case("LAPOR-C-2").agency == "kemenkes"
    assert len(runtime.history("LAPOR-C-2")) == 2


def test_the_reporter_identity_is_kept_apart_from_the_case(
    runtime_factory: Factory, models: Mapping[str, Model]
) -> None:
    recorder = Recorder()
    runtime = runtime_factory(models, T0, handlers=[recorder])
    runtime.start(WORKFLOW, "LAPOR-C-3", INTAKE, reporter=REPORTER, at=T0)
    runtime.signal("LAPOR-C-3", VERIFY, at=T0 + timedelta(hours=1))
    runtime.deliver(T0 + timedelta(hours=1))

    assert runtime.reporter("LAPOR-C-3") == REPORTER
    seen = json.dumps(
        [
            runtime.case("LAPOR-C-3").to_json(),
            [r.to_json() for r in runtime.history("LAPOR-C-3")],
            [m.payload for m in recorder.messages],
        ]
    )
    assert "Siti" not in seen and "0812" not in seen


def test_every_world_facing_effect_reaches_the_handler_once_with_its_key(
    runtime_factory: Factory, models: Mapping[str, Model]
) -> None:
    def drive(runtime: Runtime) -> None:
        runtime.start(WORKFLOW, "LAPOR-C-4", INTAKE, at=T0)
        runtime.signal("LAPOR-C-4", VERIFY, at=T0 + timedelta(hours=1))
        runtime.advance_to(instant("2026-03-20T00:00:00+07:00"))  # follow-up lapses, escalates
        runtime.deliver(instant("2026-03-20T00:00:00+07:00"))
        runtime.deliver(instant("2026-03-20T00:00:00+07:00"))  # nothing twice

    expected = Recorder()
    drive(MemoryRuntime(models, VirtualClock(T0), handlers=[expected]))
    recorder = Recorder()
    runtime = runtime_factory(models, T0, handlers=[recorder])
    drive(runtime)

    assert {m.kind for m in expected.messages} >= {"notify", "routed", "escalated"}
    assert delivered(recorder) == delivered(expected)
    records = {r.seq: r for r in runtime.history("LAPOR-C-4")}
    for message in recorder.messages:
        case_id, seq, index = message.idempotency_key.split(":")
        assert case_id == "LAPOR-C-4"
        assert records[int(seq)].effects[int(index)]["kind"] == message.kind


def test_a_rejected_signal_changes_nothing(
    runtime_factory: Factory, models: Mapping[str, Model]
) -> None:
    runtime = runtime_factory(models, T0)
    token = runtime.start(WORKFLOW, "LAPOR-C-5", INTAKE, at=T0).reporter_token
    before = [r.to_json() for r in runtime.history("LAPOR-C-5")]

    wrong_role = runtime.signal(
        "LAPOR-C-5", Signal("verify", Actor.parse("agency:kemenkes"), {}), at=T0
    )
    confirm = Signal("confirm", Actor.parse("reporter"), {})
    wrong_state = runtime.signal("LAPOR-C-5", confirm, at=T0, reporter_token=token)

    assert (wrong_role.accepted, wrong_role.code) == (False, "wrong_role")
    assert (wrong_state.accepted, wrong_state.code) == (False, "wrong_state")
    assert wrong_role.reason and "admin" in wrong_role.reason
    assert [r.to_json() for r in runtime.history("LAPOR-C-5")] == before
    assert runtime.case("LAPOR-C-5").state == "submitted"


def test_a_refused_start_records_nothing_and_its_id_stays_free(
    runtime_factory: Factory, models: Mapping[str, Model]
) -> None:
    runtime = runtime_factory(models, T0)
    refused = runtime.start(WORKFLOW, "LAPOR-C-6", {"region": "ID-JK"}, at=T0)
    assert (refused.accepted, refused.code) == (False, "missing_field")
    with pytest.raises(UnknownCaseError):
        runtime.case("LAPOR-C-6")

    corrected = runtime.start(WORKFLOW, "LAPOR-C-6", INTAKE, at=T0 + timedelta(minutes=1))
    twice = runtime.start(WORKFLOW, "LAPOR-C-6", INTAKE, at=T0 + timedelta(minutes=2))

    assert corrected.accepted and corrected.seq == 1
    assert (twice.accepted, twice.code) == (False, "already_started")


def test_an_unknown_case_or_workflow_is_an_error_not_a_rejection(
    runtime_factory: Factory, models: Mapping[str, Model]
) -> None:
    runtime = runtime_factory(models, T0)
    with pytest.raises(UnknownCaseError, match="LAPOR-NOPE"):
        runtime.signal("LAPOR-NOPE", VERIFY, at=T0)
    with pytest.raises(UnknownCaseError):
        runtime.case("LAPOR-NOPE")
    with pytest.raises(UnknownCaseError):
        runtime.history("LAPOR-NOPE")
    with pytest.raises(UnknownWorkflowError, match="known: sp4n-lapor"):
        runtime.start("sp4n-lapro", "LAPOR-C-7", INTAKE, at=T0)


def _identity_in(value: Any) -> bool:
    return "Siti" in value or "081298765432" in value


@pytest.mark.parametrize("runtime_kind", ["temporal"], indirect=True)
def test_on_temporal_the_identity_never_reaches_the_server_in_clear(
    runtime_factory: Factory, models: Mapping[str, Model], harness: Any
) -> None:
    runtime = runtime_factory(models, T0)
    runtime.start(WORKFLOW, "LAPOR-C-8", INTAKE, reporter=REPORTER, at=T0)
    runtime.signal("LAPOR-C-8", VERIFY, at=T0 + timedelta(hours=1))

    history = runtime.run_history("LAPOR-C-8", runtime.current_run_id("LAPOR-C-8"))  # type: ignore[attr-defined]
    assert not _identity_in(history.to_json())
    assert runtime.reporter("LAPOR-C-8") == REPORTER
