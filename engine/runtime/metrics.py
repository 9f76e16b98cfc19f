"""Prometheus metrics of the embedded runtime: what was decided, what lapsed, how far behind we run.

Everything is registered on the module's own ``registry`` rather than prometheus_client's global
default, so tests read exact values and an embedding application's own metrics never collide with
ours. Labels are bounded by the definitions (workflow, clock, ladder rung, rejection code), never by
case ids, agencies' free text or anything a reporter typed.
"""

from __future__ import annotations

import time
from collections import Counter as Tally
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from engine.domain.errors import LaporError
from engine.domain.events import Escalated, Lapsed

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from engine.domain.machine import Decision

__all__ = [
    "batch_duration_seconds",
    "calendar_days_left",
    "decisions_total",
    "escalations_total",
    "lapses_total",
    "outbox_backlog",
    "outbox_deliveries_total",
    "quarantined_total",
    "record_decisions",
    "registry",
    "rejections_total",
    "serve",
    "time_batch",
    "timer_lag_seconds",
]

registry = CollectorRegistry(auto_describe=True)
"""The registry every lapor metric lives in; ``serve`` exports exactly this one."""

decisions_total = Counter(
    "lapor_decisions_total",
    "Decisions taken, by outcome: accepted (recorded), rejected, or noop (a stale or early timer).",
    ["workflow", "kind"],
    registry=registry,
)
rejections_total = Counter(
    "lapor_rejections_total",
    "Signals refused, by stable rejection code.",
    ["workflow", "code"],
    registry=registry,
)
quarantined_total = Counter(
    "lapor_quarantined_total",
    "Cases the timer loop set aside because they could not be decided (see lapor quarantine).",
    registry=registry,
)
lapses_total = Counter(
    "lapor_lapses_total",
    "SLA deadlines that passed, by clock (each rung of a ladder counts once).",
    ["workflow", "clock"],
    registry=registry,
)
escalations_total = Counter(
    "lapor_escalations_total",
    "Escalations, by ladder level and the party escalated to.",
    ["workflow", "level", "to"],
    registry=registry,
)
outbox_deliveries_total = Counter(
    "lapor_outbox_deliveries_total",
    "Outbox delivery attempts, by handler and outcome "
    "(delivered, failed, dead, unhandled, undeliverable, held).",
    ["handler", "outcome"],
    registry=registry,
)
calendar_days_left = Gauge(
    "lapor_calendar_days_left",
    "Days until the calendar of a workflow's open cases runs out (the least of its models).",
    ["workflow"],
    registry=registry,
)
timer_lag_seconds = Gauge(
    "lapor_timer_lag_seconds",
    "How late the timer loop fired the most overdue timer of its last batch (0 when on time).",
    registry=registry,
)
outbox_backlog = Gauge(
    "lapor_outbox_backlog",
    "Outbox messages not yet delivered (dead letters excluded).",
    registry=registry,
)
batch_duration_seconds = Histogram(
    "lapor_batch_duration_seconds",
    "Wall time of one batch of a runtime loop (timers, outbox).",
    ["loop"],
    # From a handful of rows on SQLite to a full batch of webhooks that time out.
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
    registry=registry,
)


def record_decisions(workflow: str, decisions: Sequence[Decision]) -> None:
    """Count a batch of decisions of one workflow: outcomes, rejections, lapses, escalations."""
    # Tally first, then one increment per label set: a batch holds thousands of decisions and
    # each ``labels()`` call takes a lock.
    kinds: Tally[str] = Tally()
    codes: Tally[str] = Tally()
    lapses: Tally[str] = Tally()
    escalations: Tally[tuple[str, str]] = Tally()
    for decision in decisions:
        if decision.rejection is not None:
            kinds["rejected"] += 1
            codes[decision.rejection.code] += 1
            continue
        kinds["accepted" if decision.accepted else "noop"] += 1
        for effect in decision.effects:
            if isinstance(effect, Lapsed):
                lapses[effect.clock] += 1
            elif isinstance(effect, Escalated):
                escalations[str(effect.level), effect.to] += 1
    for kind, n in kinds.items():
        decisions_total.labels(workflow=workflow, kind=kind).inc(n)
    for code, n in codes.items():
        rejections_total.labels(workflow=workflow, code=code).inc(n)
    for clock, n in lapses.items():
        lapses_total.labels(workflow=workflow, clock=clock).inc(n)
    for (level, to), n in escalations.items():
        escalations_total.labels(workflow=workflow, level=level, to=to).inc(n)


@contextmanager
def time_batch(loop: str) -> Iterator[None]:
    """Observe the wall time of the ``with`` block in ``lapor_batch_duration_seconds{loop}``."""
    started = time.perf_counter()
    try:
        yield
    finally:
        batch_duration_seconds.labels(loop=loop).observe(time.perf_counter() - started)


def serve(port: int, addr: str = "127.0.0.1") -> WSGIServer:
    """Serve ``/metrics`` over HTTP from a daemon thread; ``port=0`` picks a free port.

    Binds to loopback by default: the metrics name workflows and agencies, and exposing them
    beyond the host is a deployment decision. Returns the server (``server_port``,
    ``shutdown()``).
    """
    try:
        server, _thread = start_http_server(port, addr, registry=registry)
    except OSError as exc:
        raise LaporError(f"cannot serve metrics on {addr}:{port}: {exc.strerror or exc}") from None
    return server
