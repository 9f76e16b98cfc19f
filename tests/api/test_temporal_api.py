"""The service API over the Temporal runtime: ``lapor serve --temporal`` (API keys in its
``--db``) in front of a real dev server and ``lapor worker``, driven as the SQLite one is. The
same answers, the same agency scope, the same identity rules. The case list over Temporal has its
own module (``test_temporal_case_list``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.api.conftest import COMPLAINT, Server, serve
from tests.integration.devserver import dev_server, start_worker, stop

IDENTITY = {"name": "Sekar Pramudyawardhani", "phone": "0899-7331-5521"}


@pytest.fixture(scope="module")
def temporal_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("api-temporal")
    queue = f"api-{uuid.uuid4().hex[:8]}"
    with dev_server(folder) as address:
        worker = start_worker(address, queue)
        try:
            env = {"LAPOR_TEMPORAL_TASK_QUEUE": queue}
            yield from serve(folder, "--temporal", address, env=env)
        finally:
            stop(worker)


def _scenario(server: Server) -> tuple[list[object], str]:
    """One complaint through the API: what a client sees at each step (comparable across
    runtimes), and everything the API answered or logged that is not the identity read."""
    body = {"data": COMPLAINT, "reporter": IDENTITY}
    key = {"Idempotency-Key": f"t-{uuid.uuid4().hex}"}
    first = server.call("POST", "/v1/complaints", who="channel", json=body, headers=key)
    retried = server.call("POST", "/v1/complaints", who="channel", json=body, headers=key)
    assert first.status_code == 201, first.text
    case = first.json()["case_id"]
    early = server.call(
        "POST", f"/v1/complaints/{case}/signals/follow_up", who="admin", json={"data": {}}
    )
    verified = server.call(
        "POST", f"/v1/complaints/{case}/signals/verify", who="admin",
        json={"data": {"agency": "kemenkes"}},
    )  # fmt: skip
    own = server.call("GET", f"/v1/complaints/{case}", who="kemenkes")
    other = server.call("GET", f"/v1/complaints/{case}", who="kemensos")
    history = server.call("GET", f"/v1/complaints/{case}/history", who="kemenkes")
    as_agency = server.call("GET", f"/v1/complaints/{case}/identity", who="kemenkes")
    as_admin = server.call("GET", f"/v1/complaints/{case}/identity", who="admin")
    seen = [
        (first.status_code, first.json()["state"]),
        (retried.json()["case_id"] == case, retried.json()["replayed"]),
        (early.status_code, early.json()["code"]),
        (verified.status_code, verified.json()["state"], verified.json()["seq"]),
        (own.status_code, own.json()["agency"], own.json()["status"]),
        (other.status_code, other.json()["code"]),
        (history.status_code, [[e["kind"] for e in r["effects"]] for r in history.json()]),
        (as_agency.status_code, as_agency.json()["code"]),
        (as_admin.status_code, as_admin.json()["identity"]),
    ]
    answers = [first, retried, early, verified, own, other, history, as_agency]
    return seen, "".join(a.text + str(dict(a.headers)) for a in answers) + server.log_text()


def test_a_complaint_runs_through_the_api_on_temporal_as_on_the_embedded_store(
    temporal_server: Server, server: Server
) -> None:
    on_temporal, temporal_text = _scenario(temporal_server)
    on_sqlite, _ = _scenario(server)

    assert on_temporal == on_sqlite
    assert on_temporal[2] == (409, "wrong_state")
    assert on_temporal[-1] == (200, IDENTITY)
    for value in IDENTITY.values():
        assert value not in temporal_text


def test_an_unknown_case_on_temporal_is_a_404_problem(temporal_server: Server) -> None:
    answer = temporal_server.call("GET", "/v1/complaints/LAPOR-TIDAK-ADA", who="admin")

    assert answer.status_code == 404
    assert answer.json()["code"] == "unknown_case"


def test_the_reporter_tracks_a_case_on_temporal(temporal_server: Server) -> None:
    started = temporal_server.start()

    tracked = temporal_server.call("GET", f"/v1/track/{started['case_id']}")

    assert tracked.status_code == 200, tracked.text
    assert tracked.json()["status"] == "Belum Terverifikasi"
