"""A definition problem fails the case workflow, visibly, instead of retrying its task forever.

``CaseWorkflow`` lists ``LaporError`` as a failure exception type: a malformed model, or a
deadline in a year the model's calendar does not cover, is nothing a retried workflow task can
fix. Real dev server, in-process worker.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError

from engine.domain.model import Model
from workers import servers
from workers.worker import case_worker
from workers.workflow import CaseInput, CaseWorkflow

pytestmark = [
    pytest.mark.temporal,
    pytest.mark.usefixtures("temporal_servers"),
    # A workflow whose @workflow.init raises never awaits its run coroutine; the SDK leaves it
    # for the garbage collector, which warns (in whichever test happens to run next).
    pytest.mark.filterwarnings("ignore:coroutine .*run_workflow' was never awaited"),
]

INTAKE = {"category": "kesehatan", "region": "ID-JK", "channel": "web", "description": "x"}
QUEUE = "lapor-failures"


async def _failure_of(params: CaseInput) -> ApplicationError:
    async with servers.start_dev_server() as env, case_worker(env.client, QUEUE):
        handle = await env.client.start_workflow(
            CaseWorkflow.run, params, id=params.case_id, task_queue=QUEUE
        )
        with pytest.raises(WorkflowFailureError) as failed:
            await asyncio.wait_for(handle.result(), timeout=30)
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError)
    return cause


def test_a_malformed_model_fails_the_workflow() -> None:
    params = CaseInput(
        json.dumps({"name": "sp4n-lapor"}), f"LAPOR-F-{uuid.uuid4().hex[:8]}", INTAKE
    )
    cause = asyncio.run(_failure_of(params))
    assert cause.type == "LaporError"
    assert "the case's model is malformed: KeyError" in cause.message


def test_a_deadline_outside_the_calendar_fails_the_workflow(models: Mapping[str, Model]) -> None:
    # Case time in March 2031: the shipped calendar covers 2025-2027.
    offset = (datetime(2031, 3, 3, 2, 0, tzinfo=UTC) - datetime.now(UTC)).total_seconds()
    model_json = json.dumps(models["sp4n-lapor"].to_data())
    params = CaseInput(model_json, f"LAPOR-F-{uuid.uuid4().hex[:8]}", INTAKE, clock_offset_s=offset)
    cause = asyncio.run(_failure_of(params))
    assert cause.type == "CalendarError"
    assert "no calendar for 2031" in cause.message
