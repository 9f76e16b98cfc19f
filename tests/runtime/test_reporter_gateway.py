"""Reporter notifications reach the reporter through the gateway, and the contact goes nowhere else.

End to end on SQLite with the real ``lapor`` command: a case with a distinctive phone number and
e-mail address is started and verified, ``lapor run --handler reporter-gateway:URL`` delivers to a
gateway receiver on 127.0.0.1, which gets the contact; the outbox rows, ``lapor outbox show`` and
every log line of the run never hold it. A reporter without a contact is recorded as
undeliverable, with the reason.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from engine.runtime.handlers import verify_signature
from engine.runtime.identity import KEY_ENV
from engine.sql.store import open_engine
from engine.sql.tables import outbox
from tests.lapor_process import lapor

PHONE = "+6281299887766"
EMAIL = "pelapor.unik.7731@example.id"
SECRET = "gateway-shared-secret"
INTAKE = {
    "category": "kesehatan",
    "region": "ID-JK",
    "channel": "sms",
    "description": "Antrean di Puskesmas Tebet sangat panjang.",
}


class Receiver:
    """An SMS/e-mail gateway's webhook on 127.0.0.1 that records what it is sent."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.status = 202
        received = self.received
        receiver = self

        class Handle(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handle)
        self.url = f"http://127.0.0.1:{self.server.server_port}/kirim"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.received]


@pytest.fixture
def gateway() -> Iterator[Receiver]:
    receiver = Receiver()
    receiver.thread.start()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


def _env() -> dict[str, str]:
    return {KEY_ENV: os.environ[KEY_ENV], "LAPOR_GATEWAY_SECRET": SECRET}


def _case(folder: Path, reporter: dict[str, Any] | None) -> str:
    args = ["start", "--workflow", "sp4n-lapor", "--data", json.dumps(INTAKE)]
    if reporter is not None:
        (folder / "reporter.json").write_text(json.dumps(reporter))
        args += ["--reporter", "reporter.json"]
    started = lapor(*args, cwd=folder, env=_env())
    assert started.returncode == 0, started.stderr
    case_id = started.stdout.strip()
    verified = lapor(
        "signal", case_id, "verify", "--actor", "admin:nasional",
        "--data", '{"agency": "kemenkes"}', cwd=folder, env=_env(),
    )  # fmt: skip
    assert verified.returncode == 0, verified.stderr
    return case_id


