"""An agency's webhook subscription hears every status change of the cases disposed to it:
each once (``webhook-id`` is fixed by the history record), in order per case, signed as
Standard Webhooks 1.0, without the reporter, and nothing of another agency's cases.

A real ``lapor serve`` over an SQLite file and over PostgreSQL, a webhook receiver on
127.0.0.1 that verifies with the ``standardwebhooks`` package, and ``lapor run --handler
agency-webhooks`` as an operator runs it.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from engine.runtime.identity import KEY_ENV
from tests.api.conftest import COMPLAINT, Server, serve
from tests.lapor_process import lapor
from tests.runtime.postgres import shared_server

IDENTITY = {"name": "Sri Pelapor Rahasia", "phone": "+6281299887766", "email": "sri.p77@example.id"}
TYPED_PHONE = "081299887766"
STATUS = "case.status_changed"


@dataclass
class Hooks:
    """A ``lapor serve`` of this module's own, and the database ``lapor run`` delivers from."""

    server: Server
    db: str
    folder: Path
    made: list[str] = field(default_factory=list)  # subscriptions to remove after each test

    def subscribe(self, who: str, url: str, **body: Any) -> str:
        """Subscribe ``url``; its secret."""
        answer = self.server.call("POST", "/v1/subscriptions", who=who, json={"url": url, **body})
        assert answer.status_code == 201, answer.text
        self.made.append(answer.json()["id"])
        secret: str = answer.json()["secret"]
        return secret

    def signal(self, case: str, name: str, who: str, **extra: Any) -> None:
        answer = self.server.call("POST", f"/v1/complaints/{case}/signals/{name}", who=who, **extra)
        assert answer.status_code == 200, answer.text

    def deliver(self, ahead: timedelta = timedelta(0)) -> str:
        """``lapor run`` up to now (or ``ahead`` of it, as a simulation); its log."""
        until = datetime.now(UTC) + ahead
        beyond = ["--beyond-now"] if ahead else []
        ran = lapor(
            "run", "--db", self.db, "--handler", "agency-webhooks", "--handler", "log",
            "--until", until.isoformat(), *beyond, "--log-json",
            cwd=self.folder, env={KEY_ENV: os.environ[KEY_ENV]},
        )  # fmt: skip
        assert ran.returncode == 0, ran.stderr
        return ran.stdout + ran.stderr

    def outbox(self, case: str) -> list[dict[str, Any]]:
        listed = lapor(
            "outbox", "list", "--case", case, "--state", "all", "--json", "--db", self.db,
            cwd=self.folder,
        )  # fmt: skip
        assert listed.returncode == 0, listed.stderr
        messages: list[dict[str, Any]] = json.loads(listed.stdout)
        return messages


class Receiver:
    """An agency system's endpoint on 127.0.0.1: records every request, answers 500 to those
    ``failing`` picks (by the event's data) and 204 to the rest."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes, int]] = []
        self.failing: Callable[[dict[str, Any]], bool] = lambda data: False
        receiver = self

        class Handle(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                data = json.loads(body).get("data", {})
                status = 500 if receiver.failing(data) else 204
                headers = {k.lower(): v for k, v in self.headers.items()}
                receiver.received.append((headers, body, status))
                self.send_response(status)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handle)
        self.url = f"http://127.0.0.1:{self.server.server_port}/lapor/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def status_changes(self, secret: str, case: str) -> list[tuple[dict[str, str], Any]]:
        """(headers, verified event) of each accepted status change of ``case``, as received.
        Verification raises unless the body is signed with ``secret``, fresh and untouched."""
        verifier = Webhook(secret)
        found = []
        for headers, body, status in self.received:
            event = verifier.verify(body, headers)
            if status == 204 and event["type"] == STATUS and event["data"]["case_id"] == case:
                found.append((headers, event))
        return found

    def mentions(self, text: str) -> bool:
        return any(text in body.decode() for _, body, _ in self.received)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def module_hooks(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Hooks]:
    folder = tmp_path_factory.mktemp(f"status-{request.param}")
    db = (
        shared_server().create_database()
        if request.param == "postgresql"
        else f"sqlite:///{folder / 'lapor.db'}"
    )
    for server in serve(folder, "--rate-limit", "100000/minute", db=db):
        yield Hooks(server, db, folder)


@pytest.fixture
def hooks(module_hooks: Hooks) -> Iterator[Hooks]:
    """The module's server; the subscriptions a test makes are removed after it, so the next
    test's receivers are the only ones its agencies have."""
    yield module_hooks
    for made in module_hooks.made:
        module_hooks.server.call("DELETE", f"/v1/subscriptions/{made}", who="admin")
    module_hooks.made.clear()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver()
    yield made
    made.close()


