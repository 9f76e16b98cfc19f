"""Metrics count what the core decided, and the exporter serves them over real HTTP.

Counters live in one module-level registry shared by the whole test run, so every test reads the
change it caused (``delta``) under a workflow label of its own rather than absolute values.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Callable, Iterator
from datetime import datetime
from wsgiref.simple_server import WSGIServer

import pytest

from engine.domain.errors import LaporError
from engine.domain.events import Actor, Signal
from engine.domain.machine import Decision
from engine.runtime import metrics
from engine.runtime.memory import MemoryRuntime

START = datetime.fromisoformat("2026-03-13T15:00:00+07:00")
INTAKE = {
    "category": "kesehatan",
    "region": "ID-JK",
    "channel": "sms_1708",
    "description": "Obat tidak tersedia",
}


def value(name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


@pytest.fixture
def lapsed_and_rejected(make_runtime: Callable[[datetime], MemoryRuntime]) -> list[Decision]:
    """Real decisions: a start, a verification lapse that escalates, a wrong-role signal."""
    decisions: list[Decision] = []
    runtime = make_runtime(START)
    runtime.observer = decisions.append
    runtime.start("sp4n-lapor", "LAP-M1", INTAKE)
    runtime.advance_to(datetime.fromisoformat("2026-03-26T12:00:00+07:00"))
    wrong_role = Signal("verify", Actor.parse("agency:kemenkes"), {"agency": "kemenkes"})
    runtime.signal("LAP-M1", wrong_role)
    return decisions


def test_record_decisions_counts_outcomes_rejections_lapses_and_escalations(
    lapsed_and_rejected: list[Decision],
) -> None:
    workflow = "wf-counts"

    metrics.record_decisions(workflow, [*lapsed_and_rejected, Decision(None)])

    assert value("lapor_decisions_total", workflow=workflow, kind="accepted") == 2
    assert value("lapor_decisions_total", workflow=workflow, kind="rejected") == 1
    assert value("lapor_decisions_total", workflow=workflow, kind="noop") == 1
    assert value("lapor_rejections_total", workflow=workflow, code="wrong_role") == 1
    assert value("lapor_lapses_total", workflow=workflow, clock="verification") == 1
    assert (
        value("lapor_escalations_total", workflow=workflow, level="1", to="admin_supervisor") == 1
    )


def test_counters_accumulate_across_batches(lapsed_and_rejected: list[Decision]) -> None:
    workflow = "wf-accumulate"

    metrics.record_decisions(workflow, lapsed_and_rejected)
    metrics.record_decisions(workflow, lapsed_and_rejected)
    metrics.record_decisions(workflow, [])

    assert value("lapor_lapses_total", workflow=workflow, clock="verification") == 2
    assert value("lapor_rejections_total", workflow=workflow, code="wrong_role") == 2


def test_time_batch_observes_into_the_histogram() -> None:
    before = value("lapor_batch_duration_seconds_count", loop="test-loop")

    with metrics.time_batch("test-loop"):
        pass

    assert value("lapor_batch_duration_seconds_count", loop="test-loop") == before + 1


@pytest.fixture
def exporter() -> Iterator[WSGIServer]:
    server = metrics.serve(0)  # port 0: the OS picks a free one, no race with other tests
    yield server
    server.shutdown()
    server.server_close()


def test_exporter_serves_the_counters_and_gauges_over_http(
    exporter: WSGIServer, lapsed_and_rejected: list[Decision]
) -> None:
    metrics.record_decisions("wf-scrape", lapsed_and_rejected)
    metrics.timer_lag_seconds.set(2.5)
    metrics.outbox_backlog.set(17)

    with urllib.request.urlopen(
        f"http://127.0.0.1:{exporter.server_port}/metrics", timeout=5
    ) as response:
        assert response.status == 200
        text = response.read().decode()

    samples = set(text.splitlines())
    assert 'lapor_decisions_total{kind="accepted",workflow="wf-scrape"} 2.0' in samples
    assert 'lapor_rejections_total{code="wrong_role",workflow="wf-scrape"} 1.0' in samples
    assert 'lapor_lapses_total{clock="verification",workflow="wf-scrape"} 1.0' in samples
    assert (
        'lapor_escalations_total{level="1",to="admin_supervisor",workflow="wf-scrape"} 1.0'
        in samples
    )
    assert "lapor_timer_lag_seconds 2.5" in samples
    assert "lapor_outbox_backlog 17.0" in samples
    assert "# TYPE lapor_batch_duration_seconds histogram" in samples
    assert "python_gc_objects_collected_total" not in text  # our registry, not the global one


def test_exporter_binds_loopback_by_default(exporter: WSGIServer) -> None:
    assert exporter.server_address[0] == "127.0.0.1"


def test_busy_port_is_an_error_not_a_traceback(exporter: WSGIServer) -> None:
    port = exporter.server_port

    with pytest.raises(LaporError, match=f"cannot serve metrics on 127.0.0.1:{port}"):
        metrics.serve(port)
