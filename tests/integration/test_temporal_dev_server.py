"""End to end on the real dev server: ``temporal dev`` + ``worker`` as processes, the SDK's
``Client`` over ``TemporalRuntime``.

Both commands run as ``python -m engine.faces.cli.main`` (the ``lapor`` command itself) on free
ports; the dev server keeps its state in a SQLite file under ``tmp_path``.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from engine.domain.errors import LaporError
from engine.domain.history import verify_chain
from engine.faces.sdk import Client
from tests.integration.devserver import dev_server, start_worker, stop
from workers.connection import TemporalTarget
from workers.runtime import TemporalRuntime

pytestmark = [pytest.mark.temporal, pytest.mark.usefixtures("temporal_servers")]

INTAKE = {"category": "kesehatan", "region": "ID-PA", "channel": "web", "description": "x"}


@pytest.fixture
def address(tmp_path: Path) -> Iterator[str]:
    with dev_server(tmp_path) as served:
        yield served


def test_a_case_through_the_dev_server_and_a_worker_process(address: str) -> None:
    queue = f"lapor-test-{os.getpid()}"
    worker = start_worker(address, queue, stderr=subprocess.PIPE)
    try:
        runtime = TemporalRuntime.connect(TemporalTarget(address, task_queue=queue))
        with Client(runtime=runtime) as client:
            started = client.start("sp4n-lapor", INTAKE)
            assert started.accepted and started.seq == 1 and started.state == "submitted"
            case_id = started.case_id

            again = client.start("sp4n-lapor", INTAKE, case_id=case_id)
            assert not again.accepted and again.code == "already_started"
            refused = client.start("sp4n-lapor", {"region": "ID-JK"})
            assert not refused.accepted and refused.code == "missing_field"

            token = started.reporter_token
            illegal = client.signal(case_id, "confirm", actor="reporter", reporter_token=token)
            assert not illegal.accepted and illegal.code == "wrong_state" and illegal.reason

            verified = client.signal(
                case_id, "verify", actor="admin:nasional", data={"agency": "pemprov-papua"}
            )
            assert verified.accepted and verified.state == "disposed" and verified.seq == 2

            status = client.status(case_id)
            assert status["state"] == "disposed" and status["agency"] == "pemprov-papua"
            assert "verify" not in status["allowed_signals"]

            records = client.history(case_id)
            assert [r.seq for r in records] == [1, 2]
            assert verify_chain(records) == []
            assert client.audit(case_id).ok
    finally:
        code = stop(worker)
    assert worker.stderr is not None
    assert code == 0, worker.stderr.read().decode(errors="replace")


def test_a_keyed_start_retried_returns_the_first_case_and_an_unsealed_reporter_is_refused(
    address: str,
) -> None:
    queue = f"lapor-keys-{os.getpid()}"
    worker = start_worker(address, queue, stderr=subprocess.PIPE)
    try:
        runtime = TemporalRuntime.connect(TemporalTarget(address, task_queue=queue))
        with Client(runtime=runtime) as client:
            first = client.start("sp4n-lapor", INTAKE, key="sms-1708:msg-42")
            again = client.start("sp4n-lapor", INTAKE, key="sms-1708:msg-42")
            assert first.accepted and not first.replayed
            assert again.accepted and again.replayed and again.case_id == first.case_id
            assert [r.seq for r in client.history(first.case_id)] == [1]

            refused = client.start("sp4n-lapor", {"region": "ID-JK"}, key="web:form-7")
            assert not refused.accepted and refused.code == "missing_field"
            corrected = client.start("sp4n-lapor", INTAKE, key="web:form-7")
            assert corrected.accepted and not corrected.replayed
            assert corrected.case_id == refused.case_id

            # Two calls with one key at once (a gateway retrying before the first answered).
            with ThreadPoolExecutor(2) as pool:
                both = list(
                    pool.map(lambda _: client.start("sp4n-lapor", INTAKE, key="app:tap-9"), [0, 1])
                )
            assert {r.case_id for r in both} == {both[0].case_id}
            assert all(r.accepted for r in both) and sorted(r.replayed for r in both) == [
                False,
                True,
            ]
            assert [r.seq for r in client.history(both[0].case_id)] == [1]

            # Without an identity key nothing could seal it: refused, never sent in clear.
            runtime.keyring = None
            with pytest.raises(LaporError, match=r"LAPOR_KEY_FILE or \$LAPOR_IDENTITY_KEY"):
                client.start("sp4n-lapor", INTAKE, reporter={"name": "Siti Rahayu"})
    finally:
        code = stop(worker)
    assert worker.stderr is not None
    assert code == 0, worker.stderr.read().decode(errors="replace")


def test_cases_evicted_from_a_one_case_worker_cache_replay_and_carry_on(address: str) -> None:
    """With room for one cached case, every other case's next task replays its history first."""
    queue = f"lapor-evict-{os.getpid()}"
    worker = start_worker(
        address,
        queue,
        "--max-cached-cases",
        "1",
        "--max-workflow-tasks",
        "2",
        stderr=subprocess.PIPE,
    )
    try:
        runtime = TemporalRuntime.connect(TemporalTarget(address, task_queue=queue))
        with Client(runtime=runtime) as client:
            ids = [client.start("sp4n-lapor", INTAKE).case_id for _ in range(4)]
            for case_id in ids:  # each signal finds its case evicted by the one before
                verified = client.signal(
                    case_id, "verify", actor="admin:nasional", data={"agency": "pemprov-papua"}
                )
                assert verified.accepted and verified.seq == 2
            for case_id in ids:
                assert [r.seq for r in client.history(case_id)] == [1, 2]
                assert client.audit(case_id).ok
    finally:
        code = stop(worker)
    assert worker.stderr is not None
    assert code == 0, worker.stderr.read().decode(errors="replace")
