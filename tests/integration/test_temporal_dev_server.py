"""End to end on the real dev server: ``temporal dev`` + ``worker`` as processes, the SDK's
``Client`` over ``TemporalBackend``.

Both commands run as ``python -m engine.cli`` (the ``lapor`` command itself) on free
ports; the dev server keeps its state in a SQLite file under ``tmp_path``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.history import verify_chain
from engine.sdk import Client
from workers.client import TemporalBackend

pytestmark = [pytest.mark.temporal, pytest.mark.usefixtures("temporal_servers")]

INTAKE = {"category": "kesehatan", "region": "ID-PA", "channel": "web", "description": "x"}
CLI = [sys.executable, "-m", "engine.cli"]
STARTUP = 20.0  # seconds


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + STARTUP
    while time.monotonic() < deadline:
        assert process.poll() is None, f"dev server exited with {process.returncode}"
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"dev server not listening on {port} after {STARTUP} s")


def _stop(process: subprocess.Popen[bytes]) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


@pytest.fixture
def address(tmp_path: Path) -> Iterator[str]:
    port, ui_port = _free_port(), _free_port()
    args = ["temporal", "dev", "--port", str(port), "--ui-port", str(ui_port)]
    args += ["--db-filename", str(tmp_path / "temporal.db")]
    server = subprocess.Popen([*CLI, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_port(port, server)
        yield f"127.0.0.1:{port}"
    finally:
        _stop(server)


def test_a_case_through_the_dev_server_and_a_worker_process(address: str) -> None:
    queue = f"lapor-test-{os.getpid()}"
    worker = subprocess.Popen(
        [*CLI, "worker", "--temporal", address, "--task-queue", queue], stderr=subprocess.PIPE
    )
    try:
        with Client(backend=TemporalBackend(address, task_queue=queue)) as client:
            started = client.start("sp4n-lapor", INTAKE)
            assert started.accepted and started.seq == 1 and started.state == "submitted"
            case_id = started.case_id

            again = client.start("sp4n-lapor", INTAKE, case_id=case_id)
            assert not again.accepted and again.code == "already_started"
            refused = client.start("sp4n-lapor", {"region": "ID-JK"})
            assert not refused.accepted and refused.code == "missing_field"

            illegal = client.signal(case_id, "confirm", actor="reporter")
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
        code = _stop(worker)
    assert worker.stderr is not None
    assert code == 0, worker.stderr.read().decode(errors="replace")
