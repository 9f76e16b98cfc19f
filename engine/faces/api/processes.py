"""``lapor serve --workers N`` (N > 1): N uvicorn processes, each listening on its own socket
bound to the same address with ``SO_REUSEPORT``, so the kernel spreads the connections evenly.

Uvicorn's own ``--workers`` shares one listening socket among its processes and the first to
wake accepts every connection waiting: a client that opens its keep-alive connections at once
(an agency system's pool, the load test's sixteen) often landed them all on one process, which
then did all the work while the other idled (``bench/api_load.py``: 749 against 1,155
requests/s between two runs of the same load). With ``SO_REUSEPORT`` the kernel hashes each
connection onto one of the sockets.

The supervisor here does what uvicorn's does: it starts the processes, starts a new one when one
dies, and on SIGINT or SIGTERM asks each to finish its requests and waits for them.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import socket
import time
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any

import structlog

from engine.domain.errors import LaporError

__all__ = ["serve_processes"]

log = structlog.get_logger("lapor.api")

_PR_SET_PDEATHSIG = 1
_RESTART_PAUSE = 1.0  # a process that dies at once is not restarted in a tight loop


def _listening_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def _run_one(host: str, port: int, options: dict[str, Any]) -> None:
    """One worker process: its own socket on the shared address, one uvicorn server."""
    import uvicorn

    # Its own process group: a terminal's Ctrl-C reaches the supervisor alone, which passes it
    # on once (a second SIGINT makes uvicorn drop the requests in flight). And it ends with
    # the supervisor, however that ends.
    os.setpgrp()
    _end_with_parent()
    sock = _listening_socket(host, port)
    uvicorn.Server(uvicorn.Config(host=host, port=port, **options)).run(sockets=[sock])


def serve_processes(host: str, port: int, workers: int, options: dict[str, Any]) -> None:
    """Serve with ``workers`` processes until SIGINT/SIGTERM; ``options`` are uvicorn's
    ``Config`` arguments (the app's import string and the rest)."""
    # Port 0 becomes the one port every process binds; a taken address fails now, in one
    # line. The probe has no SO_REUSEPORT: with it, binding beside another server that set it
    # too (a second `lapor serve --workers`) would succeed and split that server's traffic.
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn's own
            probe.bind((host, port))
            port = probe.getsockname()[1]
        reserved = _listening_socket(host, port)  # not listening: it takes no connections
    except OSError as exc:
        raise LaporError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    spawn = multiprocessing.get_context("spawn")
    stopping = False

    def start() -> BaseProcess:
        process = spawn.Process(target=_run_one, args=(host, port, options), daemon=False)
        process.start()
        return process

    def stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for process in running:  # uvicorn finishes the requests in flight, then exits
            if process.pid is not None and process.is_alive():
                os.kill(process.pid, signum)

    running = [start() for _ in range(workers)]
    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    log.info("api.serving", host=host, port=port, workers=workers)
    try:
        while running:
            wait([p.sentinel for p in running])
            for process in [p for p in running if not p.is_alive()]:
                running.remove(process)
                process.join()
                if not stopping:
                    log.warning("api.worker_died", pid=process.pid, exitcode=process.exitcode)
                    time.sleep(_RESTART_PAUSE)
                    running.append(start())
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        reserved.close()


def _end_with_parent() -> None:
    """Linux: SIGTERM this process when its parent dies (``PR_SET_PDEATHSIG``)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: the supervisor's stop is the only way
        pass
