"""``lapor identity`` and the reporter token through the ``lapor`` command, as an operator runs
them: a key file, a start that hands out the token, a reporter signal with and without it, the
identity shown to Admin Nasional only, rotation, erasure."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from tests.lapor_process import lapor as run_lapor

ROOT = Path(__file__).resolve().parents[2]
INTAKE = {"category": "kesehatan", "region": "ID-JK", "channel": "web", "description": "x"}
IDENTITY = {"name": "Rina Wulandari", "phone": "081234567890"}


def lapor(*args: str, cwd: Path, key_file: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {"LAPOR_PROJECT": str(ROOT)}
    if key_file is not None:
        env["LAPOR_KEY_FILE"] = str(key_file)
    return run_lapor(*args, cwd=cwd, env=env)


def test_an_operator_keeps_identities_sealed_and_reporters_acting_on_their_own_case(
    tmp_path: Path,
) -> None:
    ring = tmp_path / "ring.json"
    assert lapor("identity", "init", str(ring), cwd=tmp_path).returncode == 0
    assert ring.stat().st_mode & 0o777 == 0o600
    again = lapor("identity", "init", str(ring), cwd=tmp_path)
    assert again.returncode == 2 and "never overwritten" in again.stderr
    (tmp_path / "intake.json").write_text(json.dumps(INTAKE))
    (tmp_path / "who.json").write_text(json.dumps(IDENTITY))
    assert lapor("db", "upgrade", cwd=tmp_path).returncode == 0

    no_ring = lapor("start", "--workflow", "sp4n-lapor", "--data", "intake.json",
                    "--reporter", "who.json", cwd=tmp_path)  # fmt: skip
    assert no_ring.returncode == 2 and "lapor identity init" in no_ring.stderr
    started = lapor("start", "--workflow", "sp4n-lapor", "--data", "intake.json",
                    "--reporter", "who.json", "--json", cwd=tmp_path, key_file=ring)  # fmt: skip
    assert started.returncode == 0, started.stderr
    answer = json.loads(started.stdout)
    case, token = answer["case_id"], answer["reporter_token"]
    hold = lapor("signal", case, "hold", "--actor", "admin:nasional",
                 "--data", '{"missing_info": "alamat"}', cwd=tmp_path, key_file=ring)  # fmt: skip
    assert hold.returncode == 0, hold.stderr

    supply = ("signal", case, "supply_info", "--actor", "reporter", "--data", '{"info": "Jl. A"}')
    bare = lapor(*supply, cwd=tmp_path, key_file=ring)
    assert bare.returncode == 1 and "not_the_reporter" in bare.stderr
    own = lapor(*supply, "--reporter-token", token, cwd=tmp_path, key_file=ring)
    assert own.returncode == 0 and "submitted" in own.stdout, own.stderr

    as_agency = lapor("identity", "show", case, "--actor", "agency:kemenkes", cwd=tmp_path,
                      key_file=ring)  # fmt: skip
    assert as_agency.returncode == 1 and "only admin may" in as_agency.stderr
    assert "Rina" not in as_agency.stdout + as_agency.stderr
    shown = lapor("identity", "show", case, "--actor", "admin:nasional", cwd=tmp_path,
                  key_file=ring)  # fmt: skip
    assert shown.returncode == 0 and json.loads(shown.stdout) == IDENTITY

    rotated = lapor("identity", "add-key", str(ring), "--key-id", "k2", cwd=tmp_path)
    assert rotated.returncode == 0 and "key k2 is active" in rotated.stdout
    rewrapped = lapor("identity", "rewrap", cwd=tmp_path, key_file=ring)
    assert rewrapped.returncode == 0 and "rewrapped 1 identities and 0 webhook" in rewrapped.stdout

    erased = lapor("identity", "erase", case, "--actor", "admin:nasional", cwd=tmp_path,
                   key_file=ring)  # fmt: skip
    assert erased.returncode == 0 and "identity erased" in erased.stdout
    gone = lapor("identity", "show", case, "--actor", "admin:nasional", cwd=tmp_path,
                 key_file=ring)  # fmt: skip
    assert gone.returncode == 1 and "was erased on" in gone.stderr
    assert b"Rina" not in (tmp_path / "lapor.db").read_bytes()


def test_a_rotation_rewraps_webhook_secrets_so_the_old_key_can_leave_the_ring(
    tmp_path: Path,
) -> None:
    from engine.runtime.identity import KeyRing
    from engine.sql.store import open_engine
    from engine.sql.subscriptions import SubscriptionStore

    ring = tmp_path / "ring.json"
    assert lapor("identity", "init", str(ring), cwd=tmp_path).returncode == 0
    assert lapor("db", "upgrade", cwd=tmp_path).returncode == 0
    engine = open_engine(f"sqlite:///{tmp_path / 'lapor.db'}", create=False)
    first = KeyRing.from_file(ring)
    made = SubscriptionStore(engine, first).create(
        "kemenkes", "https://simpel.kemkes.example/hooks", datetime.now(UTC)
    )

    assert lapor("identity", "add-key", str(ring), "--key-id", "k2", cwd=tmp_path).returncode == 0
    rewrapped = lapor("identity", "rewrap", cwd=tmp_path, key_file=ring)
    assert rewrapped.returncode == 0, rewrapped.stderr
    assert "1 webhook subscription secret(s) under key k2" in rewrapped.stdout
    data = json.loads(ring.read_text())
    del data["keys"][first.active]
    ring.write_text(json.dumps(data))

    kept = SubscriptionStore(engine, KeyRing.from_file(ring)).all("kemenkes")
    engine.dispose()
    assert [(s.id, s.secret) for s in kept] == [(made.id, made.secret)]
