"""``HttpClient`` and ``AsyncHttpClient`` against a real ``lapor serve``: a case's whole life,
retries that never open a second case (through a proxy on 127.0.0.1 that drops, stalls or
refuses a request), refusals as typed errors, paging, tracking, and secrets kept out of logs."""

from __future__ import annotations

import asyncio
import http.server
import json
import logging
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from engine.faces.sdk_http import (
    AsyncHttpClient,
    CaseNotFound,
    HttpClient,
    IdempotencyKeyReused,
    IdentityForbidden,
    Rejected,
    ServiceUnavailable,
    StartedCase,
    Unauthorized,
)
from engine.runtime.errors import KeyReuseError, UnknownCaseError
from tests.api.conftest import COMPLAINT, Server
from tests.lapor_process import ROOT

WORKFLOW = "sp4n-lapor"


def _client(server: Server, who: str | None, **options: Any) -> HttpClient:
    return HttpClient(server.url, None if who is None else server.keys[who], **options)


def test_importing_the_http_sdk_does_not_import_the_server() -> None:
    probe = (
        "import sys, engine.faces.sdk_http; "
        "print(sorted({m.split('.')[0] for m in sys.modules} "
        "& {'fastapi', 'starlette', 'uvicorn', 'sqlalchemy'}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"


def test_a_case_goes_from_filing_to_the_reporters_confirmation(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with (
        _client(server, "channel") as channel,
        _client(server, "admin") as admin,
        _client(server, "kemenkes") as kemenkes,
    ):
        started = channel.start(WORKFLOW, COMPLAINT, reporter={"name": "Siti Rahayu"})
        case, token = started.case_id, started.reporter_token
        assert token is not None and started.tracking_number == case
        assert (started.state, started.status, started.replayed) == (
            "submitted",
            "Belum Terverifikasi",
            False,
        )
        verified = admin.signal(case, "verify", {"agency": "kemenkes"})
        assert (verified.state, verified.status) == ("disposed", "Terdisposisi")
        kemenkes.signal(case, "follow_up", {"response": "Sedang kami periksa."})
        answered = kemenkes.signal(case, "complete", {"response": "Layanan dibuka kembali."})
        assert answered.state == "awaiting_reporter"
        assert "confirm" in (channel.track(case, token).reporter_actions or ())
        confirmed = channel.signal(case, "confirm", {"rating": 5}, reporter_token=token)
        assert confirmed.replayed is False and confirmed.seq is not None

        status = admin.status(case)
        assert status.closed_at is not None and status.agency == "kemenkes"
        assert status.data["description"] == COMPLAINT["description"]
        history = kemenkes.history(case)
        assert [entry.seq for entry in history] == list(range(1, len(history) + 1))
        assert [e.event.get("name") for e in history][-1] == "confirm"
        opened = admin.identity(case)
        assert opened.identity == {"name": "Siti Rahayu"}
        with pytest.raises(IdentityForbidden) as refused:
            kemenkes.identity(case)
        assert refused.value.status == 403 and refused.value.case_id == case
        assert channel.track(case).closed is True

    secrets_ = [*server.keys.values(), token]
    shown = caplog.text + repr(started) + repr(channel) + repr(opened)
    assert [s for s in secrets_ if s in shown] == []


def test_the_async_client_runs_the_same_lifecycle(server: Server) -> None:
    async def lifecycle() -> tuple[str, str]:
        async with (
            AsyncHttpClient(server.url, server.keys["channel"]) as channel,
            AsyncHttpClient(server.url, server.keys["admin"]) as admin,
            AsyncHttpClient(server.url, server.keys["kemenkes"]) as kemenkes,
        ):
            assert (await channel.health()).status == "ok"
            assert (await channel.ready()).status == "ready"
            started = await channel.start(WORKFLOW, COMPLAINT)
            case, token = started.case_id, started.reporter_token
            await admin.signal(case, "verify", {"agency": "kemenkes"})
            await kemenkes.signal(case, "follow_up", {"response": "Sedang kami periksa."})
            await kemenkes.signal(case, "complete", {"response": "Layanan dibuka kembali."})
            await channel.signal(case, "confirm", {"rating": 4}, reporter_token=token)
            history = await admin.history(case)
            listed = [s.case_id async for s in kemenkes.iter_cases(status="closed")]
            assert case in listed
            return (await admin.status(case)).state, history[-1].event["name"]

    state, last = asyncio.run(lifecycle())
    assert state == "closed" and last == "confirm"


def test_a_retried_start_with_the_same_key_answers_the_same_case(server: Server) -> None:
    with _client(server, "channel") as channel:
        first = channel.start(WORKFLOW, COMPLAINT, idempotency_key="sdk-intake-0001")
        again = channel.start(WORKFLOW, COMPLAINT, idempotency_key="sdk-intake-0001")
    assert again == StartedCase(**{**_fields(first), "replayed": True})


def test_two_starts_without_a_key_open_two_cases(server: Server) -> None:
    with _client(server, "channel") as channel:
        first, second = (channel.start(WORKFLOW, COMPLAINT) for _ in range(2))
    assert first.case_id != second.case_id and not (first.replayed or second.replayed)


def _fields(started: StartedCase) -> dict[str, Any]:
    return {name: getattr(started, name) for name in StartedCase.__slots__}


def test_the_same_key_with_another_complaint_raises_key_reuse(server: Server) -> None:
    with _client(server, "channel") as channel:
        channel.start(WORKFLOW, COMPLAINT, idempotency_key="sdk-intake-0002")
        with pytest.raises(IdempotencyKeyReused) as reused:
            other = COMPLAINT | {"description": "Keluhan yang lain sama sekali."}
            channel.start(WORKFLOW, other, idempotency_key="sdk-intake-0002")
    error = reused.value
    assert isinstance(error, KeyReuseError)
    assert (error.status, error.code) == (422, "key_reuse")
    assert error.type == "https://lapor-sla.dev/problems/key_reuse"
    assert error.title and error.detail and error.key == "sdk-intake-0002"


def test_another_agencys_case_is_not_found_for_an_agency_key(server: Server) -> None:
    case = server.disposed("kemenkes")["case_id"]
    with _client(server, "kemensos") as kemensos:
        for read in (kemensos.status, kemensos.history):
            with pytest.raises(CaseNotFound) as missing:
                read(case)
            assert isinstance(missing.value, UnknownCaseError)
            assert (missing.value.status, missing.value.case_id) == (404, case)
        with pytest.raises(CaseNotFound):
            kemensos.signal(case, "follow_up", {"response": "Bukan kami."})
        assert case not in {s.case_id for s in kemensos.iter_cases()}


def test_a_refused_signal_raises_rejected_with_the_cores_code(server: Server) -> None:
    case = server.disposed("kemenkes")["case_id"]
    with _client(server, "admin") as admin:
        with pytest.raises(Rejected) as again:
            admin.signal(case, "verify", {"agency": "kemenkes"})
        assert (again.value.status, again.value.code) == (409, "wrong_state")
        assert again.value.type.endswith("/wrong_state")
        with pytest.raises(Rejected) as not_theirs:
            admin.signal(case, "follow_up", {"response": "Bukan peran admin."})
        assert (not_theirs.value.status, not_theirs.value.code) == (403, "wrong_role")


def test_an_unknown_or_missing_key_raises_unauthorized(server: Server) -> None:
    with (
        HttpClient(server.url, "lapor_not-a-key") as stranger,
        pytest.raises(Unauthorized) as refused,
    ):
        stranger.workflows()
    assert refused.value.status == 401 and "lapor_not-a-key" not in str(refused.value)


def test_the_workflows_list_names_the_intake_fields(server: Server) -> None:
    with _client(server, "channel") as channel:
        workflows = {w.name: w for w in channel.workflows()}
    assert set(workflows[WORKFLOW].intake_requires) >= {"category", "region", "description"}
    assert "verify" in {s.name for s in workflows[WORKFLOW].signals}


def test_paging_through_the_list_yields_every_case_once(server: Server) -> None:
    data = COMPLAINT | {"region": "ID-PA"}
    with _client(server, "channel") as channel, _client(server, "supervisor") as supervisor:
        mine = {channel.start(WORKFLOW, data).case_id for _ in range(7)}
        first = supervisor.list(region="ID-PA", page_size=3)
        assert len(first.items) == 3 and first.next_page == 2
        listed = [s.case_id for s in supervisor.iter_cases(region="ID-PA", page_size=3)]
    assert len(listed) == len(set(listed))
    assert mine <= set(listed)


def test_track_shows_a_confidential_report_only_with_its_token(server: Server) -> None:
    with _client(server, "channel") as channel, _client(server, None) as reporter:
        public = channel.start(WORKFLOW, COMPLAINT)
        secret = channel.start(WORKFLOW, COMPLAINT | {"confidential": True})
        seen = reporter.track(public.tracking_number)
        assert seen.reporter_actions is None and seen.status == "Belum Terverifikasi"
        assert seen.next_step
        with pytest.raises(CaseNotFound):
            reporter.track(secret.tracking_number)
        own = reporter.track(secret.tracking_number, secret.reporter_token)
        assert own.tracking_number == secret.case_id and own.reporter_actions is not None
        with pytest.raises(Rejected) as wrong:
            reporter.track(public.tracking_number, secret.reporter_token)
        assert wrong.value.code == "not_the_reporter"


# -- retries through a proxy that fails on purpose ------------------------------------------


@dataclass
class FlakyProxy:
    """An HTTP proxy on 127.0.0.1 in front of the server; ``plan`` says what each request
    meets in turn (then ``forward``): ``drop`` forwards it and closes the connection without
    an answer, ``stall`` forwards it and answers too late, ``busy`` answers 503 with
    ``Retry-After: 1`` without forwarding."""

    upstream: str
    plan: list[str]
    forwarded: list[tuple[str, int, dict[str, Any]]] = field(default_factory=list)
    url: str = ""

    def next_step(self) -> str:
        return self.plan.pop(0) if self.plan else "forward"

    def forward(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Any:
        answer = httpx.request(
            method, self.upstream + path, headers=headers, content=body, timeout=30
        )
        key = headers.get("Idempotency-Key", "")
        self.forwarded.append((key, answer.status_code, answer.json()))
        return answer


@pytest.fixture
def proxy(server: Server) -> Iterator[FlakyProxy]:
    flaky = FlakyProxy(server.url, [])

    class Handler(http.server.BaseHTTPRequestHandler):
        def _relay(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            skip = {"host", "content-length", "connection"}
            headers = {k: v for k, v in self.headers.items() if k.lower() not in skip}
            step = flaky.next_step()
            if step == "busy":
                problem = {"type": "about:blank", "status": 503, "code": "unavailable"}
                self._answer(503, json.dumps(problem).encode(), {"Retry-After": "1"})
                return
            answer = flaky.forward(self.command, self.path, headers, body)
            if step == "drop":
                return  # the connection closes with no answer at all
            if step == "stall":
                time.sleep(1.5)
            self._answer(answer.status_code, answer.content, {})

        def _answer(self, status: int, body: bytes, extra: dict[str, str]) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for name, value in extra.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _relay

        def log_message(self, format: str, *args: Any) -> None:
            pass

    listener = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    flaky.url = f"http://127.0.0.1:{listener.server_address[1]}"
    thread = threading.Thread(target=listener.serve_forever, daemon=True)
    thread.start()
    yield flaky
    listener.shutdown()
    listener.server_close()


def _one_case_behind(proxy: FlakyProxy, started: StartedCase) -> None:
    """Both attempts reached the server with one key; the first opened the case the retry
    answered, and the retry recorded nothing (``replayed``)."""
    starts = [(key, status, body) for key, status, body in proxy.forwarded]
    assert len(starts) == 2 and starts[0][0] == starts[1][0] != ""
    assert [status for _, status, _ in starts] == [201, 200]
    assert starts[0][2]["case_id"] == started.case_id and started.replayed is True


def test_a_start_retried_after_a_dropped_connection_opens_exactly_one_case(
    server: Server, proxy: FlakyProxy
) -> None:
    data = COMPLAINT | {"region": "ID-MU"}
    with _client(server, "supervisor") as supervisor:
        before = {s.case_id for s in supervisor.iter_cases(region="ID-MU")}
    proxy.plan = ["drop"]
    with HttpClient(proxy.url, server.keys["channel"], backoff=0.05) as channel:
        started = channel.start(WORKFLOW, data)
    _one_case_behind(proxy, started)
    with _client(server, "supervisor") as supervisor:
        after = {s.case_id for s in supervisor.iter_cases(region="ID-MU")}
    assert after - before == {started.case_id}


def test_a_start_retried_after_a_timeout_opens_exactly_one_case(
    server: Server, proxy: FlakyProxy
) -> None:
    proxy.plan = ["stall"]
    with HttpClient(proxy.url, server.keys["channel"], timeout=0.5, backoff=0.05) as channel:
        started = channel.start(WORKFLOW, COMPLAINT)
    _one_case_behind(proxy, started)


def test_an_async_signal_retried_after_a_dropped_connection_is_recorded_once(
    server: Server, proxy: FlakyProxy
) -> None:
    case = server.start()["case_id"]

    async def verify() -> tuple[int | None, bool]:
        async with AsyncHttpClient(proxy.url, server.keys["admin"], backoff=0.05) as admin:
            done = await admin.signal(case, "verify", {"agency": "kemenkes"})
            return done.seq, done.replayed

    proxy.plan = ["drop"]
    seq, replayed = asyncio.run(verify())
    assert replayed is True and [status for _, status, _ in proxy.forwarded] == [200, 200]
    with _client(server, "admin") as admin:
        assert [e.seq for e in admin.history(case)] == [1, seq]


def test_a_busy_answer_is_retried_after_its_retry_after(server: Server, proxy: FlakyProxy) -> None:
    proxy.plan = ["busy"]
    began = time.monotonic()
    with HttpClient(proxy.url, server.keys["channel"], backoff=0.05) as channel:
        started = channel.start(WORKFLOW, COMPLAINT)
    assert time.monotonic() - began >= 1.0
    assert started.replayed is False and len(proxy.forwarded) == 1


def test_a_retry_after_longer_than_the_client_waits_raises_at_once(
    server: Server, proxy: FlakyProxy
) -> None:
    proxy.plan = ["busy", "busy"]
    with (
        HttpClient(proxy.url, server.keys["channel"], max_retry_after=0.5) as channel,
        pytest.raises(ServiceUnavailable) as failed,
    ):
        channel.workflows()
    assert (failed.value.status, failed.value.retry_after) == (503, 1.0)
    assert proxy.plan == ["busy"] and proxy.forwarded == []


def test_a_service_that_never_answers_raises_unavailable_after_the_retries() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    began = time.monotonic()
    with (
        HttpClient(url, "lapor_unused", retries=2, backoff=0.1) as client,
        pytest.raises(ServiceUnavailable) as failed,
    ):
        client.health()
    assert time.monotonic() - began >= 0.1  # two back-offs of at least 0.05 s and 0.1 s
    assert failed.value.code == "unreachable" and "3 attempt(s)" in failed.value.detail
