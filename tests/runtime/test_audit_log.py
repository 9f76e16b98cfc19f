"""The Merkle log on the embedded runtime, on SQLite and PostgreSQL: ``lapor audit checkpoint``
appends every record and signs the tree head; ``lapor audit verify`` finds a record changed
since it was logged (its chain recomputed or not), a case deleted outright, and, against a kept
checkpoint, a log rewritten to match or cut short."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text
from typer.testing import CliRunner, Result

from engine.domain.events import Actor, Signal, instant
from engine.faces.cli.main import app
from engine.runtime.clock import VirtualClock
from engine.sql.embedded import EmbeddedRuntime
from engine.sql.migrations import upgrade
from engine.sql.store import open_engine
from tests.runtime.postgres import pg_server, pg_url

__all__ = ["pg_server", "pg_url"]

T0 = instant("2026-03-02T10:00:00+07:00")
INTAKE = {"category": "kesehatan", "region": "ID-JK", "channel": "web", "description": "x"}
VERIFY = Signal("verify", Actor.parse("admin:nasional"), {"agency": "kemenkes"})


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path, models: object) -> Iterator[str]:
    chosen = (
        f"sqlite:///{tmp_path / 'lapor.db'}"
        if request.param == "sqlite"
        else (request.getfixturevalue("pg_url"))
    )
    upgrade(chosen)
    engine = open_engine(chosen)
    runtime = EmbeddedRuntime(engine, models, VirtualClock(T0))  # type: ignore[arg-type]
    for n in range(3):
        runtime.start("sp4n-lapor", f"LAPOR-A-{n}", INTAKE, at=T0)
    runtime.signal("LAPOR-A-1", VERIFY, at=T0 + timedelta(hours=1))
    engine.dispose()
    yield chosen


@pytest.fixture
def key(tmp_path: Path) -> Path:
    path = tmp_path / "ed25519.pem"
    path.write_bytes(
        Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


def lapor(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def checkpoint(url: str, key: Path, out: Path) -> str:
    result = lapor("audit", "checkpoint", "--db", url, "--key", str(key), "-o", str(out))
    assert result.exit_code == 0, result.output
    return result.stderr.split("verifier key: ")[1].split("\n")[0]


def sql(url: str, *statements: str) -> None:
    engine = open_engine(url)
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement))
    engine.dispose()


def test_an_untouched_log_verifies_against_its_signed_checkpoint(
    url: str, key: Path, tmp_path: Path
) -> None:
    verifier = checkpoint(url, key, tmp_path / "cp")

    result = lapor("audit", "verify", "--db", url, "--checkpoint", str(tmp_path / "cp"),
                   "--verifier", verifier)  # fmt: skip

    assert result.exit_code == 0, result.output
    assert "ok: 3 case(s)" in result.output
    assert (tmp_path / "cp").read_text().startswith("lapor-sla\n4\n")


def test_a_record_changed_after_it_was_logged_is_named(url: str, key: Path, tmp_path: Path) -> None:
    checkpoint(url, key, tmp_path / "cp")
    sql(url, "UPDATE history SET hash = 'f' || substr(hash, 2) "
        "WHERE case_id = 'LAPOR-A-1' AND seq = 2")  # fmt: skip

    result = lapor("audit", "verify", "--db", url)

    assert result.exit_code == 1
    assert "LAPOR-A-1 #2: the record was changed since it was logged" in result.output


def test_a_case_deleted_outright_is_named(url: str, key: Path, tmp_path: Path) -> None:
    checkpoint(url, key, tmp_path / "cp")
    sql(url, "DELETE FROM outbox WHERE case_id = 'LAPOR-A-2'",
        "DELETE FROM history WHERE case_id = 'LAPOR-A-2'",
        "DELETE FROM cases WHERE id = 'LAPOR-A-2'")  # fmt: skip

    result = lapor("audit", "verify", "--db", url)

    assert result.exit_code == 1
    assert "LAPOR-A-2 #1: the record in the log was deleted" in result.output


def test_a_log_rewritten_to_match_fails_against_the_kept_checkpoint(
    url: str, key: Path, tmp_path: Path
) -> None:
    verifier = checkpoint(url, key, tmp_path / "cp")
    forged = "UPDATE {} SET {} = 'a' || substr({}, 2) WHERE case_id = 'LAPOR-A-0' AND seq = 1"
    sql(url, forged.format("history", "hash", "hash"),
        forged.format("log_leaves", "record_hash", "record_hash"))  # fmt: skip

    plain = lapor("audit", "verify", "--db", url)
    kept = lapor("audit", "verify", "--db", url, "--checkpoint", str(tmp_path / "cp"),
                 "--verifier", verifier)  # fmt: skip

    assert "the record was changed" not in plain.output  # the log alone was made to agree
    assert kept.exit_code == 1
    assert "no longer hash to the checkpoint's root" in kept.output


def test_a_log_cut_short_fails_against_the_kept_checkpoint(
    url: str, key: Path, tmp_path: Path
) -> None:
    verifier = checkpoint(url, key, tmp_path / "cp")
    sql(url, "DELETE FROM log_leaves WHERE position = 3")

    result = lapor("audit", "verify", "--db", url, "--checkpoint", str(tmp_path / "cp"),
                   "--verifier", verifier)  # fmt: skip

    assert result.exit_code == 1 and "it was truncated" in result.output


def test_a_forged_checkpoint_is_refused(url: str, key: Path, tmp_path: Path) -> None:
    verifier = checkpoint(url, key, tmp_path / "cp")
    cp = tmp_path / "cp"
    cp.write_text(cp.read_text().replace("\n4\n", "\n3\n", 1))

    result = lapor("audit", "verify", "--db", url, "--checkpoint", str(cp), "--verifier", verifier)

    assert result.exit_code != 0 and "does not verify" in str(result.exception)
