"""A real ``lapor serve`` process on 127.0.0.1 over an SQLite file, with one API key per role.

A test module that marks itself ``pytestmark = BOTH_DATABASES`` runs each of its tests twice:
against a server over SQLite and against one over PostgreSQL (a database of the throwaway
server ``tests/runtime/postgres.py`` starts; skipped without the binaries, as the runtime's
PostgreSQL tests are). The rest run on SQLite only.

The server is a subprocess started as a user starts it (``python -m engine.faces.cli.main
serve``), logging JSON lines to a file the tests read back (the identity-leak test searches it).
Keys are made with the key store the CLI uses (``tests/api/test_keys_command.py`` drives the CLI
itself), which saves a process start per key.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine.runtime.identity import KEY_ENV
from engine.sql import store
from engine.sql.apikeys import ApiKeyStore
from engine.sql.migrations import upgrade
from tests.lapor_process import ROOT
from tests.runtime.postgres import shared_server

# (name in the tests, role, agency)
KEYS = [
    ("channel", "channel", None),
    ("admin", "admin_nasional", None),
    ("kemenkes", "agency", "kemenkes"),
    ("kemensos", "agency", "kemensos"),
    ("supervisor", "supervisor", None),
    ("ombudsman", "ombudsman", None),
    ("auditor", "auditor", None),
]

COMPLAINT = {
    "category": "kesehatan",
    "region": "ID-JK",
    "channel": "web",
    "description": "Puskesmas Kecamatan Tebet tutup pada jam layanan.",
}


@dataclass
class Server:
    url: str
    log: Path
    keys: dict[str, str]
    process: subprocess.Popen[bytes]
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.client = httpx.Client(base_url=self.url, timeout=30)

    def call(
        self,
        method: str,
        path: str,
        *,
        who: str | None = None,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        sent = dict(headers or {})
        if who is not None:
            sent["Authorization"] = f"Bearer {self.keys[who]}"
        return self.client.request(method, path, headers=sent, **kwargs)

    def start(self, data: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
        """A new case as the channel; its start answer (case_id, reporter_token...)."""
        answer = self.call(
            "POST", "/v1/complaints", who="channel", json={"data": data or COMPLAINT, **kwargs}
        )
        assert answer.status_code == 201, answer.text
        started: dict[str, Any] = answer.json()
        return started

    def disposed(self, agency: str = "kemenkes", **extra: Any) -> dict[str, Any]:
        """A new case verified by Admin Nasional and disposed to ``agency``."""
        started = self.start(**extra)
        verified = self.call(
            "POST",
            f"/v1/complaints/{started['case_id']}/signals/verify",
            who="admin",
            json={"data": {"agency": agency}},
        )
        assert verified.status_code == 200, verified.text
        return started

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def serve(
    folder: Path, *args: str, db: str | None = None, env: dict[str, str] | None = None
) -> Iterator[Server]:
    """Start ``lapor serve`` over a fresh database (an SQLite file in ``folder``, or the empty
    database ``db``) with ``env`` added to its minimal environment; stop it afterwards."""
    url = db or f"sqlite:///{folder / 'lapor.db'}"
    upgrade(url)
    engine = store.open_engine(url)
    keys = ApiKeyStore(engine)
    now = datetime.now(UTC)
    made = {name: keys.create(role, scope, name, now)[1] for name, role, scope in KEYS}
    engine.dispose()
    port = _free_port()
    log = folder / "server.log"
    env = {
        "PYTHONPATH": str(ROOT),
        "PATH": "/usr/bin:/bin",
        KEY_ENV: os.environ[KEY_ENV],
        **(env or {}),
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "engine.faces.cli.main", "serve", "--db", url,
             "--port", str(port), "--log-json", *args],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    server = Server(f"http://127.0.0.1:{port}", log, made, process)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if server.client.get("/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"lapor serve did not come up:\n{server.log_text()}")
            time.sleep(0.1)
        yield server
    finally:
        server.client.close()
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


BOTH_DATABASES = pytest.mark.parametrize("server", ["sqlite", "postgresql"], indirect=True)
"""``pytestmark = BOTH_DATABASES``: the module's tests against a server on each database."""


@pytest.fixture(scope="session")
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """One server per database for the session (cases never collide: each test starts its
    own); SQLite unless the test is parametrized (``BOTH_DATABASES``). Its rate limit is far
    above what the suite sends (``test_track_and_guards`` has a strict one)."""
    database = getattr(request, "param", "sqlite")
    folder = tmp_path_factory.mktemp(f"api-{database}")
    db = shared_server().create_database() if database == "postgresql" else None
    yield from serve(folder, "--rate-limit", "100000/minute", db=db)
