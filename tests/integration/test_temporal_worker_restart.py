"""200 cases on the real dev server while their only worker is killed (SIGKILL) and restarted twice.

A case's SLA clocks are Temporal timers and its signals are updates, so a worker that dies
mid-task must cost nothing but time: updates wait for the next worker, timers that fell due
while no worker ran are delivered when one is back, and a workflow task replayed on the new
worker must not record a lapse or an escalation a second time.

Lapses have to happen in real time here, and the shipped SLA counts working days. So the test
compiles the shipped workflow with a policy in working *seconds* (written to ``tmp_path``) and
starts each ``CaseWorkflow`` itself, with a ``clock_offset_s`` that puts the case's "now" at
09:00 WIB on a working Tuesday: inside the 07:30-16:00 working window whatever the wall clock
says. Which clock is short is chosen per case by its intake ``type`` (a duration table), so one
model serves every route. Signals and histories go through ``engine.faces.sdk.Client`` over
``TemporalRuntime``; the dev server and the worker are ``lapor`` processes.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client as TemporalClient

from engine.definitions.loader import load_models
from engine.domain.history import replay, verify_chain
from engine.domain.model import Model
from engine.domain.records import HistoryRecord
from engine.faces.sdk import Client
from tests.integration.devserver import CLI, dev_server, stop
from workers.connection import TemporalTarget
from workers.runtime import TemporalRuntime
from workers.workflow import CaseInput, CaseWorkflow

pytestmark = [pytest.mark.temporal, pytest.mark.usefixtures("temporal_servers")]

ROOT = Path(__file__).resolve().parents[2]
WIB = timezone(timedelta(hours=7))
#: Case time at the start: a working Tuesday morning, hours before the working window closes.
CASE_START = datetime(2026, 3, 3, 9, 0, tzinfo=WIB)
CASES = 200
FIRST_KILL = 2.0  # seconds after the signals begin: most cases have signals queued or in flight
DEAD_FOR = 2.0  # seconds without a worker at each kill: clocks fall due meanwhile
SECOND_KILL = 2.0  # seconds after the second worker is up: it is still replaying the backlog
STEP_GAP = 1.5  # seconds between a case's signals, so signals keep arriving across both kills
STARTUP = 20.0  # seconds for the dev server or a worker to come up
SETTLE = 90.0  # seconds for every signal to be answered and every case to end after the kills

SHORT_SLA = """\
policy: restart-sla
kind: sla
workflow: sp4n-lapor
calendar: id
national_region: ID-JK
clocks:
  verification:
    duration: {unverified}
    runs_in: [submitted]
    pauses_in: [on_hold]
    region: national
    on_lapse: {{escalate: admin}}
  first_follow_up:
    duration: {ignored}
    runs_in: [disposed]
    on_lapse: {{escalate: agency}}
  completion:
    duration: 1 working hours
    runs_in: [disposed, in_progress]
    on_lapse: {{escalate: agency}}
  reporter_reply:
    duration: {silent}
    runs_in: [awaiting_reporter]
    on_lapse: {{fire: auto_close}}
"""
SHORT_LADDERS = """\
policy: restart-escalation
kind: escalation
workflow: sp4n-lapor
ladders:
  agency:
    - {to: agency_liaison, deadline: 4 working seconds}
    - {to: agency_superior, deadline: 4 working seconds}
    - {to: admin_nasional, deadline: 4 working seconds}
    - {to: ombudsman_ri, final: true, fire: refer_to_ombudsman}
  admin:
    - {to: admin_supervisor, deadline: 4 working seconds}
    - {to: ombudsman_ri, final: true, fire: refer_to_ombudsman}
