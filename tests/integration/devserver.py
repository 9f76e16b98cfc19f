"""The real Temporal dev server as a user runs it, for the integration tests: ``lapor temporal dev``
and ``lapor worker`` as subprocesses on free ports.

A listening port is not a ready server: the frontend answers "not healthy yet" for a moment after
it binds, so ``dev_server`` returns only once a client has connected.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from engine.domain.errors import LaporError
from workers.connection import TemporalTarget

__all__ = ["CLI", "dev_server", "free_port", "start_worker", "stop", "wait_until_serving"]

CLI = [sys.executable, "-m", "engine.faces.cli.main"]
STARTUP = 30.0  # seconds, for the port and then a healthy frontend


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop(process: subprocess.Popen[bytes]) -> int:
    """SIGTERM, then SIGKILL after 15 s; the exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def wait_until_serving(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + STARTUP
    while True:
        assert process.poll() is None, f"dev server exited with {process.returncode}"
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                break
        if time.monotonic() > deadline:
            raise TimeoutError(f"dev server not listening on {port} after {STARTUP} s")
        time.sleep(0.1)
    target = TemporalTarget(f"127.0.0.1:{port}")
    while True:
        try:
            asyncio.run(target.connect())
            return
        except LaporError:  # "Frontend is not healthy yet"
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@contextlib.contextmanager
def dev_server(folder: Path) -> Iterator[str]:
    """``lapor temporal dev`` keeping its state in ``folder``; yields its address."""
    port, ui_port = free_port(), free_port()
    args = ["temporal", "dev", "--port", str(port), "--ui-port", str(ui_port)]
    args += ["--db-filename", str(folder / "temporal.db")]
    server = subprocess.Popen([*CLI, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_serving(port, server)
        yield f"127.0.0.1:{port}"
    finally:
        stop(server)


def start_worker(
    address: str,
    queue: str,
    *options: str,
    stderr: int | None = subprocess.DEVNULL,
) -> subprocess.Popen[bytes]:
    """``lapor worker [options]`` on ``queue`` (stderr piped when asked, to read after it stops);
    deliveries are logged unless ``options`` name a handler."""
    handlers = [] if "--handler" in options else ["--handler", "log"]
    return subprocess.Popen(
        [*CLI, "worker", "--temporal", address, "--task-queue", queue, *handlers, *options],
        stdout=subprocess.DEVNULL,
        stderr=stderr,
    )