@pytest.fixture
def other_receiver() -> Iterator[Receiver]:
    made = Receiver()
    yield made
    made.close()


def _transitions(events: list[tuple[dict[str, str], Any]]) -> list[tuple[str, str]]:
    return [(e["data"]["from"]["status"], e["data"]["to"]["status"]) for _, e in events]


def test_subscriber_hears_each_status_change_of_its_case_in_order(
    hooks: Hooks, receiver: Receiver
) -> None:
    secret = hooks.subscribe("kemenkes", receiver.url)
    started = hooks.server.disposed("kemenkes")
    case = started["case_id"]
    hooks.signal(case, "follow_up", "kemenkes", json={"data": {"response": "Kami periksa."}})
    hooks.deliver()
    hooks.signal(case, "complete", "kemenkes", json={"data": {"response": "Sudah buka."}})
    token = {"Reporter-Token": started["reporter_token"]}
    hooks.signal(case, "confirm", "channel", json={"data": {"rating": 5}}, headers=token)
    hooks.deliver()

    events = receiver.status_changes(secret, case)

    assert [e["data"]["seq"] for _, e in events] == [2, 3, 4, 5]
    assert _transitions(events) == [
        ("Belum Terverifikasi", "Terdisposisi"),
        ("Terdisposisi", "Ditindaklanjuti"),
        ("Ditindaklanjuti", "Menunggu Tanggapan Pelapor"),
        ("Menunggu Tanggapan Pelapor", "Selesai"),  # the reporter's: no message before
    ]
    assert [(e["data"]["cause"]["signal"], e["data"]["cause"]["by"]) for _, e in events] == [
        ("verify", "admin"),
        ("follow_up", "agency"),
        ("complete", "agency"),
        ("confirm", "reporter"),
    ]
    for headers, event in events:
        seq = event["data"]["seq"]
        assert headers["webhook-id"] == event["data"]["idempotency_key"]
        assert headers["webhook-id"] == f"{case}:{seq}:status:kemenkes"
        assert headers["webhook-signature"].startswith("v1,")
        assert event["data"]["case"]["agency"] == "kemenkes"
    assert events[-1][1]["data"]["to"]["outcome"] == "resolved"


def test_a_retry_carries_the_same_webhook_id_and_later_changes_wait_for_it(
    hooks: Hooks, receiver: Receiver
) -> None:
    secret = hooks.subscribe("kemenkes", receiver.url)
    case = hooks.server.disposed("kemenkes")["case_id"]
    receiver.failing = lambda data: data.get("case_id") == case and data.get("seq") == 3
    hooks.signal(case, "follow_up", "kemenkes", json={"data": {"response": "Kami periksa."}})
    hooks.signal(case, "complete", "kemenkes", json={"data": {"response": "Sudah buka."}})

    hooks.deliver()

    assert [e["data"]["seq"] for _, e in receiver.status_changes(secret, case)] == [2]
    waiting = {m["seq"]: m for m in hooks.outbox(case) if m["kind"] == "status_changed"}
    assert waiting[3]["state"] == "pending" and "HTTP 500" in waiting[3]["last_error"]
    assert waiting[4]["state"] == "pending" and waiting[4]["last_error"].startswith("held:")
    assert not receiver.mentions(f"{case}:4:status"), "the newer change never overtook it"

    receiver.failing = lambda data: False
    hooks.deliver(ahead=timedelta(minutes=1))  # past the retry's backoff

    events = receiver.status_changes(secret, case)
    assert [e["data"]["seq"] for _, e in events] == [2, 3, 4]
    attempts = [h["webhook-id"] for h, body, _ in receiver.received if b'"seq":3' in body]
    assert attempts == [f"{case}:3:status:kemenkes"] * 2  # failed, then retried: one id


def test_another_agencys_subscription_hears_nothing_of_the_case(
    hooks: Hooks, receiver: Receiver, other_receiver: Receiver
) -> None:
    hooks.subscribe("kemenkes", receiver.url)
    hooks.subscribe("kemensos", other_receiver.url)
    case = hooks.server.disposed("kemenkes")["case_id"]
    hooks.signal(case, "complete", "kemenkes", json={"data": {"response": "Sudah buka."}})

    hooks.deliver()

    assert receiver.mentions(case)
    assert not other_receiver.mentions(case)


