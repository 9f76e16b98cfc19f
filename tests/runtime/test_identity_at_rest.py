"""A reporter's identity at rest on the embedded runtime, on SQLite and PostgreSQL: never in
clear in the database files, a log line or an agency payload; rotated without re-encrypting;
erased for good; and databases from before encryption are sealed by their upgrade."""

from __future__ import annotations

import io
import json
import secrets
from collections.abc import Iterator, Mapping
from datetime import timedelta
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Engine, text

from engine.domain.events import Actor, Signal, instant
from engine.domain.model import Model
from engine.runtime.clock import VirtualClock
from engine.runtime.errors import IdentityErasedError
from engine.runtime.identity import KEY_ENV, KEY_FILE_ENV, IdentityError, KeyRing
from engine.runtime.logs import configure_logging
from engine.sql.embedded import EmbeddedRuntime
from engine.sql.migrations import alembic_config, upgrade
from engine.sql.store import open_engine
from tests.recorder import Recorder
from tests.runtime.postgres import PostgresServer, pg_server

__all__ = ["pg_server"]

T0 = instant("2026-03-02T10:00:00+07:00")
ADMIN = Actor.parse("admin:nasional")
KEMENKES = Actor.parse("agency:kemenkes")
REPORTER_ROLE = Actor("reporter")


def an_identity() -> dict[str, str]:
    """An identity no other test writes, so finding it anywhere can only be a leak of this one."""
    tag = secrets.token_hex(4)
    return {
        "name": f"Dewi Lestari {tag}",
        "email": f"dewi.{tag}@example.org",
        "phone": f"08{secrets.randbelow(10**10):010d}",
        "nik": f"{secrets.randbelow(10**16):016d}",
    }


def needles(identity: Mapping[str, str]) -> list[bytes]:
    return [value.encode() for value in identity.values()]


def found_in_files(folder: Path, wanted: list[bytes]) -> list[str]:
    """``path: needle`` for every needle found in any file under ``folder``."""
    hits = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        try:
            content = path.read_bytes()
        except OSError:  # a socket or a file the server just removed
            continue
        hits += [f"{path}: {needle!r}" for needle in wanted if needle in content]
    return hits


@pytest.fixture(params=["sqlite", "postgresql"])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """(database URL, the folder holding every file the database writes)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'lapor.db'}", tmp_path
        return
    server: PostgresServer = request.getfixturevalue("pg_server")
    yield server.create_database(), server.data


def flush_to_disk(engine: Engine) -> None:
    """Make the database write out everything it holds in memory (as a crash or backup would)."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA wal_checkpoint(FULL)")
        else:
            conn.execute(text("CHECKPOINT"))


def runtime_on(
    engine: Engine, models: Mapping[str, Model], ring: KeyRing, recorder: Recorder | None = None
) -> EmbeddedRuntime:
    handlers = [recorder] if recorder else []
    return EmbeddedRuntime(engine, models, VirtualClock(T0), keyring=ring, handlers=handlers)


def test_a_full_case_leaves_no_identity_in_the_files_the_logs_or_agency_payloads(
    where: tuple[str, Path], models: Mapping[str, Model]
) -> None:
    url, folder = where
    upgrade(url)
    engine = open_engine(url)
    identity = an_identity()
    logs = io.StringIO()
    configure_logging(json=True, level="debug", stream=logs)
    recorder = Recorder()
    runtime = runtime_on(engine, models, KeyRing.generate(), recorder)
    case = "LAPOR-AR-1"
    intake = {
        "category": "kesehatan",
        "region": "ID-JK",
        "channel": "sms_1708",
        "anonymous": True,
        # A reporter who writes a contact into the text: masked for the agency (anonymous).
        "description": f"Obat habis. Hubungi saya di {identity['phone']}",
    }
    try:
        started = runtime.start("sp4n-lapor", case, intake, reporter=identity, at=T0)
        hour = timedelta(hours=1)
        steps = [
            Signal("verify", ADMIN, {"agency": "kemenkes"}),
            Signal("follow_up", KEMENKES, {"response": "Sedang kami periksa"}),
            Signal("complete", KEMENKES, {"response": "Obat sudah tersedia"}),
            Signal("confirm", REPORTER_ROLE, {"rating": 5}),
        ]
        for n, signal in enumerate(steps, start=1):
            outcome = runtime.signal(
                case, signal, at=T0 + n * hour, reporter_token=started.reporter_token
            )
            assert outcome.accepted, outcome.rejection
        runtime.advance_to(T0 + timedelta(days=30))
        runtime.deliver(T0 + timedelta(days=30))
        assert runtime.identity_for(case, ADMIN) == identity  # it is there, sealed
        flush_to_disk(engine)
    finally:
        configure_logging(json=True)
        engine.dispose()

    assert runtime.case(case).outcome is not None and recorder.messages
    payloads = json.dumps([m.payload for m in recorder.messages]).encode()
    assert [n for n in needles(identity) if n in payloads] == []
    assert [n for n in needles(identity) if n in logs.getvalue().encode()] == []
    # The history keeps the description as written (the phone in it); everything else of the
    # identity exists only sealed.
    sealed_only = [identity[field].encode() for field in ("name", "email", "nik")]
    assert found_in_files(folder, sealed_only) == []