"""
#: Intake ``type``: which clock (if any) is 6 working seconds for the case; the rest take an hour.
TYPES = ("prompt", "unverified", "ignored", "silent")

Step = tuple[str, str, dict[str, Any]]
Climb = list[tuple[str, int]]  # (clock, level) in recorded order
VERIFY: Step = ("verify", "admin:nasional", {"agency": "kemenkes"})
ANSWER: list[Step] = [
    ("follow_up", "agency:kemenkes", {"response": "Sedang ditindaklanjuti"}),
    ("complete", "agency:kemenkes", {"response": "Sudah diselesaikan"}),
]
CONFIRM: Step = ("confirm", "reporter", {"rating": 5})


@dataclass(frozen=True)
class Route:
    """One way through the workflow and exactly what it must leave behind."""

    type: str
    region: str
    steps: list[Step]
    state: str
    lapses: Climb = field(default_factory=list)
    escalations: Climb = field(default_factory=list)
    refused: list[Step] = field(default_factory=list)  # sent first; refused, never recorded


ROUTES: dict[str, Route] = {
    "resolved": Route(
        "prompt",
        "ID-JK",
        [VERIFY, *ANSWER, CONFIRM],
        "closed",
    ),
    "archived": Route(
        "prompt",
        "ID-SN",
        [("archive", "admin:nasional", {"reason": "bukan pelayanan publik"})],
        "archived",
        refused=[CONFIRM],
    ),
    "unverified": Route(
        "unverified",
        "ID-JK",
        [],
        "referred_to_ombudsman",
        lapses=[("verification", 0), ("verification", 1)],
        escalations=[("verification", 1), ("verification", 2)],
    ),
    "ignored": Route(  # disposed to an agency in WIT that never answers: the whole agency ladder
        "ignored",
        "ID-PA",
        [("verify", "admin:nasional", {"agency": "pemprov-papua"})],
        "referred_to_ombudsman",
        lapses=[("first_follow_up", level) for level in range(4)],
        escalations=[("first_follow_up", level) for level in range(1, 5)],
    ),
    "silent": Route(  # answered, but the reporter never reacts: auto-closed as Selesai
        "silent",
        "ID-JK",
        [VERIFY, *ANSWER],
        "closed",
        lapses=[("reporter_reply", 0)],
    ),
}


@pytest.fixture
def address(tmp_path: Path) -> Iterator[str]:
    with dev_server(tmp_path) as served:
        yield served


def _duration_table(short: str) -> str:
    # Every table lists every type: the core refuses a value that a table does not know.
    values = ", ".join(
        f"{t}: {'6 working seconds' if t == short else '1 working hours'}" for t in TYPES
    )
    return f"{{by: type, values: {{{values}}}, default: 1 working hours}}"


@pytest.fixture
def short_model(tmp_path: Path) -> Model:
    """The shipped workflow, calendars and routing; clocks and ladders in working seconds."""
    root = tmp_path / "definitions"
    (root / "workflows").mkdir(parents=True)
    shutil.copy(ROOT / "workflows" / "sp4n-lapor.yaml", root / "workflows")
    for kind in ("calendars", "routing"):
        shutil.copytree(ROOT / "policies" / kind, root / "policies" / kind)
    tables = {t: _duration_table(t) for t in TYPES}
    for kind, text in (("sla", SHORT_SLA.format(**tables)), ("escalation", SHORT_LADDERS)):
        (root / "policies" / kind).mkdir()
        (root / "policies" / kind / "restart.yaml").write_text(text)
    return load_models(root / "workflows", root / "policies")["sp4n-lapor"]


class WorkerProcess:
    """``lapor worker`` as a subprocess; its output goes to a file so no pipe can fill up."""

    def __init__(self, address: str, queue: str, log: Path) -> None:
        self.log = log
        self._mark = log.stat().st_size if log.exists() else 0
        with log.open("ab") as sink:
            self.process = subprocess.Popen(
                [*CLI, "worker", "--temporal", address, "--task-queue", queue, "--handler", "log"],
                stdout=sink,
                stderr=sink,
            )

    def wait_ready(self) -> None:
        # The banner comes once the worker polls; a banner of an earlier worker does not count.
        deadline = time.monotonic() + STARTUP
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text(errors="replace")
            with self.log.open("rb") as source:
                source.seek(self._mark)
                if b"worker: " in source.read():
                    return
            time.sleep(0.05)
        raise TimeoutError(f"worker not ready after {STARTUP} s")

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        stop(self.process)


@dataclass
class InFlight:
    """How many signals are waiting for their answer, sampled at each kill."""

    now: int = 0
    at_kills: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, delta: int) -> None:
        with self.lock:
            self.now += delta


async def _start_cases(
    address: str, queue: str, model: Model, cases: Mapping[str, Route]
) -> timedelta:
    """Start every case with the same offset (case time = ``CASE_START`` now); returns it."""
    client = await TemporalClient.connect(address)
    offset = CASE_START - datetime.now(UTC)
    model_json = json.dumps(model.to_data())

    async def start(case_id: str, route: Route) -> None:
        intake = {"category": "kesehatan", "region": route.region, "channel": "web"}
        intake |= {"description": "Antrean puskesmas", "type": route.type}
        params = CaseInput(model_json, case_id, intake, clock_offset_s=offset.total_seconds())
        handle = await client.start_workflow(CaseWorkflow.run, params, id=case_id, task_queue=queue)
        outcome = await handle.execute_update(CaseWorkflow.started)
        assert "case" in outcome, (case_id, outcome)

    await asyncio.gather(*(start(c, r) for c, r in cases.items()))
    return offset


class Driver(threading.Thread):
    """One case's signals, spread out in time so that signals are in flight at every kill.

    A daemon thread: if an answer never comes, the test fails after ``SETTLE`` instead of
    waiting at exit for the SDK's own five-minute timeout.
    """

    def __init__(
        self, client: Client, inflight: InFlight, case_id: str, route: Route, delay: float
    ) -> None:
        super().__init__(daemon=True, name=case_id)
        self.client, self.inflight, self.case_id, self.route = client, inflight, case_id, route
        self.delay = delay
        self.error: BaseException | None = None
        self.at = "not started"

    def run(self) -> None:
        try:
            self._send()
        except BaseException as exc:  # handed to the test thread, which fails with it
            self.error = exc

    def _send(self) -> None:
        time.sleep(self.delay)
        refused = len(self.route.refused)
        # The reporter's token, as the case's start would have handed it out.
        keyring = self.client.runtime.keyring  # type: ignore[attr-defined]
        self.token = keyring.reporter_token(self.case_id)
        for number, (name, actor, data) in enumerate([*self.route.refused, *self.route.steps]):
            self.at = name
            self.inflight.add(1)
            try:
                result = self.client.signal(
                    self.case_id, name, actor=actor, data=data, reporter_token=self.token
                )
            finally:
                self.inflight.add(-1)
            if number < refused:
                assert not result.accepted and result.code == "wrong_state", result
            else:
                assert result.accepted, result
                time.sleep(STEP_GAP)
        self.at = "done"


async def _results(address: str, case_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Each case workflow's result once it has ended: a long poll that costs the worker
    nothing, where a query on an ended run makes the worker replay the run to answer it."""
    client = await TemporalClient.connect(address)

    async def result(case_id: str) -> tuple[str, dict[str, Any]]:
        return case_id, await client.get_workflow_handle(case_id).result()

    gathered = asyncio.gather(*(result(c) for c in case_ids))
    return dict(await asyncio.wait_for(gathered, timeout=SETTLE))


