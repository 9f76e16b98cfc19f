"""The case list over Temporal (``workers.caselist``): ``lapor serve --temporal`` in front of a
real dev server and ``lapor worker`` lists the same cases as ``lapor serve`` over SQLite, in the
same order, through every filter, page and key scope, and Open311's public list likewise.

Both servers get the same cases: through the API (their ids differ, so rows are compared by the
order the cases were started in), and two started at a case time other than now, which a
server's API refuses (its clock is real): on Temporal through the workflow's own
``clock_offset_s`` (as ``tests/integration/test_temporal_worker_restart.py`` does), on SQLite
through the embedded runtime's ``at``. One of them lapses for real, on a verification clock of 3
working seconds: the escalation half of "overdue". The other half, a deadline behind ``now``, is
compared on the two listers themselves at a ``now`` weeks ahead (a served case whose deadline
passes is escalated at once, so it is overdue by both halves).

Visibility is eventually consistent: the Temporal list is polled until it holds every case.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client as TemporalClient

from engine.definitions.loader import load_models
from engine.domain.events import SEMANTICS
from engine.domain.model import Model
from engine.runtime.caselist import CaseFilter, CaseSummary
from engine.runtime.clock import VirtualClock
from engine.sql import store
from engine.sql.caselist import list_cases
from engine.sql.embedded import EmbeddedRuntime
from tests.api.conftest import COMPLAINT, Server, serve
from tests.integration.devserver import dev_server, start_worker, stop
from tests.lapor_process import ROOT
from workers.caselist import MAX_OFFSET, TemporalCaseList
from workers.connection import TemporalTarget
from workers.runtime import TemporalRuntime
from workers.workflow import CaseInput, CaseWorkflow

WIB = timezone(timedelta(hours=7))
VISIBILITY = 30.0  # seconds for every case (and the lapse) to show in the Temporal list
GAP = 1.3  # seconds between API starts: each case opens in its own second on both runtimes

# (who starts it, intake changes, signals after the start: (who, signal, data))
Plan = tuple[dict[str, Any], list[tuple[str, str, dict[str, Any]]]]
PLANS: list[Plan] = [
    ({}, []),
    ({"region": "ID-BA"}, [("admin", "verify", {"agency": "kemenkes"})]),
    ({"region": "ID-PA"}, [("admin", "verify", {"agency": "kemensos"})]),
    ({}, [("admin", "archive", {"reason": "bukan pelayanan publik"})]),
    (
        {"region": "ID-BA", "confidential": True},
        [
            ("admin", "verify", {"agency": "kemenkes"}),
            ("kemenkes", "follow_up", {"response": "Sedang ditindaklanjuti"}),
        ],
    ),
    ({"region": "ID-SN"}, []),
]


@dataclass(frozen=True)
class Direct:
    """A case started beside the API, at case time ``at``; ``fast``: its verification clock
    runs 3 working seconds (it lapses during the test) instead of 3 working days."""

    case_id: str
    at: datetime
    fast: bool


DIRECT = [
    # A working morning next year: lapses at once, escalates; its next deadline is still ahead
    # (overdue by its escalation only).
    Direct("LAPOR-T-LIST-LAPSED", datetime(2027, 2, 2, 9, tzinfo=WIB), fast=True),
    # The same morning an hour later, nothing due yet: not overdue.
    Direct("LAPOR-T-LIST-AHEAD", datetime(2027, 2, 2, 10, tzinfo=WIB), fast=False),
]


@pytest.fixture(scope="module")
def fast_model(tmp_path_factory: pytest.TempPathFactory) -> Model:
    """The shipped definitions, the verification clock 3 working seconds instead of days."""
    root = tmp_path_factory.mktemp("fast-definitions")
    (root / "workflows").mkdir()
    shutil.copy(ROOT / "workflows" / "sp4n-lapor.yaml", root / "workflows")  # not its BPMN twin
    shutil.copytree(ROOT / "policies", root / "policies", ignore=shutil.ignore_patterns("tests"))
    sla = root / "policies" / "sla" / "sp4n-lapor.yaml"
    text = sla.read_text(encoding="utf-8")
    assert text.count("duration: 3 working days") == 1
    sla.write_text(text.replace("duration: 3 working days", "duration: 3 working seconds"))
    return load_models(root / "workflows", root / "policies")["sp4n-lapor"]


@pytest.fixture(scope="module")
def shipped_model() -> Model:
    return load_models(ROOT / "workflows", ROOT / "policies")["sp4n-lapor"]


@dataclass
class Pair:
    sqlite: Server
    temporal: Server
    address: str  # the dev server's
    database: Path  # the SQLite server's
    # case id -> the label both runtimes share (API cases: their start order)
    labels: dict[str, str]


@pytest.fixture(scope="module")
def pair(
    tmp_path_factory: pytest.TempPathFactory, fast_model: Model, shipped_model: Model
) -> Iterator[Pair]:
    folder = tmp_path_factory.mktemp("list-temporal")
    queue = f"list-{uuid.uuid4().hex[:8]}"
    limit = ("--rate-limit", "100000/minute")
    with dev_server(folder) as address:
        worker = start_worker(address, queue)
        try:
            env = {"LAPOR_TEMPORAL_TASK_QUEUE": queue}
            local = tmp_path_factory.mktemp("list-sqlite")
            with (
                contextmanager(serve)(folder, "--temporal", address, *limit, env=env) as temporal,
                contextmanager(serve)(local, *limit) as sqlite,
            ):
                # First: the embedded store's virtual clock fires every timer in the database
                # up to the moment it is moved to, and must reach only the lapsing case's.
                _start_beside_the_api(local, address, queue, fast_model, shipped_model)
                labels = _start_through_the_api(sqlite, temporal)
                labels |= {d.case_id: d.case_id for d in DIRECT}
                found = Pair(sqlite, temporal, address, local / "lapor.db", labels)
                _wait_for_visibility(found)
                yield found
        finally:
            stop(worker)


def _start_through_the_api(sqlite: Server, temporal: Server) -> dict[str, str]:
    labels: dict[str, str] = {}
    for number, (changes, signals) in enumerate(PLANS):
        for server in (sqlite, temporal):
            case_id = server.start(data=COMPLAINT | changes)["case_id"]
            labels[case_id] = f"api-{number}"
            for who, name, data in signals:
                answer = server.call(
                    "POST", f"/v1/complaints/{case_id}/signals/{name}", who=who,
                    json={"data": data},
                )  # fmt: skip
                assert answer.status_code == 200, answer.text
        time.sleep(GAP)
    return labels


def _intake(region: str) -> dict[str, Any]:
    return COMPLAINT | {"region": region}


def _start_beside_the_api(
    folder: Path, address: str, queue: str, fast: Model, shipped: Model
) -> None:
    engine = store.open_engine(f"sqlite:///{folder / 'lapor.db'}")
    try:
        # The lapsing case first, and only its clock moved on: the other's timers must stay
        # unfired, as on Temporal.
        for case in sorted(DIRECT, key=lambda case: not case.fast):
            model = fast if case.fast else shipped
            runtime = EmbeddedRuntime(engine, {model.name: model}, VirtualClock(case.at))
            assert runtime.start(model.name, case.case_id, _intake("ID-JK"), at=case.at).accepted
            if case.fast:
                runtime.advance_to(case.at + timedelta(seconds=10))
            runtime.close()
    finally:
        engine.dispose()
    asyncio.run(_start_on_temporal(address, queue, fast, shipped))


async def _start_on_temporal(address: str, queue: str, fast: Model, shipped: Model) -> None:
    client = await TemporalClient.connect(address)
    for case in DIRECT:
        model = fast if case.fast else shipped
        params = CaseInput(
            json.dumps(model.to_data()),
            case.case_id,
            _intake("ID-JK"),
            clock_offset_s=(case.at - datetime.now(UTC)).total_seconds(),
            semantics=SEMANTICS,
        )
        handle = await client.start_workflow(
            CaseWorkflow.run, params, id=case.case_id, task_queue=queue
        )
        outcome = await handle.execute_update(CaseWorkflow.started)
        assert "case" in outcome, outcome


def _listed(server: Server, query: str, who: str, labels: dict[str, str]) -> dict[str, Any]:
    """The list's answer with each case id as its shared label and the instants, which differ
    by runtime (each started its cases at its own time), reduced to whether they are set."""
    answer = server.call("GET", f"/v1/complaints?{query}", who=who)
    assert answer.status_code == 200, (query, answer.text)
    body: dict[str, Any] = answer.json()
    body["items"] = [
        item | {"case_id": labels.get(item["case_id"], item["case_id"]),
                "opened_at": None, "next_due": item["next_due"] is not None}
        for item in body["items"]
    ]  # fmt: skip
    return body


def _wait_for_visibility(pair: Pair) -> None:
    query = "page_size=100"
    want = _listed(pair.sqlite, query, "admin", pair.labels)
    assert len(want["items"]) == len(PLANS) + len(DIRECT)
    deadline = time.monotonic() + VISIBILITY
    while (got := _listed(pair.temporal, query, "admin", pair.labels)) != want:
        if time.monotonic() > deadline:
            assert got == want, json.dumps([got, want], indent=0)
        time.sleep(0.3)


QUERIES = [
    ("admin", ""),
    ("admin", "page_size=100"),
    ("admin", "status=submitted"),
    ("admin", "status=Belum%20Terverifikasi"),
    ("admin", "status=disposed"),
    ("admin", "status=Terdisposisi"),
    ("admin", "status=archived"),
    ("admin", "agency=kemenkes"),
    ("admin", "agency=kemensos"),
    ("admin", "region=ID-BA"),
    ("admin", "region=ID-JK"),
    ("admin", "overdue=true"),
    ("admin", "overdue=false"),
    ("admin", "agency=kemenkes&region=ID-BA&overdue=false"),
    ("admin", "region=ID-JK&overdue=true&page_size=1&page=2"),
    *[("admin", f"page_size=2&page={page}") for page in range(1, 6)],
    ("kemenkes", ""),
    ("kemenkes", "page_size=1&page=2"),
    ("kemenkes", "agency=kemensos"),
    ("kemensos", "overdue=false"),
    ("supervisor", "status=in_progress"),
]


@pytest.mark.parametrize(("who", "query"), QUERIES)
def test_the_case_list_on_temporal_matches_sqlite(pair: Pair, who: str, query: str) -> None:
    on_sqlite = _listed(pair.sqlite, query, who, pair.labels)
    on_temporal = _listed(pair.temporal, query, who, pair.labels)

    assert on_temporal == on_sqlite


def test_overdue_is_a_passed_deadline_or_an_escalation(pair: Pair) -> None:
    def labels(query: str) -> list[str]:
        return [
            item["case_id"] for item in _listed(pair.temporal, query, "admin", pair.labels)["items"]
        ]

    late, on_time = labels("overdue=true"), labels("overdue=false")

    assert late == ["LAPOR-T-LIST-LAPSED"]
    assert "LAPOR-T-LIST-AHEAD" in on_time and len(on_time) == len(PLANS) + 1
    [lapsed] = _listed(pair.temporal, "overdue=true", "admin", pair.labels)["items"]
    assert lapsed["case_id"] == "LAPOR-T-LIST-LAPSED"
    assert lapsed["escalation_level"] == 1
    # Its next deadline is still ahead: it is listed as overdue for its escalation alone.
    [shown] = pair.temporal.call("GET", "/v1/complaints?overdue=true", who="admin").json()["items"]
    assert datetime.fromisoformat(shown["next_due"]) > datetime.now(UTC)


def test_a_crafted_status_stays_one_value(pair: Pair) -> None:
    for crafted in ("x' OR LaporState != 'y", 'x" OR LaporState != "y', "x\\' OR 1=1 --"):
        for server in (pair.sqlite, pair.temporal):
            answer = server.call("GET", "/v1/complaints", who="admin", params={"status": crafted})
            assert answer.status_code == 200, answer.text
            assert answer.json()["items"] == []


def test_a_page_too_deep_is_refused_with_the_way_out(pair: Pair) -> None:
    page_size = 100
    page = MAX_OFFSET // page_size + 2
    query = f"/v1/complaints?page={page}&page_size={page_size}"

    refused = pair.temporal.call("GET", query, who="admin")
    served = pair.temporal.call("GET", f"/v1/complaints?page={page - 1}&page_size=100", who="admin")

    assert refused.status_code == 422
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["code"] == "invalid_request"
    assert "narrow it with status, agency, region or overdue" in refused.json()["detail"]
    assert served.status_code == 200 and served.json()["items"] == []
    # The embedded store pages as deep as asked.
    assert pair.sqlite.call("GET", query, who="admin").status_code == 200


def _requests(server: Server, labels: dict[str, str], query: str = "") -> list[dict[str, Any]]:
    answer = server.call("GET", f"/open311/v2/requests.json{query}")
    assert answer.status_code == 200, answer.text
    return [
        {key: value for key, value in item.items() if not key.endswith("datetime")}
        | {"service_request_id": labels[item["service_request_id"]]}
        for item in answer.json()
    ]


def test_the_open311_list_on_temporal_matches_sqlite(pair: Pair) -> None:
    on_sqlite = _requests(pair.sqlite, pair.labels)
    on_temporal = _requests(pair.temporal, pair.labels)

    assert on_temporal == on_sqlite
    # The last 90 days: the cases opened through the API, but not the confidential one.
    assert [r["service_request_id"] for r in on_temporal] == [
        "api-5",
        "api-3",
        "api-2",
        "api-1",
        "api-0",
    ]
    closed = "?status=closed&page_size=2"
    assert _requests(pair.temporal, pair.labels, closed) == _requests(
        pair.sqlite, pair.labels, closed
    )


def _rows(rows: list[CaseSummary], labels: dict[str, str]) -> list[tuple[object, ...]]:
    return [
        (labels[r.case_id], r.state, r.status, r.agency, r.region, r.escalation_level, r.outcome)
        for r in rows
    ]


@pytest.mark.parametrize("overdue", [True, False, None])
def test_a_deadline_behind_now_is_overdue_on_both_listers(pair: Pair, overdue: bool | None) -> None:
    later = datetime.now(UTC) + timedelta(days=40)  # past every API case's first deadline
    wanted = CaseFilter(overdue=overdue)
    engine = store.open_engine(f"sqlite:///{pair.database}")
    backend = TemporalRuntime.connect(TemporalTarget(pair.address))
    try:
        on_sqlite = list_cases(engine, wanted, later, offset=0, limit=100)
        on_temporal = TemporalCaseList(backend)(wanted, later, 0, 100)
    finally:
        backend.close()
        engine.dispose()

    assert _rows(on_temporal, pair.labels) == _rows(on_sqlite, pair.labels)
    late = {pair.labels[r.case_id] for r in on_sqlite if r.escalation_level == 0}
    if overdue:  # the API cases' running deadlines, behind ``later``
        assert late == {f"api-{n}" for n in (0, 1, 2, 4, 5)}
    if overdue is False:
        assert late == {"api-3", "LAPOR-T-LIST-AHEAD"}


def test_pages_found_by_counting_are_the_pages_of_the_whole_list(pair: Pair) -> None:
    """With no slack every page is cut by counting (``TemporalCaseList._cut``), not read whole:
    page after page, the same rows as the list read at once."""
    now = datetime.now(UTC)
    backend = TemporalRuntime.connect(TemporalTarget(pair.address))
    try:
        whole = TemporalCaseList(backend)(CaseFilter(), now, 0, 100)
        counted = TemporalCaseList(backend, slack=0)
        for size in (1, 2, 3):
            pages = [counted(CaseFilter(), now, start, size) for start in range(0, 12, size)]
            assert [row for page in pages for row in page] == whole
    finally:
        backend.close()
    assert len(whole) == len(PLANS) + len(DIRECT)