def test_an_anonymous_reporters_identity_is_never_in_a_delivered_body(
    hooks: Hooks, receiver: Receiver
) -> None:
    secret = hooks.subscribe("kemenkes", receiver.url)
    anonymous = COMPLAINT | {
        "anonymous": True,
        "description": f"Hubungi saya di {TYPED_PHONE}, loket tutup.",
    }
    started = hooks.server.disposed("kemenkes", data=anonymous, reporter=IDENTITY)
    case = started["case_id"]
    hooks.signal(case, "complete", "kemenkes", json={"data": {"response": "Sudah buka."}})
    token = {"Reporter-Token": started["reporter_token"]}
    disputed = {"reason": f"Belum buka. Balas ke {IDENTITY['email']}"}
    hooks.signal(case, "dispute", "channel", json={"data": disputed}, headers=token)

    logs = hooks.deliver()

    events = receiver.status_changes(secret, case)
    assert [e["data"]["cause"]["signal"] for _, e in events] == ["verify", "complete", "dispute"]
    for _, body, _ in receiver.received:
        text = body.decode()
        assert TYPED_PHONE not in text
        assert all(value not in text for value in IDENTITY.values())
    assert all("[disamarkan]" in json.dumps(e["data"]["case"]["data"]) for _, e in events)
    assert all(value not in logs for value in IDENTITY.values())


def test_the_agency_a_case_leaves_hears_it_left_without_the_case(
    hooks: Hooks, receiver: Receiver, other_receiver: Receiver
) -> None:
    kemenkes = hooks.subscribe("kemenkes", receiver.url)
    kemensos = hooks.subscribe("kemensos", other_receiver.url)
    case = hooks.server.disposed("kemenkes")["case_id"]
    moved = {"agency": "kemensos", "reason": "Urusan bantuan sosial."}
    hooks.signal(case, "not_authority", "kemenkes", json={"data": moved})

    hooks.deliver()

    left = receiver.status_changes(kemenkes, case)[-1][1]["data"]
    arrived = other_receiver.status_changes(kemensos, case)
    assert (left["seq"], left["from"]["agency"], left["to"]["agency"]) == (
        3,
        "kemenkes",
        "kemensos",
    )
    assert left["case"] is None  # kemenkes may not see the case any more
    assert [e["data"]["seq"] for _, e in arrived] == [3]
    assert arrived[0][1]["data"]["case"]["agency"] == "kemensos"


def test_no_status_row_for_an_agency_without_a_subscription_and_none_kept_after_it_leaves(
    hooks: Hooks, receiver: Receiver
) -> None:
    unsubscribed = hooks.server.disposed("kemenkes")["case_id"]
    assert not [m for m in hooks.outbox(unsubscribed) if m["kind"] == "status_changed"]

    hooks.subscribe("kemenkes", receiver.url)
    case = hooks.server.disposed("kemenkes")["case_id"]
    for made in hooks.made:
        hooks.server.call("DELETE", f"/v1/subscriptions/{made}", who="kemenkes")
    hooks.made.clear()
    hooks.deliver()

    settled = [m for m in hooks.outbox(case) if m["kind"] == "status_changed"]
    assert settled and all(m["state"] == "undeliverable" for m in settled)
    assert not receiver.mentions(case)


def test_escalation_auto_close_and_referral_reach_the_subscriber(
    tmp_path: Path, receiver: Receiver
) -> None:
    # A server of its own: the run below records weeks of lapses ahead of the wall clock.
    for server in serve(tmp_path, "--rate-limit", "100000/minute"):
        hooks = Hooks(server, f"sqlite:///{tmp_path / 'lapor.db'}", tmp_path)
        secret = hooks.subscribe("kemenkes", receiver.url)
        ignored = server.disposed("kemenkes")["case_id"]
        answered = server.disposed("kemenkes")["case_id"]
        hooks.signal(answered, "complete", "kemenkes", json={"data": {"response": "Selesai."}})

        hooks.deliver(ahead=timedelta(days=120))

        climbed = receiver.status_changes(secret, ignored)[1:]  # after the disposition
        levels = [e["data"]["to"]["escalation_level"] for _, e in climbed]
        assert levels == sorted(levels) and {1, 2, 3} <= set(levels)
        assert all(e["data"]["cause"] == {"event": "clock_lapsed", "signal": None, "by": "system"}
                   for _, e in climbed)  # fmt: skip
        assert climbed[-1][1]["data"]["to"]["status"] == "Dieskalasi ke Ombudsman"
        closed = receiver.status_changes(secret, answered)
        assert _transitions(closed)[-1] == ("Menunggu Tanggapan Pelapor", "Selesai")
