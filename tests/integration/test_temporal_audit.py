"""``lapor audit replay`` and the full history across continue-as-new, on the real dev server.

The dev server and a worker run as processes (``lapor temporal dev``, ``lapor worker``), as an
operator runs them. A case is started directly with the Temporal client so that each run continues
as new after 2 records of its own, carrying only the last record: its 9 records are spread over 4
runs, and only the union of the runs holds the whole chain. Its signals follow each other as fast
as the client can send them, so some reach a run in its very first workflow task.

1. ``TemporalRuntime.history`` (``lapor history``, plain ``lapor audit``) returns every record from
   seq 1, not only the latest run's tail.
2. ``lapor audit replay`` replays each run with Temporal's ``Replayer`` and passes; plain
   ``lapor audit CASE`` still works beside it.
3. It fails, with ``PROBLEM`` lines, when a run does not replay against the workflow (a
   deliberately changed ``CaseWorkflow``), when records were tampered with (a run started with a
   forged tail), and with exit status 2 for an unknown case; a query no worker answers is an
   error that says so.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator, Mapping
from datetime import timedelta
from typing import Any

from temporalio import workflow

# The workflow sandbox re-imports this module (for ``DriftedCaseWorkflow``); pass the non-workflow
# imports through unchanged, and touch no file or environment at import time.
with workflow.unsafe.imports_passed_through():
    import pytest
    from temporalio.client import Client as TemporalClient
    from typer.testing import CliRunner

    from engine.domain.errors import LaporError
    from engine.domain.model import Model
    from engine.faces.cli.main import app, main
    from engine.faces.sdk import Client
    from tests.integration.devserver import dev_server, start_worker, stop
    from workers.audit import audit_replay
    from workers.connection import TemporalTarget
    from workers.runtime import TemporalRuntime
    from workers.workflow import CaseInput, CaseWorkflow

pytestmark = [pytest.mark.temporal, pytest.mark.usefixtures("temporal_servers")]

INTAKE = {"category": "kesehatan", "region": "ID-JK", "channel": "web", "description": "x"}
QUEUE = "lapor-audit"
#: verify, then rounds of answer and reaction until the reporter confirms: 9 records in all.
SIGNALS: list[tuple[str, str, dict[str, Any]]] = [
    ("verify", "admin:nasional", {"agency": "kemenkes"}),
    ("follow_up", "agency:kemenkes", {"response": "Sedang ditindaklanjuti"}),
    ("complete", "agency:kemenkes", {"response": "Selesai"}),
    ("dispute", "reporter", {"reason": "Belum selesai"}),
    ("complete", "agency:kemenkes", {"response": "Sudah diperbaiki"}),
    ("reply", "reporter", {"message": "Masih ada antrean"}),
    ("complete", "agency:kemenkes", {"response": "Antrean diurai"}),
    ("confirm", "reporter", {"rating": 5}),
]
RECORDS = 1 + len(SIGNALS)
#: continue_after=2 new records per run, history_keep=1 carried: records 1-3, 4-5, 6-7, 8-9.
RUNS = 4


@workflow.defn(name="CaseWorkflow")
class DriftedCaseWorkflow(CaseWorkflow):
    """``CaseWorkflow`` as a careless edit might leave it: one extra timer before anything else."""

    @workflow.run
    async def run(self, params: CaseInput) -> dict[str, Any]:
        await workflow.sleep(timedelta(seconds=1))
        return await super().run(params)


@pytest.fixture(scope="module")
def address(tmp_path_factory: pytest.TempPathFactory, temporal_servers: object) -> Iterator[str]:
    with dev_server(tmp_path_factory.mktemp("dev")) as served:
        worker = start_worker(served, QUEUE)
        try:
            yield served
        finally:
            stop(worker)


async def _start(address: str, params: CaseInput, *, queue: str = QUEUE) -> None:
    """Start a case workflow directly: ``TemporalRuntime`` has no continue-as-new knobs."""
    client = await TemporalClient.connect(address)
    handle = await client.start_workflow(
        CaseWorkflow.run, params, id=params.case_id, task_queue=queue
    )
    if queue == QUEUE:
        outcome = await handle.execute_update(CaseWorkflow.started)
        assert "case" in outcome, outcome


@pytest.fixture(scope="module")
def continued(address: str, models: Mapping[str, Model]) -> str:
    """A case driven to its close across ``RUNS`` runs; returns its id."""
    case_id = "LAPOR-AUDIT-CONTINUED"
    model_json = json.dumps(models["sp4n-lapor"].to_data())
    params = CaseInput(model_json, case_id, dict(INTAKE), continue_after=2, history_keep=1)
    asyncio.run(_start(address, params))
    runtime = TemporalRuntime.connect(TemporalTarget(address, task_queue=QUEUE))
    with Client(runtime=runtime) as client:
        token = runtime.keyring.reporter_token(case_id)  # type: ignore[union-attr]
        for name, actor, data in SIGNALS:
            result = client.signal(case_id, name, actor=actor, data=data, reporter_token=token)
            assert result.accepted, (name, result)
    return case_id


def test_history_holds_every_record_across_runs(address: str, continued: str) -> None:
    backend = TemporalRuntime.connect(TemporalTarget(address))
    try:
        run_ids = backend.run_ids(continued)
        latest_tail = backend.run(
            backend.client.get_workflow_handle(continued).query(CaseWorkflow.history)
        )
        records = backend.history(continued)
    finally:
        backend.close()

    assert len(run_ids) == RUNS and len(set(run_ids)) == RUNS
    assert len(latest_tail) < RECORDS  # the latest run alone holds only its tail
    assert [r.seq for r in records] == list(range(1, RECORDS + 1))
    assert records[-1].event["name"] == "confirm"

    lapor = CliRunner()
    shown = lapor.invoke(app, ["history", continued, "--temporal", address, "--json"])
    assert shown.exit_code == 0, shown.output
    assert [r["seq"] for r in json.loads(shown.output)] == list(range(1, RECORDS + 1))


def test_audit_replay_passes_and_plain_audit_still_works(address: str, continued: str) -> None:
    lapor = CliRunner()

    replayed = lapor.invoke(app, ["audit", "replay", continued, "--temporal", address])
    plain = lapor.invoke(app, ["audit", continued, "--temporal", address])

    assert replayed.exit_code == 0, replayed.output
    lines = replayed.output.splitlines()
    assert len(lines) == RUNS + 1
    assert all(" events replayed deterministically" in line for line in lines[:RUNS])
    assert lines[-1].startswith(f"ok: {RECORDS} record(s) across {RUNS} run(s); chain intact")
    assert plain.exit_code == 0, plain.output
    assert plain.output.startswith(f"ok: {RECORDS} record(s)")


def test_a_run_that_does_not_replay_is_a_problem(address: str, continued: str) -> None:
    backend = TemporalRuntime.connect(TemporalTarget(address))
    try:
        report = audit_replay(backend, continued, workflows=[DriftedCaseWorkflow])
    finally:
        backend.close()

    assert not report.ok
    assert len(report.runs) == RUNS and all(run.problem for run in report.runs)
    assert all("NondeterminismError" in (run.problem or "") for run in report.runs)
    lines = report.lines()
    assert sum(line.startswith("PROBLEM run ") for line in lines) == RUNS


def test_a_forged_tail_fails_the_audit(
    address: str, continued: str, models: Mapping[str, Model]
) -> None:
    """A run started as the continuation of a case, carrying records that were altered: Temporal
    replays it fine (it is deterministic), the chain check does not."""
    backend = TemporalRuntime.connect(TemporalTarget(address))
    try:
        genuine = [r.to_json() for r in backend.history(continued)][:3]
        case = backend.case(continued)
    finally:
        backend.close()
    genuine[1]["event"]["data"]["agency"] = "kemenag"  # the disposition, rewritten afterwards
    forged = "LAPOR-AUDIT-FORGED"
    params = CaseInput(
        json.dumps(models["sp4n-lapor"].to_data()),
        forged,
        {},
        case=case.evolve(outcome=None).to_json(),  # open, so the run waits instead of ending
        history=genuine,
    )
    asyncio.run(_start(address, params, queue=QUEUE))

    result = CliRunner().invoke(app, ["audit", "replay", forged, "--temporal", address])

    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    assert lines[0].endswith("events replayed deterministically")
    assert "PROBLEM record 2: hash does not match its contents" in lines


def test_unknown_case_is_exit_status_2(
    address: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["lapor", "audit", "replay", "NOPE", "--temporal", address])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 2
    assert "unknown case 'NOPE'" in capsys.readouterr().err


def test_a_query_no_worker_answers_says_so(address: str, models: Mapping[str, Model]) -> None:
    """A case on a task queue no worker polls: history cannot be read, and the error says why."""
    case_id = "LAPOR-AUDIT-NO-WORKER"
    params = CaseInput(json.dumps(models["sp4n-lapor"].to_data()), case_id, dict(INTAKE))
    asyncio.run(_start(address, params, queue="nobody-polls-this"))
    backend = TemporalRuntime.connect(TemporalTarget(address), query_timeout=timedelta(seconds=0.5))
    try:
        with pytest.raises(LaporError, match="no worker answered the query"):
            backend.history(case_id)
    finally:
        backend.close()
