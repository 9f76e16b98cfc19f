"""The complaint endpoints over a real server: starts and their retries, signals accepted and
refused as problem details, status, history, lists, and an agency's scope."""

from __future__ import annotations

from tests.api.conftest import BOTH_DATABASES, COMPLAINT, Server

pytestmark = BOTH_DATABASES

PROBLEMS = "https://lapor-sla.dev/problems/"


def _problem(answer: object, status: int, code: str) -> dict[str, object]:
    import httpx

    assert isinstance(answer, httpx.Response)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    body: dict[str, object] = answer.json()
    assert body["type"] == PROBLEMS + code and body["code"] == code and body["status"] == status
    assert isinstance(body["detail"], str) and body["detail"]
    return body


def test_a_start_answers_a_tracking_number_and_token_and_its_retry_the_same_case(
    server: Server,
) -> None:
    body = {"data": COMPLAINT, "reporter": {"name": "Siti"}}
    headers = {"Idempotency-Key": "intake-0001"}
    first = server.call("POST", "/v1/complaints", who="channel", json=body, headers=headers)
    assert first.status_code == 201, first.text
    started = first.json()
    assert started["tracking_number"] == started["case_id"]
    assert started["reporter_token"] and started["status"] == "Belum Terverifikasi"
    assert started["replayed"] is False
    again = server.call("POST", "/v1/complaints", who="channel", json=body, headers=headers)
    assert again.status_code == 200
    assert again.json() == started | {"replayed": True}


def test_the_same_idempotency_key_with_another_body_is_refused_as_key_reuse(
    server: Server,
) -> None:
    headers = {"Idempotency-Key": "intake-0002"}
    first = server.call(
        "POST", "/v1/complaints", who="channel", json={"data": COMPLAINT}, headers=headers
    )
    assert first.status_code == 201
    other = {"data": COMPLAINT | {"description": "Another complaint altogether."}}
    reused = server.call("POST", "/v1/complaints", who="channel", json=other, headers=headers)
    _problem(reused, 422, "key_reuse")


def test_two_channels_with_the_same_idempotency_key_get_two_cases(server: Server) -> None:
    headers = {"Idempotency-Key": "shared-by-accident"}
    body = {"data": COMPLAINT}
    by_channel = server.call("POST", "/v1/complaints", who="channel", json=body, headers=headers)
    by_admin = server.call("POST", "/v1/complaints", who="admin", json=body, headers=headers)
    assert by_channel.status_code == by_admin.status_code == 201
    assert by_channel.json()["case_id"] != by_admin.json()["case_id"]


def test_a_start_the_workflow_refuses_is_a_problem_with_the_cores_code(server: Server) -> None:
    missing = server.call(
        "POST", "/v1/complaints", who="channel", json={"data": {"category": "kesehatan"}}
    )
    assert "region" in str(_problem(missing, 422, "missing_field")["detail"])
    unknown = server.call(
        "POST", "/v1/complaints", who="channel", json={"workflow": "nope", "data": COMPLAINT}
    )
    _problem(unknown, 422, "unknown_workflow")


def test_a_signal_is_accepted_or_refused_by_the_workflows_rules(server: Server) -> None:
    case = server.start()["case_id"]
    signals = f"/v1/complaints/{case}/signals"
    verified = server.call(
        "POST", f"{signals}/verify", who="admin", json={"data": {"agency": "kemenkes"}}
    )
    assert verified.status_code == 200, verified.text
    assert verified.json()["state"] == "disposed" and verified.json()["status"] == "Terdisposisi"
    _problem(server.call("POST", f"{signals}/verify", who="admin"), 409, "wrong_state")
    not_yours = server.call(
        "POST", f"{signals}/follow_up", who="admin", json={"data": {"response": "x"}}
    )
    _problem(not_yours, 403, "wrong_role")
    _problem(server.call("POST", f"{signals}/follow_up", who="kemenkes"), 422, "missing_field")
    _problem(server.call("POST", f"{signals}/teleport", who="kemenkes"), 422, "unknown_signal")
    done = server.call(
        "POST", f"{signals}/follow_up", who="kemenkes", json={"data": {"response": "Dicek."}}
    )
    assert done.status_code == 200 and done.json()["state"] == "in_progress"


def test_a_keyed_signal_retried_is_applied_once(server: Server) -> None:
    case = server.start()["case_id"]
    call = {
        "who": "admin",
        "json": {"data": {"agency": "kemenkes"}},
        "headers": {"Idempotency-Key": "verify-once"},
    }
    first = server.call("POST", f"/v1/complaints/{case}/signals/verify", **call)
    again = server.call("POST", f"/v1/complaints/{case}/signals/verify", **call)
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json() | {"replayed": True}
    history = server.call("GET", f"/v1/complaints/{case}/history", who="admin").json()
    assert [entry["seq"] for entry in history] == [1, 2]