def test_rotation_rewraps_data_keys_so_the_old_master_key_can_leave_the_ring(
    where: tuple[str, Path], models: Mapping[str, Model], tmp_path: Path
) -> None:
    url, _ = where
    upgrade(url)
    engine = open_engine(url)
    old = KeyRing.generate("k1")
    identities = {f"LAPOR-RK-{n}": an_identity() for n in range(3)}
    try:
        runtime = runtime_on(engine, models, old)
        for case, identity in identities.items():
            assert runtime.start("sp4n-lapor", case, _intake(), reporter=identity, at=T0).accepted
        rotated = old.with_new_key("k2")
        assert runtime_on(engine, models, rotated).rewrap_identities() == 3
        assert runtime_on(engine, models, rotated).rewrap_identities() == 0  # all on k2 now

        key_file = tmp_path / "ring.json"
        rotated.write(key_file)
        data = json.loads(key_file.read_text())
        del data["keys"]["k1"]
        key_file.write_text(json.dumps(data))
        only_new = KeyRing.from_file(key_file)

        for case, identity in identities.items():
            assert runtime_on(engine, models, only_new).reporter(case) == identity
            with pytest.raises(IdentityError, match=r"data key does not open|does not hold"):
                runtime_on(engine, models, old).reporter(case)
    finally:
        engine.dispose()


def test_erasure_deletes_the_wrapped_key_from_the_files_and_nothing_opens_it_again(
    where: tuple[str, Path], models: Mapping[str, Model]
) -> None:
    url, folder = where
    upgrade(url)
    engine = open_engine(url)
    ring = KeyRing.generate()
    identity = an_identity()
    try:
        runtime = runtime_on(engine, models, ring)
        runtime.start("sp4n-lapor", "LAPOR-ER-1", _intake(), reporter=identity, at=T0)
        with engine.connect() as conn:
            wrapped = conn.execute(text("SELECT wrapped_key FROM reporters")).scalar_one()
        flush_to_disk(engine)
        assert found_in_files(folder, [bytes(wrapped)])  # the test can see it while it exists

        assert runtime.erase_reporter("LAPOR-ER-1", T0 + timedelta(days=1))
        flush_to_disk(engine)

        with pytest.raises(IdentityErasedError):
            runtime.reporter("LAPOR-ER-1")
        if engine.dialect.name == "sqlite":
            # PostgreSQL keeps dead row versions until VACUUM reuses their space; the
            # ciphertext left there cannot be opened without the wrapped key either way.
            assert found_in_files(folder, [bytes(wrapped)]) == []
        assert runtime.case("LAPOR-ER-1").state == "submitted"  # the case itself goes on
    finally:
        engine.dispose()


def test_upgrading_a_database_with_identities_in_clear_seals_them(
    tmp_path: Path, models: Mapping[str, Model], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "old.db"
    url = f"sqlite:///{path}"
    upgrade(url)
    engine = open_engine(url)
    identity = an_identity()
    runtime_on(engine, models, KeyRing.generate()).start("sp4n-lapor", "LAPOR-UP-1", _intake())
    command.downgrade(alembic_config(url), "0005")
    with engine.begin() as conn:  # what 0005's runtime wrote: the identity as plain JSON
        conn.execute(
            text("INSERT INTO reporters (case_id, identity) VALUES ('LAPOR-UP-1', :identity)"),
            {"identity": json.dumps(identity)},
        )
    engine.dispose()
    assert found_in_files(tmp_path, [identity["nik"].encode()])

    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.delenv(KEY_FILE_ENV, raising=False)
    with pytest.raises(IdentityError, match="1 reporter identities are stored in clear"):
        upgrade(url)
    ring = KeyRing.generate("k1")
    ring.write(tmp_path / "ring.json")
    monkeypatch.setenv(KEY_FILE_ENV, str(tmp_path / "ring.json"))
    upgrade(url)

    engine = open_engine(url)
    try:
        flush_to_disk(engine)
        assert runtime_on(engine, models, ring).reporter("LAPOR-UP-1") == identity
    finally:
        engine.dispose()
    assert found_in_files(tmp_path, needles(identity)) == []


def _intake() -> dict[str, str]:
    return {"category": "kesehatan", "region": "ID-JK", "channel": "web", "description": "x"}
