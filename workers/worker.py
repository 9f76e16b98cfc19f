"""The worker that hosts cases: ``CaseWorkflow`` and its delivery activity, in the sandbox.

``lapor worker`` runs one (``engine.faces.cli.temporal``); the time-skipping test harness runs one
per runtime (``workers.testing``). Both deliver through the handlers they are given, the same
plug-ins as the embedded runtime's outbox (``engine.runtime.handlers``).
"""

from __future__ import annotations

from collections.abc import Sequence

from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from engine.runtime.delivery import DeliveryHandler
from workers.activities import Deliveries
from workers.workflow import PASSTHROUGH_MODULES, CaseWorkflow

__all__ = ["case_worker", "sandbox_runner"]

_SDK_CACHED_WORKFLOWS = 1000  # temporalio.worker.Worker's default, which takes no None


def sandbox_runner() -> SandboxedWorkflowRunner:
    """The workflow sandbox with the engine passed through (pure, deterministic modules): the
    worker and the replayer (``workers.audit``) must use the same one."""
    restrictions = SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH_MODULES)
    return SandboxedWorkflowRunner(restrictions=restrictions)


def case_worker(
    client: Client,
    task_queue: str,
    *,
    handlers: Sequence[DeliveryHandler] = (),
    max_cached_cases: int | None = None,
    max_workflow_tasks: int | None = None,
    max_activities: int | None = None,
) -> Worker:
    """A worker hosting ``CaseWorkflow``; effects are delivered through ``handlers``.

    The limits default to the SDK's (1,000 cached workflows, 100 concurrent workflow tasks and
    activities). A case evicted from the cache replays its history on its next task, so the
    cache should hold the cases that are active at once; the slots bound memory and concurrency,
    not speed (a worker is one Python process: more processes, not more slots, use more cores).
    """
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[CaseWorkflow],
        activities=[Deliveries(handlers).deliver_effects],
        workflow_runner=sandbox_runner(),
        max_cached_workflows=max_cached_cases or _SDK_CACHED_WORKFLOWS,
        max_concurrent_workflow_tasks=max_workflow_tasks,  # None: the SDK's own default
        max_concurrent_activities=max_activities,
    )
