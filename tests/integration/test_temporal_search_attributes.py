"""Search attributes: cases are findable on the real servers by status, agency, region, level, due
(and carry what the case list shows: workflow, opening, outcome).

1. Dev server (``lapor temporal dev`` and ``lapor worker`` as processes, as an operator runs
   them): a case disposed to kemenkes is found by ``list_workflows`` with a visibility query on
   ``LaporAgency`` and ``LaporStatus`` (visibility is eventually consistent, hence the polling),
   and its attributes are exactly the case's public facts, nothing more.
2. Time-skipping server: a case whose completion clock lapses climbs the ladder; after each step
   the attributes follow it (escalation level, next due), and at the end of the ladder the next
   due is unset.
3. ``lapor temporal search-attributes`` registers them on a server that lacks them, idempotently.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client as TemporalClient
from typer.testing import CliRunner

from engine.domain.events import Actor, Signal
from engine.domain.model import Model
from engine.faces.cli.main import app
from engine.faces.sdk import Client
from tests.integration.devserver import (
    dev_server,
    free_port,
    start_worker,
    stop,
    wait_until_serving,
)
from workers import search_attributes
from workers.connection import TemporalTarget
from workers.runtime import TemporalRuntime
from workers.testing import TimeSkippingHarness

pytestmark = [pytest.mark.temporal, pytest.mark.usefixtures("temporal_servers")]

INTAKE = {
    "category": "kesehatan",
    "region": "ID-PA",
    "channel": "web",
    "description": "Obat langka di puskesmas",
}
VISIBILITY = 10.0  # seconds for a change to show in list_workflows
NAMES = {key.name for key in search_attributes.ALL}


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory, temporal_servers: object) -> Iterator[str]:
    """``lapor temporal dev`` (registers the attributes itself) and a ``lapor worker``."""
    with dev_server(tmp_path_factory.mktemp("dev")) as served:
        worker = start_worker(served, "lapor")
        try:
            yield served
        finally:
            stop(worker)


async def _find(address: str, query: str, case_id: str) -> list[str]:
    """The ids ``query`` lists, polled until ``case_id`` is among them (or time runs out)."""
    client = await TemporalClient.connect(address)
    deadline = time.monotonic() + VISIBILITY
    while True:
        ids = [execution.id async for execution in client.list_workflows(query)]
        if case_id in ids or time.monotonic() > deadline:
            return ids
        await asyncio.sleep(0.2)


def _attributes(backend: TemporalRuntime, case_id: str) -> dict[str, Any]:
    """The case workflow's search attributes as the server holds them, by name."""
    description = backend.run(backend.client.get_workflow_handle(case_id).describe())
    return {pair.key.name: pair.value for pair in description.typed_search_attributes}


def test_a_disposed_case_is_found_by_agency_and_status_on_the_dev_server(dev: str) -> None:
    backend = TemporalRuntime.connect(TemporalTarget(dev))
    with Client(runtime=backend) as client:
        started = client.start("sp4n-lapor", INTAKE)
        case_id = started.case_id
        assert started.accepted
        # Before the disposition there is no agency to show.
        before = _attributes(backend, case_id)
        assert search_attributes.AGENCY.name not in before
        assert before[search_attributes.STATUS.name] == "Belum Terverifikasi"

        verified = client.signal(
            case_id, "verify", actor="admin:nasional", data={"agency": "kemenkes"}
        )
        assert verified.accepted and verified.status == "Terdisposisi"
        case = backend.case(case_id)

        query = 'LaporAgency = "kemenkes" AND LaporStatus = "Terdisposisi"'
        assert case_id in asyncio.run(_find(dev, query, case_id))
        by_region = 'LaporRegion = "ID-PA" AND LaporEscalationLevel = 0 AND LaporState = "disposed"'
        assert case_id in asyncio.run(_find(dev, by_region, case_id))

        held = _attributes(backend, case_id)
        assert case.next_due is not None
        assert {k: v for k, v in held.items() if k in NAMES} == {
            "LaporStatus": "Terdisposisi",
            "LaporState": "disposed",
            "LaporAgency": "kemenkes",
            "LaporRegion": "ID-PA",
            "LaporEscalationLevel": 0,
            "LaporNextDue": case.next_due,
            "LaporWorkflow": "sp4n-lapor",
            "LaporOpenedAt": case.opened_at,
        }
        # Nothing of the complaint's own text is indexed (the backend refuses identities).
        assert INTAKE["description"] not in repr(held)

        archived = client.start("sp4n-lapor", INTAKE)
        assert client.signal(
            archived.case_id, "archive", actor="admin:nasional", data={"reason": "spam"}
        ).accepted
        closed = _attributes(backend, archived.case_id)
        assert closed[search_attributes.STATUS.name] == "Diarsipkan"
        assert search_attributes.NEXT_DUE.name not in closed  # no clock runs on a closed case
        assert closed[search_attributes.OUTCOME.name] == backend.case(archived.case_id).outcome


def test_attributes_follow_the_ladder_on_the_time_skipping_server(
    models: Mapping[str, Model],
) -> None:
    start = datetime(2026, 5, 8, 10, tzinfo=UTC)
    intake = {"category": "infrastruktur", "region": "ID-JK", "channel": "web", "description": "x"}
    with TimeSkippingHarness() as harness:
        assert harness.env is not None
        client = harness.env.client
        runtime = harness.factory(models, start)
        case_id = "LAPOR-T-SEARCH-ATTRIBUTES"

        def held() -> dict[str, Any]:
            description = harness.run(client.get_workflow_handle(case_id).describe())
            pairs = description.typed_search_attributes
            return {p.key.name: p.value for p in pairs if p.key.name in NAMES}

        def expected() -> dict[str, Any]:
            values = search_attributes.values(runtime.case(case_id))
            return {name: value for name, value in values.items() if value is not None}

        assert runtime.start("sp4n-lapor", case_id, intake, at=start).accepted
        assert held() == expected()
        verify = Signal("verify", Actor.parse("admin:nasional"), {"tier": "simple"})
        assert runtime.signal(case_id, verify, at=start + timedelta(days=3)).accepted
        assert held() == expected()
        assert held()["LaporAgency"] == "pemprov-dki"

        levels = []
        while (due := runtime.case(case_id).next_due) is not None:
            runtime.advance_to(due + timedelta(seconds=1))
            assert held() == expected()
            levels.append(held()["LaporEscalationLevel"])

        assert levels[-1] == 4 and levels == sorted(levels)
        final = held()
        assert final["LaporStatus"] == "Dieskalasi ke Ombudsman"
        assert "LaporNextDue" not in final


def test_search_attributes_command_registers_once(temporal_servers: tuple[Path, Path]) -> None:
    """On a bare dev server (no ``--search-attribute``): the first call adds all nine, the next
    adds none, and a workflow may then set them."""
    port = free_port()
    binary = str(temporal_servers[0])
    argv = [binary, "server", "start-dev", "--headless", "--ip", "127.0.0.1", "--port", str(port)]
    server = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    lapor = CliRunner()
    command = ["temporal", "search-attributes", "--temporal", f"127.0.0.1:{port}"]
    try:
        wait_until_serving(port, server)
        first = lapor.invoke(app, command)
        second = lapor.invoke(app, command)
    finally:
        stop(server)

    assert first.exit_code == 0, first.output
    assert f"added: {', '.join(sorted(NAMES))}" in first.output
    assert second.exit_code == 0, second.output
    assert "added: none" in second.output