def _run(folder: Path, gateway: Receiver) -> str:
    ran = lapor(
        "run", "--handler", f"reporter-gateway:{gateway.url}", "--handler", "log",
        "--until", datetime.now(UTC).isoformat(), "--log-json", cwd=folder, env=_env(),
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    return ran.stdout + ran.stderr


def _files_text(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in folder.iterdir() if p.name.startswith("lapor.db"))


def test_a_reporter_notice_reaches_the_reporters_phone_and_nothing_else_holds_it(
    tmp_path: Path, gateway: Receiver
) -> None:
    assert lapor("db", "upgrade", cwd=tmp_path).returncode == 0
    case_id = _case(tmp_path, {"name": "Siti Pelapor", "phone": PHONE, "email": EMAIL})

    logs = _run(tmp_path, gateway)

    (headers, raw), *more = gateway.received
    assert not more, "one reporter notice (report_verified); the agency's went to the log"
    sent = json.loads(raw)
    assert sent["channel"] == "sms" and sent["to"] == PHONE
    assert sent["tracking_number"] == case_id and sent["template"] == "report_verified"
    assert "diverifikasi" in sent["text"] and case_id in sent["text"]
    assert sent["idempotency_key"] == headers["x-lapor-idempotency-key"]
    assert verify_signature(SECRET, raw, headers["x-lapor-signature"])
    engine = open_engine(f"sqlite:///{tmp_path / 'lapor.db'}")
    with engine.connect() as conn:
        rows = [dict(row._mapping) for row in conn.execute(select(outbox))]
    engine.dispose()
    assert rows and all(row["delivered_us"] is not None for row in rows)
    shown = [lapor("outbox", "show", str(row["id"]), cwd=tmp_path) for row in rows]
    listed = lapor("outbox", "list", "--state", "all", "--json", cwd=tmp_path)
    for secret in (PHONE, EMAIL, PHONE.removeprefix("+"), "Siti Pelapor"):
        assert secret not in repr(rows)
        assert secret not in logs
        assert secret not in listed.stdout
        assert all(secret not in out.stdout + out.stderr for out in shown)
        assert secret.encode() not in _files_text(tmp_path)


def test_the_e_mail_is_used_when_the_reporter_prefers_it(tmp_path: Path, gateway: Receiver) -> None:
    assert lapor("db", "upgrade", cwd=tmp_path).returncode == 0
    _case(tmp_path, {"phone": PHONE, "email": EMAIL, "preferred_channel": "email"})

    _run(tmp_path, gateway)

    assert [(b["channel"], b["to"]) for b in gateway.bodies()] == [("email", EMAIL)]


@pytest.mark.parametrize(
    ("reporter", "reason"),
    [
        (None, "no reporter identity was given"),
        ({"name": "Tanpa Kontak"}, "gave no phone number, e-mail address or push token"),
    ],
    ids=["anonymous", "no-contact"],
)
def test_a_reporter_without_a_contact_is_recorded_undeliverable_with_the_reason(
    tmp_path: Path, gateway: Receiver, reporter: dict[str, Any] | None, reason: str
) -> None:
    assert lapor("db", "upgrade", cwd=tmp_path).returncode == 0
    _case(tmp_path, reporter)

    logs = _run(tmp_path, gateway)

    assert gateway.received == []
    listed = lapor("outbox", "list", "--state", "undeliverable", "--json", cwd=tmp_path)
    (entry,) = json.loads(listed.stdout)
    assert entry["target"] == "reporter" and entry["delivered"] is not None
    assert entry["last_error"].startswith("undeliverable:") and reason in entry["last_error"]
    pending = lapor("outbox", "list", "--json", cwd=tmp_path)
    assert json.loads(pending.stdout) == []
    assert "outbox.undeliverable" in logs
    assert "Tanpa Kontak" not in logs + listed.stdout


def test_a_reporter_whose_identity_was_erased_is_undeliverable_not_retried(
    tmp_path: Path, gateway: Receiver
) -> None:
    assert lapor("db", "upgrade", cwd=tmp_path).returncode == 0
    case_id = _case(tmp_path, {"phone": PHONE})
    erased = lapor("identity", "erase", case_id, "--actor", "admin:nasional", cwd=tmp_path,
                   env=_env())  # fmt: skip
    assert erased.returncode == 0, erased.stderr

    _run(tmp_path, gateway)

    assert gateway.received == []
    listed = lapor("outbox", "list", "--state", "undeliverable", "--json", cwd=tmp_path)
    (entry,) = json.loads(listed.stdout)
    assert entry["last_error"] == "undeliverable: the reporter's identity was erased"


def test_a_failing_gateway_is_retried_and_the_error_names_no_contact(
    tmp_path: Path, gateway: Receiver
) -> None:
    assert lapor("db", "upgrade", cwd=tmp_path).returncode == 0
    _case(tmp_path, {"phone": PHONE, "email": EMAIL})
    gateway.status = 503

    logs = _run(tmp_path, gateway)

    assert [b["to"] for b in gateway.bodies()] == [PHONE]
    listed = lapor("outbox", "list", "--json", cwd=tmp_path)
    (entry,) = json.loads(listed.stdout)
    assert entry["state"] == "pending" and "answered HTTP 503" in entry["last_error"]
    for secret in (PHONE, EMAIL):
        assert secret not in logs + listed.stdout
        assert secret.encode() not in _files_text(tmp_path)


def test_the_gateway_refuses_to_load_without_a_secret_or_a_key_ring(tmp_path: Path) -> None:
    assert lapor("db", "upgrade", cwd=tmp_path).returncode == 0
    until = datetime.now(UTC).isoformat()
    spec = "reporter-gateway:http://127.0.0.1:9/kirim"
    no_secret = lapor("run", "--handler", spec, "--until", until, cwd=tmp_path,
                      env={KEY_ENV: os.environ[KEY_ENV]})  # fmt: skip
    assert no_secret.returncode == 2 and "LAPOR_GATEWAY_SECRET" in no_secret.stderr
    no_ring = lapor("run", "--handler", spec, "--until", until, cwd=tmp_path,
                    env={"LAPOR_GATEWAY_SECRET": SECRET})  # fmt: skip
    assert no_ring.returncode == 2 and "key ring" in no_ring.stderr


def test_a_temporal_worker_refuses_the_gateway_without_a_key_ring_to_open_contacts(
    tmp_path: Path,
) -> None:
    refused = lapor("worker", "--handler", "reporter-gateway:http://127.0.0.1:9/kirim",
                    cwd=tmp_path, env={"LAPOR_GATEWAY_SECRET": SECRET})  # fmt: skip

    assert refused.returncode == 2 and "key ring" in refused.stderr
    assert "Traceback" not in refused.stderr
