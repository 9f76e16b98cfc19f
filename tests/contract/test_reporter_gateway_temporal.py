"""On Temporal, the delivery activity sends reporter notices through the same gateway handler:
the contact is opened in the worker process (from the workflow's sealed start input), reaches the
gateway receiver on 127.0.0.1, and is in no activity input, result or workflow history."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator, Mapping
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from engine.domain.events import Actor, Signal, instant
from engine.domain.model import Model
from engine.runtime.gateway import ReporterGatewayHandler
from engine.runtime.handlers import LogHandler

pytestmark = [pytest.mark.temporal, pytest.mark.usefixtures("temporal_servers")]

PHONE = "+6281355554444"
T0 = instant("2026-03-02T10:00:00+07:00")
INTAKE = {"category": "kesehatan", "region": "ID-JK", "channel": "sms", "description": "x"}


def _decoded(value: Any) -> str:
    """The history's JSON with every payload's ``data`` (base64) decoded beside it."""
    if isinstance(value, dict):
        parts = [_decoded(v) for v in value.values()]
        data = value.get("data")
        if isinstance(data, str):
            parts.append(base64.b64decode(data).decode("utf-8", "replace"))
        return " ".join(parts)
    if isinstance(value, list):
        return " ".join(_decoded(v) for v in value)
    return str(value)


@pytest.fixture
def gateway() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []

    class Handle(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handle)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/kirim", received
    server.shutdown()
    server.server_close()


def test_the_temporal_delivery_activity_reaches_the_reporter_through_the_gateway(
    gateway: tuple[str, list[dict[str, Any]]], models: Mapping[str, Model], harness: Any
) -> None:
    url, received = gateway
    holder: list[Any] = []
    handlers = [
        ReporterGatewayHandler(url, "gateway-secret", lambda case: holder[0].reporter(case)),
        LogHandler(),
    ]
    runtime = harness.factory(models, T0, handlers=handlers)
    holder.append(runtime)
    admin = Actor.parse("admin:nasional")
    for case, reporter in (
        ("LAPOR-2026-GATEWAY1", {"phone": PHONE}),
        ("LAPOR-2026-GATEWAY2", None),
    ):
        runtime.start("sp4n-lapor", case, INTAKE, reporter=reporter, at=T0)
        verified = runtime.signal(
            case, Signal("verify", admin, {"agency": "kemenkes"}), at=T0 + timedelta(hours=1)
        )
        assert verified.accepted

    report = runtime.deliver(T0 + timedelta(hours=2))

    assert [(m["to"], m["tracking_number"]) for m in received] == [(PHONE, "LAPOR-2026-GATEWAY1")]
    assert report.dead == 0  # the anonymous one is settled, not given up on
    for case in ("LAPOR-2026-GATEWAY1", "LAPOR-2026-GATEWAY2"):
        # The server's whole event history: start input, activity inputs and results, queries.
        events = runtime.run(runtime.client.get_workflow_handle(case).fetch_history())
        text = _decoded(json.loads(events.to_json()))
        assert "deliver_effects" in text and "kemenkes" in text  # payloads were decoded
        assert PHONE not in text and PHONE.removeprefix("+") not in text
