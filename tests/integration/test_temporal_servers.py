"""Smoke test: the Python SDK drives both locally provisioned Temporal servers.

No mocks: a real worker runs a trivial workflow on the Java time-skipping test server (where a
60-day ``workflow.sleep`` is skipped, so it completes in seconds of wall time) and on the Temporal
dev server (the same workflow, without the sleep). The servers come from the cache filled by
``scripts/temporal-server.sh``; nothing is downloaded at test time.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from temporalio import workflow

# The workflow sandbox re-imports this module; pass the non-workflow imports through unchanged.
with workflow.unsafe.imports_passed_through():
    import pytest
    from temporalio.client import WorkflowExecutionStatus
    from temporalio.testing import WorkflowEnvironment
    from temporalio.worker import Worker

    from workers import servers

pytestmark = [pytest.mark.temporal, pytest.mark.usefixtures("temporal_servers")]

NAP = timedelta(days=60)


@dataclass
class NapResult:
    started: str  # workflow time (ISO 8601) when the run began
    finished: str  # workflow time (ISO 8601) when it returned


@workflow.defn
class NapWorkflow:
    @workflow.run
    async def run(self, nap_seconds: float) -> NapResult:
        started = workflow.now()
        if nap_seconds > 0:
            await workflow.sleep(timedelta(seconds=nap_seconds))
        return NapResult(started=started.isoformat(), finished=workflow.now().isoformat())


async def _run_nap(env: WorkflowEnvironment, nap: timedelta) -> tuple[NapResult, str]:
    """Run NapWorkflow on a fresh task queue; return its result and final status name."""
    task_queue = f"nap-{uuid.uuid4()}"
    workflow_id = f"nap-{uuid.uuid4()}"
    async with Worker(env.client, task_queue=task_queue, workflows=[NapWorkflow]):
        result = await env.client.execute_workflow(
            NapWorkflow.run,
            nap.total_seconds(),
            id=workflow_id,
            task_queue=task_queue,
            execution_timeout=timedelta(days=365),
        )
        description = await env.client.get_workflow_handle(workflow_id).describe()
    assert description.status is not None
    return result, description.status.name


def test_time_skipping_server_skips_a_60_day_sleep() -> None:
    async def scenario() -> tuple[NapResult, str, datetime, datetime]:
        async with servers.start_time_skipping() as env:
            assert env.supports_time_skipping
            before = await env.get_current_time()
            result, status = await _run_nap(env, NAP)
            after = await env.get_current_time()
        return result, status, before, after

    result, status, before, after = asyncio.run(scenario())

    assert status == WorkflowExecutionStatus.COMPLETED.name
    elapsed = datetime.fromisoformat(result.finished) - datetime.fromisoformat(result.started)
    assert elapsed >= NAP
    assert after - before >= NAP


def test_dev_server_runs_the_workflow() -> None:
    async def scenario() -> tuple[NapResult, str]:
        async with servers.start_dev_server() as env:
            assert not env.supports_time_skipping
            return await _run_nap(env, timedelta(0))

    result, status = asyncio.run(scenario())

    assert status == WorkflowExecutionStatus.COMPLETED.name
    elapsed = datetime.fromisoformat(result.finished) - datetime.fromisoformat(result.started)
    assert timedelta(0) <= elapsed < NAP
