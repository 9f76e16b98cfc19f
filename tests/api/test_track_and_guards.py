"""The reporter's tracking page, and what guards the API: validation as problem details, body
size, rate limits, unknown routes and methods."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.conftest import BOTH_DATABASES, COMPLAINT, Server, serve


@BOTH_DATABASES
def test_tracking_shows_status_deadline_and_next_step_in_indonesian(server: Server) -> None:
    started = server.disposed("kemenkes")
    answer = server.call("GET", f"/v1/track/{started['tracking_number']}")
    assert answer.status_code == 200, answer.text
    view = answer.json()
    assert view["status"] == "Terdisposisi" and view["closed"] is False
    assert view["deadline"] and view["deadline"].endswith("+07:00")  # Jakarta's zone
    assert "instansi yang berwenang" in view["next_step"]
    assert view["reporter_actions"] is None
    # Nothing agency-internal: no agency, no escalation rung, no clocks, no complaint text.
    assert set(view) == {
        "tracking_number", "status", "opened_at", "deadline", "next_step", "closed",
        "reporter_actions",
    }  # fmt: skip
    assert "kemenkes" not in answer.text and COMPLAINT["description"] not in answer.text


@BOTH_DATABASES
def test_tracking_with_the_token_adds_what_the_reporter_may_do(server: Server) -> None:
    started = server.start()
    case = started["case_id"]
    server.call(
        "POST", f"/v1/complaints/{case}/signals/hold", who="admin",
        json={"data": {"missing_info": "Lampirkan foto."}},
    )  # fmt: skip
    token = {"Reporter-Token": started["reporter_token"]}
    view = server.call("GET", f"/v1/track/{case}", headers=token).json()
    assert view["reporter_actions"] == ["supply_info"]
    assert "lengkapi informasi" in view["next_step"]
    wrong = server.call("GET", f"/v1/track/{case}", headers={"Reporter-Token": "rt1.x.y"})
    assert wrong.status_code == 403 and wrong.json()["code"] == "not_the_reporter"


@BOTH_DATABASES
def test_a_confidential_report_is_tracked_only_with_its_token(server: Server) -> None:
    started = server.start(data=COMPLAINT | {"confidential": True})
    case = started["case_id"]
    hidden = server.call("GET", f"/v1/track/{case}")
    unknown = server.call("GET", "/v1/track/LAPOR-2026-NOSUCHID")
    assert hidden.status_code == unknown.status_code == 404
    assert hidden.json()["detail"] == unknown.json()["detail"].replace("LAPOR-2026-NOSUCHID", case)
    wrong = server.call("GET", f"/v1/track/{case}", headers={"Reporter-Token": "rt1.x.y"})
    assert wrong.status_code == 404
    shown = server.call(
        "GET", f"/v1/track/{case}", headers={"Reporter-Token": started["reporter_token"]}
    )
    assert shown.status_code == 200 and shown.json()["status"] == "Belum Terverifikasi"


@pytest.mark.parametrize(
    ("content", "where"),
    [
        (b"{not json", "body"),
        (b'{"workflow": "sp4n-lapor"}', "body.data"),
        (b'{"data": {}, "colour": "red"}', "body.colour"),
        (b'{"data": {}, "reporter": "Budi Santoso"}', "body.reporter"),
    ],
)
def test_an_invalid_request_is_one_problem_naming_the_field_never_its_value(
    server: Server, content: bytes, where: str
) -> None:
    answer = server.call(
        "POST", "/v1/complaints", who="channel", content=content,
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert problem["code"] == "invalid_request" and "detail" not in str(problem.get("loc"))
    assert any(p["name"].startswith(where) for p in problem["invalid-params"]), problem
    assert "Budi Santoso" not in answer.text


def test_unknown_routes_and_methods_are_problems(server: Server) -> None:
    missing = server.call("GET", "/v2/nothing")
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"
    wrong = server.call("DELETE", "/v1/workflows", who="admin")
    assert wrong.status_code == 405 and wrong.json()["code"] == "method_not_allowed"
    assert "GET" in wrong.headers["allow"]


def test_a_body_over_the_limit_is_refused_with_413(server: Server) -> None:
    big = {"data": COMPLAINT | {"description": "x" * 300_000}}
    answer = server.call("POST", "/v1/complaints", who="channel", json=big)
    assert answer.status_code == 413 and answer.json()["code"] == "payload_too_large"

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit counts the bytes
        yield b'{"data": {"description": "'
        for _ in range(40):
            yield b"y" * 10_000
        yield b'"}}'

    chunked = server.call(
        "POST", "/v1/complaints", who="channel", content=chunks(),
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    assert chunked.status_code == 413


@pytest.fixture(scope="module")
def strict_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from serve(tmp_path_factory.mktemp("strict"), "--rate-limit", "3/minute")


def test_a_caller_over_its_rate_limit_gets_429_with_retry_after(strict_server: Server) -> None:
    answers = [strict_server.call("GET", "/v1/workflows", who="auditor") for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    limited = answers[-1]
    assert limited.json()["code"] == "rate_limited"
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    # Limits are per key: another caller is not held back by this one.
    assert strict_server.call("GET", "/v1/workflows", who="supervisor").status_code == 200


def test_guessing_keys_is_rate_limited_by_address(strict_server: Server) -> None:
    bad = {"Authorization": "Bearer lapor_guess"}
    codes = [strict_server.call("GET", "/v1/workflows", headers=bad).status_code for _ in range(4)]
    assert codes == [401, 401, 401, 429]


def test_serve_refuses_a_database_without_the_schema(tmp_path: Path) -> None:
    from tests.lapor_process import ROOT, lapor

    url = f"sqlite:///{tmp_path / 'empty.db'}"
    refused = lapor("serve", "--db", url, "--port", "0", cwd=ROOT)
    assert refused.returncode == 3, refused.stderr
    assert "lapor db upgrade" in refused.stderr and "Traceback" not in refused.stderr