def _climbs(records: list[HistoryRecord]) -> tuple[Climb, Climb, list[datetime]]:
    """The recorded lapses and escalations, and the deadlines that lapsed."""
    lapses: Climb = []
    escalations: Climb = []
    deadlines: list[datetime] = []
    for record in records:
        for effect in record.effects:
            if effect["kind"] == "lapsed":
                lapses.append((effect["clock"], effect["level"]))
                deadlines.append(datetime.fromisoformat(effect["due_at"]))
            elif effect["kind"] == "escalated":
                escalations.append((effect["clock"], effect["level"]))
    return lapses, escalations, deadlines


def test_cases_survive_their_worker_killed_twice(
    address: str, short_model: Model, tmp_path: Path
) -> None:
    queue = "lapor-restart"
    log = tmp_path / "worker.log"
    names = list(ROUTES)
    cases = {f"LAPOR-RESTART-{i:04d}": ROUTES[names[i % len(names)]] for i in range(CASES)}
    models = {"sp4n-lapor": short_model}
    inflight = InFlight()
    dead: list[tuple[datetime, datetime]] = []  # wall-clock spans with no worker running
    worker = WorkerProcess(address, queue, log)
    try:
        worker.wait_ready()
        backend = TemporalRuntime.connect(TemporalTarget(address, task_queue=queue), models=models)
        with Client(runtime=backend) as client:
            offset = asyncio.run(_start_cases(address, queue, short_model, cases))
            began = time.monotonic()
            drivers = [
                Driver(client, inflight, case_id, route, (i % 10) * 0.3)
                for i, (case_id, route) in enumerate(cases.items())
            ]
            for driver in drivers:
                driver.start()
            time.sleep(FIRST_KILL)
            for _ in range(2):
                inflight.at_kills.append(inflight.now)
                died = datetime.now(UTC)
                worker.kill()
                time.sleep(DEAD_FOR)
                worker = WorkerProcess(address, queue, log)
                worker.wait_ready()
                dead.append((died, datetime.now(UTC)))
                time.sleep(SECOND_KILL)
            for driver in drivers:
                driver.join(timeout=max(0.0, SETTLE - (time.monotonic() - began)))
            stuck = [f"{d.case_id} at {d.at}" for d in drivers if d.is_alive()]
            assert not stuck, f"{len(stuck)} cases wait for an answer: {stuck[:10]}"
            failed = [(d.case_id, d.at, d.error) for d in drivers if d.error is not None]
            assert not failed, failed[:10]
            results = asyncio.run(_results(address, list(cases)))
            with ThreadPoolExecutor(max_workers=8) as readers:
                histories = dict(zip(cases, readers.map(client.history, cases), strict=True))
            audits = [client.audit(case_id) for case_id in list(cases)[: len(ROUTES)]]
    finally:
        worker.stop()

    assert all(n > 0 for n in inflight.at_kills), f"signals in flight at kills: {inflight.at_kills}"
    assert all(report.ok for report in audits), [report.problems for report in audits]
    due_while_dead = 0
    for case_id, route in cases.items():
        records, result = histories[case_id], results[case_id]
        assert result["state"] == route.state, (case_id, result)
        assert verify_chain(records) == [], case_id
        replayed = replay(short_model, records)  # every decision re-derived under the model
        assert replayed.ok, (case_id, replayed.problems)
        assert replayed.case is not None and replayed.case.head == result["head"], case_id
        assert len(records) == result["decisions"], case_id
        lapses, escalations, deadlines = _climbs(records)
        # Exactly the expected climb: in particular no (clock, level) lapsed or escalated twice.
        assert lapses == route.lapses, (case_id, lapses)
        assert escalations == route.escalations, (case_id, escalations)
        # Rungs that fell due together (a worker back late) may settle in one decision, so the
        # records that are not lapses are counted: the start and each accepted signal.
        inputs = [r for r in records if r.event["kind"] != "clock_lapsed"]
        assert len(inputs) == 1 + len(route.steps), (case_id, [r.event for r in records])
        due_while_dead += sum(
            any(died <= due - offset <= back for died, back in dead) for due in deadlines
        )
    assert due_while_dead > 0, "no clock fell due while the worker was dead: nothing was tested"
