"""``lapor keys``: a key is printed once and stored only as its hash; revocation is permanent."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from tests.lapor_process import ROOT, lapor


def _db(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'lapor.db'}"
    assert lapor("db", "upgrade", "--db", url, cwd=ROOT).returncode == 0
    return url


def test_a_created_key_is_printed_once_and_only_its_hash_is_stored(tmp_path: Path) -> None:
    url = _db(tmp_path)
    made = lapor(
        "keys", "create", "--role", "agency", "--agency", "kemenkes", "--name", "SIMPEL",
        "--db", url, cwd=ROOT,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    assert key.startswith("lapor_") and len(key) > 40
    listed = lapor("keys", "list", "--db", url, "--json", cwd=ROOT)
    assert key not in listed.stdout
    [described] = json.loads(listed.stdout)
    assert described["role"] == "agency" and described["agency"] == "kemenkes"
    assert described["name"] == "SIMPEL" and described["revoked_at"] is None
    assert key.encode() not in (tmp_path / "lapor.db").read_bytes()
    with sqlite3.connect(tmp_path / "lapor.db") as conn:
        assert conn.execute("SELECT count(*) FROM api_keys").fetchone() == (1,)


def test_a_revoked_key_stays_listed_with_its_instant(tmp_path: Path) -> None:
    url = _db(tmp_path)
    made = lapor("keys", "create", "--role", "auditor", "--db", url, "--json", cwd=ROOT)
    key_id = json.loads(made.stdout)["id"]
    revoked = lapor("keys", "revoke", key_id, "--db", url, cwd=ROOT)
    assert revoked.returncode == 0 and f"revoked {key_id}" in revoked.stdout
    [described] = json.loads(lapor("keys", "list", "--db", url, "--json", cwd=ROOT).stdout)
    assert described["revoked_at"] is not None


def test_keys_refuse_the_system_role_an_unknown_agency_and_an_unknown_id(tmp_path: Path) -> None:
    url = _db(tmp_path)
    cases = [
        (["--role", "system"], "engine's own role"),
        (["--role", "agency"], "give its code"),
        (["--role", "agency", "--agency", "kemenkesx"], "unknown agency 'kemenkesx'"),
        (["--role", "channel", "--agency", "kemenkes"], "only a key of role agency"),
    ]
    for args, message in cases:
        refused = lapor("keys", "create", *args, "--db", url, cwd=ROOT)
        assert refused.returncode == 2 and message in refused.stderr, (args, refused.stderr)
        assert "Traceback" not in refused.stderr
    unknown = lapor("keys", "revoke", "k000000000000", "--db", url, cwd=ROOT)
    assert unknown.returncode == 2 and "unknown key id" in unknown.stderr
