"""Every role on every endpoint: which are allowed, which are refused, and how.

Rows are endpoints, columns the callers (``none``: no key). An agency key is asked about a case
disposed to kemenkes, as kemenkes (its own) and as kemensos (another agency's: 404, as if the
case did not exist). Signals are decided by the workflow's roles in the core; the API only
derives the actor from the key.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.api.conftest import COMPLAINT, Server

CALLERS = ["none", "channel", "admin", "kemenkes", "kemensos", "supervisor", "ombudsman", "auditor"]

Request = Callable[[Server, dict[str, Any]], tuple[str, str, dict[str, Any] | None]]


def _subscription(server: Server) -> str:
    """A fresh subscription of kemenkes (the one a DELETE is asked about)."""
    made = server.call(
        "POST", "/v1/subscriptions", who="kemenkes", json={"url": "https://simpel.example.id/"}
    )
    assert made.status_code == 201, made.text
    subscription_id: str = made.json()["id"]
    return subscription_id


# endpoint -> (request for a fresh disposed case, expected status per caller)
MATRIX: dict[str, tuple[Request, dict[str, int]]] = {
    "POST /v1/complaints": (
        lambda s, c: ("POST", "/v1/complaints", {"data": COMPLAINT}),
        {"none": 401, "channel": 201, "admin": 201, "kemenkes": 403, "kemensos": 403,
         "supervisor": 403, "ombudsman": 403, "auditor": 403},
    ),
    "POST follow_up": (
        lambda s, c: ("POST", f"/v1/complaints/{c['case_id']}/signals/follow_up",
                      {"data": {"response": "Sedang dicek."}}),
        {"none": 401, "channel": 403, "admin": 403, "kemenkes": 200, "kemensos": 404,
         "supervisor": 403, "ombudsman": 403, "auditor": 403},
    ),
    "POST not_authority": (
        lambda s, c: ("POST", f"/v1/complaints/{c['case_id']}/signals/not_authority",
                      {"data": {"agency": "kemensos", "reason": "Bukan wewenang."}}),
        {"none": 401, "channel": 403, "admin": 200, "kemenkes": 200, "kemensos": 404,
         "supervisor": 403, "ombudsman": 403, "auditor": 403},
    ),
    "GET /v1/complaints/{id}": (
        lambda s, c: ("GET", f"/v1/complaints/{c['case_id']}", None),
        {"none": 401, "channel": 403, "admin": 200, "kemenkes": 200, "kemensos": 404,
         "supervisor": 200, "ombudsman": 200, "auditor": 200},
    ),
    "GET /v1/complaints/{id}/history": (
        lambda s, c: ("GET", f"/v1/complaints/{c['case_id']}/history", None),
        {"none": 401, "channel": 403, "admin": 200, "kemenkes": 200, "kemensos": 404,
         "supervisor": 200, "ombudsman": 200, "auditor": 200},
    ),
    "GET /v1/complaints/{id}/identity": (
        lambda s, c: ("GET", f"/v1/complaints/{c['case_id']}/identity", None),
        {"none": 401, "channel": 403, "admin": 200, "kemenkes": 403, "kemensos": 404,
         "supervisor": 403, "ombudsman": 403, "auditor": 403},
    ),
    "GET /v1/complaints": (
        lambda s, c: ("GET", "/v1/complaints", None),
        {"none": 401, "channel": 403, "admin": 200, "kemenkes": 200, "kemensos": 200,
         "supervisor": 200, "ombudsman": 200, "auditor": 200},
    ),
    "GET /v1/workflows": (
        lambda s, c: ("GET", "/v1/workflows", None),
        {"none": 401} | {caller: 200 for caller in CALLERS[1:]},
    ),
    "GET /v1/track/{tracking}": (
        lambda s, c: ("GET", f"/v1/track/{c['case_id']}", None),
        {caller: 200 for caller in CALLERS},
    ),
    "GET /metrics": (
        lambda s, c: ("GET", "/metrics", None),
        {"none": 401, "channel": 403, "admin": 200, "kemenkes": 403, "kemensos": 403,
         "supervisor": 200, "ombudsman": 403, "auditor": 403},
    ),
    "POST /v1/subscriptions": (
        lambda s, c: ("POST", "/v1/subscriptions",
                      {"url": "https://simpel.example.id/hook", "agency": "kemenkes"}),
        {"none": 401, "channel": 403, "admin": 201, "kemenkes": 201, "kemensos": 403,
         "supervisor": 403, "ombudsman": 403, "auditor": 403},
    ),
    "GET /v1/subscriptions": (
        lambda s, c: ("GET", "/v1/subscriptions", None),
        {"none": 401, "channel": 403, "admin": 200, "kemenkes": 200, "kemensos": 200,
         "supervisor": 403, "ombudsman": 403, "auditor": 403},
    ),
    "DELETE /v1/subscriptions/{id}": (
        lambda s, c: ("DELETE", f"/v1/subscriptions/{_subscription(s)}", None),
        {"none": 401, "channel": 403, "admin": 204, "kemenkes": 204, "kemensos": 404,
         "supervisor": 403, "ombudsman": 403, "auditor": 403},
    ),
    "GET /healthz": (lambda s, c: ("GET", "/healthz", None), {c: 200 for c in CALLERS}),
    "GET /readyz": (lambda s, c: ("GET", "/readyz", None), {c: 200 for c in CALLERS}),
}  # fmt: skip

# Why a refusal is refused: the problem type each (endpoint, caller) refusal carries.
REFUSAL_CODES = {
    ("POST follow_up", "channel"): "not_the_reporter",
    ("POST follow_up", "admin"): "wrong_role",
    ("POST follow_up", "supervisor"): "wrong_role",
    ("POST not_authority", "auditor"): "wrong_role",
    ("GET /v1/complaints/{id}/identity", "kemenkes"): "identity_forbidden",
    ("GET /v1/complaints/{id}/identity", "ombudsman"): "identity_forbidden",
    ("GET /v1/complaints/{id}", "channel"): "forbidden",
    ("POST /v1/complaints", "kemenkes"): "forbidden",
    ("POST /v1/subscriptions", "kemensos"): "forbidden",
    ("POST /v1/subscriptions", "auditor"): "forbidden",
    ("DELETE /v1/subscriptions/{id}", "kemensos"): "unknown_subscription",
}


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("endpoint", list(MATRIX))
def test_each_role_is_allowed_or_refused_on_each_endpoint(
    server: Server, endpoint: str, caller: str
) -> None:
    build, expected = MATRIX[endpoint]
    case = server.disposed("kemenkes", reporter={"name": "Pelapor Matriks"})
    method, path, body = build(server, case)
    who = None if caller == "none" else caller
    answer = server.call(method, path, who=who, json=body)
    assert answer.status_code == expected[caller], (endpoint, caller, answer.text)
    if answer.status_code >= 400:
        assert answer.headers["content-type"] == "application/problem+json"
        problem = answer.json()
        code = REFUSAL_CODES.get((endpoint, caller))
        if code is not None:
            assert problem["code"] == code, problem
        if answer.status_code == 401:
            assert problem["code"] == "unauthorized"
            assert answer.headers["www-authenticate"].startswith("Bearer")
        if answer.status_code == 404:
            assert problem["code"] == (code or "unknown_case")


def test_a_revoked_key_is_refused_within_the_key_cache_time(server: Server) -> None:
    import time
    from datetime import UTC, datetime

    from engine.faces.api.service import KEY_CACHE_SECONDS
    from engine.sql import store
    from engine.sql.apikeys import ApiKeyStore

    url = f"sqlite:///{server.log.parent / 'lapor.db'}"
    engine = store.open_engine(url)
    keys = ApiKeyStore(engine)
    made, plain = keys.create("auditor", None, "short-lived", datetime.now(UTC))
    headers = {"Authorization": f"Bearer {plain}"}
    assert server.call("GET", "/v1/workflows", headers=headers).status_code == 200
    keys.revoke(made.id, datetime.now(UTC))
    engine.dispose()
    revoked = time.monotonic()
    while (refused := server.call("GET", "/v1/workflows", headers=headers)).status_code == 200:
        assert time.monotonic() - revoked < KEY_CACHE_SECONDS + 0.5, "still accepted"
        time.sleep(0.05)
    assert refused.status_code == 401 and refused.json()["code"] == "unauthorized"
