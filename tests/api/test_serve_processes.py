"""``lapor serve --workers N``: N processes, each listening on its own ``SO_REUSEPORT`` socket on
the one address (the kernel spreads connections over them), a worker that dies is replaced, and
SIGINT stops them all after their requests. A real server on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import time
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.api.conftest import serve

served = contextmanager(serve)


def _children(pid: int) -> set[int]:
    found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return {int(child) for child in found}


def _workers(pid: int) -> set[int]:
    """The supervisor's uvicorn processes (multiprocessing's resource tracker aside)."""
    return {
        child
        for child in _children(pid)
        if b"resource_tracker" not in Path(f"/proc/{child}/cmdline").read_bytes()
    }


def _listening_sockets(port: int) -> int:
    """Sockets in LISTEN state on ``port`` (``/proc/net/tcp``: state 0A)."""
    rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return sum(
        1 for row in rows if row.split()[1].endswith(f":{port:04X}") and row.split()[3] == "0A"
    )


def _wait_for(condition: object, what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_each_worker_process_listens_on_its_own_socket_and_a_dead_one_is_replaced(
    tmp_path: Path,
) -> None:
    with served(tmp_path, "--workers", "2") as server:
        supervisor = server.process.pid
        port = httpx.URL(server.url).port
        assert port is not None
        _wait_for(lambda: len(_workers(supervisor)) == 2, "two worker processes")
        _wait_for(lambda: _listening_sockets(port) == 2, "a listening socket per worker")
        case = server.start()
        assert server.call("GET", f"/v1/complaints/{case['case_id']}", who="admin").is_success

        victim = min(_workers(supervisor))
        os.kill(victim, signal.SIGKILL)
        _wait_for(lambda: len(_workers(supervisor) - {victim}) == 2, "the dead worker replaced")
        _wait_for(lambda: _listening_sockets(port) == 2, "the new worker listening")
        with httpx.Client(base_url=server.url) as fresh:  # new connections, either worker
            for _ in range(8):
                assert fresh.get("/healthz").status_code == 200
        assert "api.worker_died" in server.log_text()


def test_sigint_stops_every_worker_process_and_the_supervisor_cleanly(tmp_path: Path) -> None:
    with served(tmp_path, "--workers", "2") as server:
        supervisor = server.process.pid
        _wait_for(lambda: len(_workers(supervisor)) == 2, "two worker processes")
        workers = _workers(supervisor)
        server.process.send_signal(signal.SIGINT)
        assert server.process.wait(timeout=30) == 0
        assert all(not Path(f"/proc/{pid}").exists() for pid in workers)  # joined, reaped
        assert server.log_text().count("Finished server process") == 2


def test_an_address_in_use_is_one_line_and_exit_2(tmp_path: Path) -> None:
    import socket
    import subprocess
    import sys

    from engine.sql.migrations import upgrade
    from tests.lapor_process import ROOT

    url = f"sqlite:///{tmp_path / 'lapor.db'}"
    upgrade(url)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "engine.faces.cli.main", "serve", "--db", url,
             "--port", str(port), "--workers", "2"],
            cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert (
        done.stderr.strip() == f"error: cannot listen on 127.0.0.1:{port}: Address already in use"
    ), done.stderr
