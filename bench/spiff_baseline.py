"""Baseline: SpiffWorkflow runs the on-time SP4N-LAPOR! lifecycle, state loaded/saved per step.

Each case takes five steps, mirroring the engine's five decisions per case:

- start: create a ``BpmnWorkflow``, run its engine steps, serialize it to JSON;
- verify, follow_up, complete, confirm: deserialize the JSON, find the READY user task, set its
  data, run it, run the engine steps, serialize to JSON again.

The process (``sp4n_lifecycle.bpmn``) is parsed once. It has no scripts, conditions or timers, so
nothing goes through SpiffWorkflow's eval-based script engine and every run is deterministic.

Run: ``.venv/bin/python bench/spiff_baseline.py --cases 300``. From another script in ``bench/``:
``from spiff_baseline import run``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from SpiffWorkflow import TaskState
from SpiffWorkflow import __version__ as SPIFF_VERSION
from SpiffWorkflow.bpmn.parser.BpmnParser import BpmnParser
from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.specs.bpmn_process_spec import BpmnProcessSpec
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow

BPMN_FILE = Path(__file__).with_name("sp4n_lifecycle.bpmn")
PROCESS_ID = "sp4n_lifecycle"

# The user tasks in lifecycle order, each with the data its actor submits (as in sp4n-lapor.yaml).
USER_STEPS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("verify", {"agency": "kemenkes", "tier": "pusat"}),
    ("follow_up", {"response": "Laporan sedang ditindaklanjuti."}),
    ("complete", {"response": "Layanan telah dipulihkan."}),
    ("confirm", {"rating": 5}),
)
STEPS_PER_CASE = 1 + len(USER_STEPS)


def load_spec(path: Path = BPMN_FILE) -> BpmnProcessSpec:
    """Parse the BPMN file once and return the process spec."""
    parser = BpmnParser()
    parser.add_bpmn_file(str(path))
    spec: BpmnProcessSpec = parser.get_spec(PROCESS_ID)
    return spec


class _Store:
    """Stands in for the case row: a save is ``serialize_json``, a load ``deserialize_json``."""

    def __init__(self) -> None:
        self.serializer = BpmnWorkflowSerializer()
        self.saves = 0
        self.loads = 0
        self.bytes_saved = 0

    def save(self, workflow: BpmnWorkflow) -> str:
        state: str = self.serializer.serialize_json(workflow)
        self.saves += 1
        self.bytes_saved += len(state)
        return state

    def load(self, state: str) -> BpmnWorkflow:
        workflow: BpmnWorkflow = self.serializer.deserialize_json(state)
        self.loads += 1
        return workflow


def run_case(spec: BpmnProcessSpec, store: _Store, case_no: int) -> int:
    """Run one case through all five steps; return the number of steps taken."""
    workflow = BpmnWorkflow(spec)
    workflow.data["case_no"] = case_no
    workflow.do_engine_steps()
    state = store.save(workflow)
    steps = 1
    for name, data in USER_STEPS:
        workflow = store.load(state)
        ready = workflow.get_tasks(state=TaskState.READY)
        if len(ready) != 1 or ready[0].task_spec.bpmn_id != name:
            found = [t.task_spec.bpmn_id for t in ready]
            raise RuntimeError(f"case {case_no}: expected READY {name!r}, found {found}")
        task = ready[0]
        task.data.update(data)
        task.run()
        workflow.do_engine_steps()
        state = store.save(workflow)
        steps += 1
    if not workflow.is_completed():
        raise RuntimeError(f"case {case_no}: workflow did not reach its end event")
    return steps


def run(cases: int, spec: BpmnProcessSpec | None = None) -> dict[str, Any]:
    """Run ``cases`` cases; parsing is outside the timed section, (de)serialization inside it."""
    spec = spec or load_spec()
    store = _Store()
    steps = 0
    started = time.perf_counter()
    for case_no in range(cases):
        steps += run_case(spec, store, case_no)
    seconds = time.perf_counter() - started
    if store.saves != steps or store.loads != steps - cases:
        raise RuntimeError(f"expected a save per step: {store.saves} saves, {store.loads} loads")
    return {
        "engine": "spiffworkflow",
        "version": SPIFF_VERSION,
        "cases": cases,
        "steps": steps,
        "seconds": round(seconds, 4),
        "steps_per_s": round(steps / seconds, 1) if seconds > 0 else None,
        "serializations": store.saves,
        "deserializations": store.loads,
        "mean_state_bytes": store.bytes_saved // store.saves if store.saves else 0,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--cases", type=int, default=300, help="cases to run (default 300)")
    args = parser.parse_args(argv)
    print(json.dumps(run(args.cases)))


if __name__ == "__main__":
    main()
