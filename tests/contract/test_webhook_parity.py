"""A webhook receiver on 127.0.0.1 gets the same signed deliveries from the embedded runtime's
outbox and from Temporal's delivery activity: same idempotency keys, same bytes, same signatures.

The same case (same id, same signals at the same instants) runs once on an SQLite file and once on
the time-skipping Temporal server, each delivering through ``WebhookHandler`` to one receiver,
on its own path so the two are told apart.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from engine.domain.events import Actor, Signal, instant
from engine.domain.model import Model
from engine.runtime.clock import VirtualClock
from engine.runtime.contract import Runtime
from engine.runtime.handlers import WebhookHandler, verify_signature
from engine.sql.embedded import EmbeddedRuntime
from engine.sql.migrations import upgrade
from engine.sql.store import open_engine

pytestmark = [pytest.mark.temporal, pytest.mark.usefixtures("temporal_servers")]

SECRET = "shared-with-the-agency-receiver"
T0 = instant("2026-03-02T10:00:00+07:00")
INTAKE = {"category": "kesehatan", "region": "ID-JK", "channel": "web", "description": "x"}
ADMIN = Actor.parse("admin:nasional")


@dataclass
class Receiver:
    url: str = ""
    received: list[tuple[str, str, bytes, str, bool]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def on(self, path: str) -> list[tuple[str, bytes, str]]:
        """(idempotency key, body, signature) of every valid request to ``path``, by key."""
        with self.lock:
            return sorted((k, b, s) for p, k, b, s, ok in self.received if p == path and ok)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handle(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            signature = self.headers["X-Lapor-Signature"]
            valid = verify_signature(SECRET, body, signature)
            with state.lock:
                state.received.append(
                    (self.path, self.headers["X-Lapor-Idempotency-Key"], body, signature, valid)
                )
            self.send_response(204 if valid else 401)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handle)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state.url = f"http://127.0.0.1:{server.server_port}"
    yield state
    server.shutdown()
    server.server_close()


def drive(runtime: Runtime) -> None:
    """A complaint verified, left unanswered until its follow-up clock climbs the ladder."""
    runtime.start("sp4n-lapor", "LAPOR-2026-WEBHOOK1", INTAKE, at=T0)
    runtime.signal(
        "LAPOR-2026-WEBHOOK1",
        Signal("verify", ADMIN, {"agency": "kemenkes"}),
        at=T0 + timedelta(hours=1),
    )
    runtime.advance_to(instant("2026-03-20T00:00:00+07:00"))
    runtime.deliver(instant("2026-03-20T00:00:00+07:00"))


def test_embedded_and_temporal_send_the_receiver_the_same_signed_bodies(
    receiver: Receiver, models: Mapping[str, Model], tmp_path: Path, harness: Any
) -> None:
    url = f"sqlite:///{tmp_path / 'lapor.db'}"
    upgrade(url)
    engine = open_engine(url)
    embedded = EmbeddedRuntime(
        engine,
        models,
        VirtualClock(T0),
        handlers=[WebhookHandler(f"{receiver.url}/embedded", SECRET)],
    )
    drive(embedded)
    engine.dispose()
    temporal = harness.factory(
        models, T0, handlers=[WebhookHandler(f"{receiver.url}/temporal", SECRET)]
    )
    drive(temporal)

    from_embedded = receiver.on("/embedded")
    from_temporal = receiver.on("/temporal")
    assert len(from_embedded) >= 5  # routed, notifications, escalations
    assert from_temporal == from_embedded
    keys = [key for key, _, _ in from_embedded]
    assert len(keys) == len(set(keys))  # each effect once
    assert all(ok for *_, ok in receiver.received)
