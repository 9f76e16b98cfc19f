"""Agency webhook subscriptions: managed over ``/v1/subscriptions``, delivered through the outbox
as Standard Webhooks 1.0 and verified with the ``standardwebhooks`` package.

A server of its own (the delivery run below settles every message of its database), a real
receiver on 127.0.0.1, and ``lapor run --handler agency-webhooks`` as an operator runs it.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from engine.runtime.identity import KEY_ENV
from tests.api.conftest import COMPLAINT, Server, serve
from tests.lapor_process import lapor

IDENTITY = {"name": "Bambang Pelapor Unik", "phone": "+6281377665544", "email": "bpu.88@example.id"}
TYPED_PHONE = "081377665544"


class Receiver:
    """An agency system's webhook endpoint on 127.0.0.1: records what it is sent."""

    def __init__(self, status: int = 204) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.status = status
        receiver = self

        class Handle(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handle)
        self.url = f"http://127.0.0.1:{self.server.server_port}/lapor/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def hooks_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from serve(tmp_path_factory.mktemp("hooks"), "--rate-limit", "100000/minute")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver()
    yield made
    made.close()


def _deliver(server: Server) -> str:
    ran = lapor(
        "run", "--db", f"sqlite:///{server.log.parent / 'lapor.db'}",
        "--handler", "agency-webhooks", "--handler", "log",
        "--until", datetime.now(UTC).isoformat(), "--log-json",
        cwd=server.log.parent, env={KEY_ENV: os.environ[KEY_ENV]},
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    return ran.stdout + ran.stderr


def _subscribe(server: Server, who: str, url: str, **body: Any) -> dict[str, Any]:
    made = server.call("POST", "/v1/subscriptions", who=who, json={"url": url, **body})
    assert made.status_code == 201, made.text
    answer: dict[str, Any] = made.json()
    return answer


def test_an_agency_receives_its_cases_changes_signed_as_standard_webhooks_without_identity(
    hooks_server: Server, receiver: Receiver
) -> None:
    made = _subscribe(hooks_server, "kemenkes", receiver.url)
    assert made["agency"] == "kemenkes" and made["secret"].startswith("whsec_")
    anonymous = COMPLAINT | {
        "anonymous": True,
        "description": f"Hubungi saya di {TYPED_PHONE}, loket tutup.",
    }
    ours = hooks_server.disposed("kemenkes", data=anonymous, reporter=IDENTITY)["case_id"]
    theirs = hooks_server.disposed("kemensos")["case_id"]

    logs = _deliver(hooks_server)

    assert receiver.received, "the disposition reached kemenkes' endpoint"
    verifier = Webhook(made["secret"])
    cases = set()
    for headers, body in receiver.received:
        event = verifier.verify(body, headers)  # raises unless signed with the secret, in time
        assert headers["webhook-id"] == event["data"]["idempotency_key"]
        assert headers["webhook-signature"].startswith("v1,")
        assert event["type"].startswith("case.") and event["data"]["case"]["agency"] == "kemenkes"
        cases.add(event["data"]["case_id"])
        text = body.decode()
        assert "[disamarkan]" in text and TYPED_PHONE not in text
        for value in IDENTITY.values():
            assert value not in text
    assert cases == {ours} and theirs not in cases
    assert made["secret"] not in logs
    assert all(value not in logs for value in IDENTITY.values())
    stored = b"".join(p.read_bytes() for p in hooks_server.log.parent.glob("lapor.db*"))
    assert made["secret"].encode() not in stored  # sealed by the key ring
    assert made["secret"] not in hooks_server.log_text()


def test_a_failing_endpoint_keeps_the_message_pending_for_a_retry(
    hooks_server: Server, receiver: Receiver
) -> None:
    _subscribe(hooks_server, "admin", receiver.url, agency="kemenhub")
    receiver.status = 500
    case = hooks_server.disposed("kemenhub")["case_id"]

    _deliver(hooks_server)

    listed = lapor(
        "outbox", "list", "--case", case, "--json",
        "--db", f"sqlite:///{hooks_server.log.parent / 'lapor.db'}", cwd=hooks_server.log.parent,
    )  # fmt: skip
    pending = [m for m in json.loads(listed.stdout) if m["target"] in ("agency", "kemenhub")]
    assert pending and all("answered HTTP 500" in m["last_error"] for m in pending)
    assert all("/lapor/hook" not in m["last_error"] for m in pending)  # the host only


def test_subscriptions_are_listed_without_secrets_and_removed_only_by_their_agency(
    hooks_server: Server,
) -> None:
    made = _subscribe(hooks_server, "kemenkes", "https://simpel.kemkes.go.id/hooks/lapor")

    own = hooks_server.call("GET", "/v1/subscriptions", who="kemenkes").json()
    other = hooks_server.call("GET", "/v1/subscriptions", who="kemensos").json()
    every = hooks_server.call("GET", "/v1/subscriptions?agency=kemenkes", who="admin").json()

    assert made["id"] in {s["id"] for s in own} and made["id"] in {s["id"] for s in every}
    assert all("secret" not in s for s in own + every) and made["secret"] not in str(own)
    assert made["id"] not in {s["id"] for s in other}
    refused = hooks_server.call("DELETE", f"/v1/subscriptions/{made['id']}", who="kemensos")
    assert refused.status_code == 404 and refused.json()["code"] == "unknown_subscription"
    removed = hooks_server.call("DELETE", f"/v1/subscriptions/{made['id']}", who="kemenkes")
    assert removed.status_code == 204
    again = hooks_server.call("DELETE", f"/v1/subscriptions/{made['id']}", who="kemenkes")
    assert again.status_code == 404


@pytest.mark.parametrize(
    ("who", "body", "status", "code"),
    [
        ("kemenkes", {"url": "file:///etc/passwd"}, 422, "invalid_request"),
        ("kemenkes", {"url": "ftp://files.example.id/x"}, 422, "invalid_request"),
        ("kemenkes", {"url": "http:///no-host"}, 422, "invalid_request"),
        ("kemenkes", {"url": "https://a.example.id/", "agency": "kemensos"}, 403, "forbidden"),
        ("admin", {"url": "https://a.example.id/"}, 422, "invalid_request"),
        ("admin", {"url": "https://a.example.id/", "agency": "kemenkess"}, 422, "invalid_request"),
        ("channel", {"url": "https://a.example.id/", "agency": "kemenkes"}, 403, "forbidden"),
    ],
    ids=[
        "file",
        "ftp",
        "no-host",
        "other-agency",
        "admin-without-agency",
        "admin-unknown-agency",
        "channel",
    ],
)
def test_a_subscription_is_refused_for_a_bad_url_or_someone_elses_agency(
    hooks_server: Server, who: str, body: dict[str, Any], status: int, code: str
) -> None:
    answer = hooks_server.call("POST", "/v1/subscriptions", who=who, json=body)

    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["code"] == code


def test_the_secret_verifies_only_the_exact_bytes_and_id_it_signed() -> None:
    from engine.runtime.standard_webhooks import new_secret, sign

    secret = new_secret()
    body = b'{"type":"case.notify"}'
    now = int(datetime.now(UTC).timestamp())
    headers = {
        "webhook-id": "LAP-1:2:0",
        "webhook-timestamp": str(now),
        "webhook-signature": sign(secret, "LAP-1:2:0", now, body),
    }
    assert Webhook(secret).verify(body, headers) == {"type": "case.notify"}
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body + b" ", headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, headers | {"webhook-id": "LAP-1:2:1"})
