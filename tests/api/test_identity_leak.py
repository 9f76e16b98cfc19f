"""A full case through the API with distinctive identity strings: they appear in no response
body or header (but the one identity read Admin Nasional is allowed) and in no server log line."""

from __future__ import annotations

import time

import httpx

from tests.api.conftest import BOTH_DATABASES, COMPLAINT, Server

pytestmark = BOTH_DATABASES

IDENTITY = {
    "name": "Zulkarnain Wibisono-Qx",
    "phone": "081299887766",
    "email": "zulk.qxv@contoh.id",
    "nik": "3171234567890123",
    "address": "Jalan Kenari Qx No. 77",
}
MARKERS = [*IDENTITY.values(), "Zulkarnain", "Wibisono"]


def _leaks(answer: httpx.Response) -> list[str]:
    text = answer.text + "\n" + "\n".join(f"{k}: {v}" for k, v in answer.headers.items())
    return [marker for marker in MARKERS if marker in text]


def test_a_reporters_identity_leaks_into_no_response_header_or_log_line(server: Server) -> None:
    answers: list[httpx.Response] = []

    def call(method: str, path: str, who: str | None, **kwargs: object) -> httpx.Response:
        answer = server.call(method, path, who=who, **kwargs)  # type: ignore[arg-type]
        answers.append(answer)
        return answer

    # Anonymous: the reporter typed their phone number into the text as well.
    data = COMPLAINT | {
        "anonymous": True,
        "description": "Tolong hubungi saya di 081299887766, pelayanan lambat.",
    }
    started = call("POST", "/v1/complaints", "channel", json={"data": data, "reporter": IDENTITY})
    assert started.status_code == 201, started.text
    case = started.json()["case_id"]
    token = {"Reporter-Token": started.json()["reporter_token"]}
    signals = f"/v1/complaints/{case}/signals"
    steps = [
        ("admin", "verify", {"agency": "kemenkes"}, {}),
        ("kemenkes", "follow_up", {"response": "Sedang kami periksa."}, {}),
        ("kemenkes", "complete", {"response": "Layanan sudah dibuka kembali."}, {}),
        ("channel", "confirm", {"rating": 5}, token),
    ]
    for who, name, fields, headers in steps:
        done = call("POST", f"{signals}/{name}", who, json={"data": fields}, headers=headers)
        assert done.status_code == 200, done.text
    for who in ("kemenkes", "supervisor", "ombudsman", "auditor"):
        call("GET", f"/v1/complaints/{case}", who)
        call("GET", f"/v1/complaints/{case}/history", who)
        call("GET", f"/v1/complaints/{case}/identity", who)
        call("GET", "/v1/complaints?page_size=100", who)
    call("GET", f"/v1/complaints/{case}/identity", "kemensos")
    call("GET", f"/v1/track/{case}", None)
    call("GET", f"/v1/track/{case}", None, headers=token)
    call("GET", "/metrics", "admin")
    # Refusals and invalid requests that carry the identity must not echo it either.
    call("POST", "/v1/complaints", "channel", json={"data": {}, "reporter": IDENTITY})
    call(
        "POST", "/v1/complaints", "channel", json={"data": COMPLAINT, "reporter": IDENTITY["name"]}
    )
    call("POST", "/v1/complaints", "kemenkes", json={"data": COMPLAINT, "reporter": IDENTITY})
    call(
        "POST", "/v1/complaints", "channel",
        json={"data": COMPLAINT | {"reporter_name": IDENTITY["name"]}, "reporter": IDENTITY},
    )  # fmt: skip

    leaking = {
        f"{a.request.method} {a.request.url.path} -> {a.status_code}": _leaks(a)
        for a in answers
        if _leaks(a)
    }
    assert leaking == {}, leaking

    # The one place the identity may be read: Admin Nasional's identity endpoint.
    opened = server.call("GET", f"/v1/complaints/{case}/identity", who="admin")
    assert opened.status_code == 200 and opened.json()["identity"] == IDENTITY
    # Agencies and every other role see the text masked, the admin as written.
    agency_view = server.call("GET", f"/v1/complaints/{case}", who="kemenkes").json()
    assert "[disamarkan]" in agency_view["data"]["description"]

    time.sleep(0.3)  # the server's last log lines
    log = server.log_text()
    assert "api.request" in log
    assert [marker for marker in MARKERS if marker in log] == []
    assert all(key not in log for key in server.keys.values())
    assert token["Reporter-Token"] not in log