def test_the_reporter_signals_through_a_channel_with_the_reporter_token(server: Server) -> None:
    started = server.start()
    case = started["case_id"]
    server.call(
        "POST", f"/v1/complaints/{case}/signals/hold", who="admin",
        json={"data": {"missing_info": "Lampirkan foto."}},
    )  # fmt: skip
    supply = f"/v1/complaints/{case}/signals/supply_info"
    body = {"data": {"info": "Foto terlampir."}}
    _problem(server.call("POST", supply, who="channel", json=body), 403, "not_the_reporter")
    wrong = {"Reporter-Token": "rt1.nope.nope"}
    _problem(
        server.call("POST", supply, who="channel", json=body, headers=wrong),
        403,
        "not_the_reporter",
    )
    right = {"Reporter-Token": started["reporter_token"]}
    accepted = server.call("POST", supply, who="channel", json=body, headers=right)
    assert accepted.status_code == 200 and accepted.json()["state"] == "submitted"


def test_status_and_history_show_the_case_as_recorded(server: Server) -> None:
    case = server.disposed()["case_id"]
    status = server.call("GET", f"/v1/complaints/{case}", who="supervisor")
    assert status.status_code == 200
    view = status.json()
    assert view["state"] == "disposed" and view["agency"] == "kemenkes"
    assert view["data"]["description"] == COMPLAINT["description"]
    assert "follow_up" in view["allowed_signals"]
    assert any(clock["running"] and clock["due_at"] for clock in view["clocks"])
    history = server.call("GET", f"/v1/complaints/{case}/history", who="auditor").json()
    assert [entry["event"].get("name", entry["event"]["kind"]) for entry in history] == [
        "started",
        "verify",
    ]
    assert history[1]["prev_hash"] == history[0]["hash"]
    assert history[0]["actor"].startswith("channel:")
    assert history[1]["actor"] == "admin:nasional"
    _problem(server.call("GET", "/v1/complaints/LAPOR-NONE", who="admin"), 404, "unknown_case")


def test_the_list_filters_by_status_agency_region_and_overdue(server: Server) -> None:
    bali = server.disposed("pemprov-bali", data=COMPLAINT | {"region": "ID-BA"})["case_id"]
    waiting = server.start(data=COMPLAINT | {"region": "ID-BA"})["case_id"]

    def listed(query: str, who: str = "admin") -> list[str]:
        answer = server.call("GET", f"/v1/complaints?{query}&page_size=100", who=who)
        assert answer.status_code == 200, answer.text
        return [item["case_id"] for item in answer.json()["items"]]

    assert bali in listed("agency=pemprov-bali") and waiting not in listed("agency=pemprov-bali")
    assert bali in listed("status=disposed") and waiting not in listed("status=disposed")
    assert bali in listed("status=Terdisposisi")
    assert {bali, waiting} <= set(listed("region=ID-BA"))
    assert bali not in listed("region=ID-JK")
    assert bali in listed("overdue=false") and bali not in listed("overdue=true")
    one = server.call("GET", "/v1/complaints?page_size=1", who="admin").json()
    assert len(one["items"]) == 1 and one["next_page"] == 2
    _problem(server.call("GET", "/v1/complaints?page=0", who="admin"), 422, "invalid_request")


def test_an_agency_key_sees_and_signals_only_cases_disposed_to_it(server: Server) -> None:
    theirs = server.disposed("kemenkes")["case_id"]
    unknown = server.call("GET", "/v1/complaints/LAPOR-UNKNOWN", who="kemensos").json()
    for method, path, body in [
        ("GET", f"/v1/complaints/{theirs}", None),
        ("GET", f"/v1/complaints/{theirs}/history", None),
        ("GET", f"/v1/complaints/{theirs}/identity", None),
        ("POST", f"/v1/complaints/{theirs}/signals/follow_up", {"data": {"response": "x"}}),
    ]:
        answer = server.call(method, path, who="kemensos", json=body)
        problem = _problem(answer, 404, "unknown_case")
        # The same answer as for a case that does not exist, but for the id itself.
        assert problem["detail"] == str(unknown["detail"]).replace("LAPOR-UNKNOWN", theirs)
    assert theirs not in [
        item["case_id"]
        for item in server.call("GET", "/v1/complaints?page_size=100", who="kemensos").json()[
            "items"
        ]
    ]
    other = server.call("GET", "/v1/complaints?agency=kemenkes", who="kemensos").json()
    assert other["items"] == []
    mine = server.call("GET", "/v1/complaints?page_size=100", who="kemenkes").json()["items"]
    assert theirs in [item["case_id"] for item in mine]
    assert {item["agency"] for item in mine} == {"kemenkes"}
    assert server.call("GET", f"/v1/complaints/{theirs}", who="kemenkes").status_code == 200


def test_workflows_list_intake_fields_and_the_signals_of_each_role(server: Server) -> None:
    [workflow] = server.call("GET", "/v1/workflows", who="channel").json()
    assert workflow["name"] == "sp4n-lapor"
    assert set(workflow["intake_requires"]) == {"category", "region", "channel", "description"}
    signals = {signal["name"]: signal["roles"] for signal in workflow["signals"]}
    assert signals["verify"] == ["admin"] and "reporter" in signals["confirm"]
    assert "auto_close" not in signals  # the engine's own (system) transitions are not offered
