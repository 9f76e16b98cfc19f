"""``lapor audit export`` on SQLite and PostgreSQL: a full and a partial export verify with the
standard-library verifier of ``docs/verify_export.py`` (run without site-packages), every kind
of tampering is named by case and sequence number or by the root, ``ExportHistories`` reads back
exactly what the store holds, and malformed exports are refused with one line."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner, Result

from engine.domain.case import GENESIS
from engine.domain.errors import LaporError
from engine.domain.events import Actor, Signal, instant
from engine.domain.merkle import inclusion_proof, leaf_hash, root_of
from engine.domain.model import Model
from engine.faces.cli.main import app
from engine.runtime.checkpoints import open_checkpoint
from engine.runtime.clock import VirtualClock
from engine.runtime.exports import ExportHistories, ProofTree, manifest_path, read_manifest
from engine.runtime.histories import EVERY_CASE, Selection
from engine.runtime.identity import KeyRing
from engine.sql.auditlog import SqlHistories
from engine.sql.embedded import EmbeddedRuntime
from engine.sql.migrations import upgrade
from engine.sql.store import open_engine
from tests.lapor_process import lapor as lapor_process
from tests.runtime.postgres import pg_server, pg_url

__all__ = ["pg_server", "pg_url"]

ROOT = Path(__file__).resolve().parents[2]
VERIFIER = ROOT / "docs" / "verify_export.py"
T0 = instant("2026-03-02T10:00:00+07:00")
REPORTER = {"name": "Siti Rahayu Wulandari", "phone": "+62-812-5550-1234"}
CASES = [f"LAPOR-E-{n}" for n in range(4)]
AGENCY = Actor.parse("agency:kemenkes")


def _intake(n: int) -> dict[str, str]:
    return {
        "category": "kesehatan",
        "region": "ID-JK",
        "channel": "web",
        "description": f"Antrean puskesmas nomor {n} — pelayanan lambat",
    }


@pytest.fixture(params=["sqlite", "postgresql"])
def url(
    request: pytest.FixtureRequest, tmp_path: Path, models: Mapping[str, Model]
) -> Iterator[str]:
    """Four cases opened a day apart, four records each, the reporter's identity kept apart."""
    chosen = (
        f"sqlite:///{tmp_path / 'lapor.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("pg_url")
    )
    upgrade(chosen)
    engine = open_engine(chosen)
    runtime = EmbeddedRuntime(engine, models, VirtualClock(T0), keyring=KeyRing.generate())
    for n, case_id in enumerate(CASES):
        opened = T0 + timedelta(days=n)
        runtime.start("sp4n-lapor", case_id, _intake(n), reporter=REPORTER, at=opened)
        steps = [
            Signal("verify", Actor.parse("admin:nasional"), {"agency": "kemenkes"}),
            Signal("follow_up", AGENCY, {"response": "Sedang ditindaklanjuti"}),
            Signal("complete", AGENCY, {"response": "Antrean dipercepat"}),
        ]
        for hours, step in enumerate(steps, 1):
            assert runtime.signal(case_id, step, at=opened + timedelta(hours=hours)).accepted
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


def export(url: str, out: Path, *args: str) -> Result:
    result = CliRunner().invoke(app, ["audit", "export", *args, "--db", url, "-o", str(out)])
    assert result.exit_code == 0, result.output
    return result


def verify(out: Path) -> subprocess.CompletedProcess[str]:
    """The verifier as an auditor runs it: no site-packages (-S), no repository (-I)."""
    return subprocess.run(
        [sys.executable, "-I", "-S", str(VERIFIER), str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def lines_of(out: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]


def write_lines(out: Path, lines: list[dict[str, object]]) -> None:
    text = "".join(
        json.dumps(line, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n"
        for line in lines
    )
    out.write_text(text, encoding="utf-8")


def record_hash(line: Mapping[str, object]) -> str:
    body = {k: v for k, v in line.items() if k not in ("case_id", "log_position", "hash")}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def test_a_full_export_holds_every_logged_record_and_verifies_with_the_standard_library(
    url: str, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    result = export(url, out)

    done = verify(out)

    assert done.returncode == 0, done.stdout + done.stderr
    manifest = json.loads(manifest_path(out).read_text(encoding="utf-8"))
    root = manifest["log"]["root"]
    assert done.stdout == f"ok: 4 cases, 16 records, root {root}\n"
    assert "exported 4 case(s), 16 record(s)" in result.stderr and root in result.stderr
    lines = lines_of(out)
    assert [(line["case_id"], line["seq"]) for line in lines] == [
        (case_id, seq) for case_id in CASES for seq in range(1, 5)
    ]
    assert sorted(line["log_position"] for line in lines) == list(range(16))
    assert all(record_hash(line) == line["hash"] for line in lines)
    assert manifest["format"] == "lapor-audit-export/1" and manifest["proofs"] == {}
    assert manifest["log"]["checkpoint"] == f"lapor-sla\n16\n{root}\n"
    assert manifest["log"]["verifier_key"] is None
    [(model_hash, data)] = manifest["models"].items()
    assert Model.from_data(data).hash == model_hash
    assert lines[0]["prev_hash"] == GENESIS


@pytest.mark.parametrize(
    ("args", "cases"),
    [
        (["LAPOR-E-2", "LAPOR-E-0"], ["LAPOR-E-0", "LAPOR-E-2"]),
        (["--since", "2026-03-04"], ["LAPOR-E-2", "LAPOR-E-3"]),
    ],
    ids=["named", "since"],
)
def test_a_partial_export_proves_each_record_in_the_whole_log(
    url: str, tmp_path: Path, args: list[str], cases: list[str]
) -> None:
    out = tmp_path / "part.jsonl"
    export(url, out, *args)
    export(url, tmp_path / "full.jsonl")

    done = verify(out)

    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("ok: 2 cases, 8 records, root ")
    manifest = read_manifest(out)
    assert manifest.checkpoint.size == 16 and not manifest.complete
    lines = lines_of(out)
    assert sorted({str(line["case_id"]) for line in lines}) == cases
    positions = sorted(int(str(line["log_position"])) for line in lines)
    assert sorted(int(p) for p in manifest.proofs) == positions
    tree = ProofTree(
        bytes.fromhex(str(line["hash"]))
        for line in sorted(
            lines_of(tmp_path / "full.jsonl"), key=lambda x: int(str(x["log_position"]))
        )
    )
    assert all(manifest.proof(p) == tuple(tree.proof(p)) for p in positions)
    since = "2026-03-04T00:00:00+07:00" if "--since" in args else None
    assert manifest.selection == Selection(
        tuple(cases) if since is None else (), None if since is None else instant(since)
    )


def test_a_signed_export_carries_a_note_its_verifier_key_opens(
    url: str, tmp_path: Path, key: Path
) -> None:
    out = tmp_path / "out.jsonl"
    result = export(url, out, "--key", str(key), "--name", "lapor.example.go.id")

    manifest = read_manifest(out)

    assert manifest.verifier_key is not None and manifest.verifier_key in result.stderr
    assert open_checkpoint(manifest.note, manifest.verifier_key) == manifest.checkpoint
    assert manifest.checkpoint.origin == "lapor.example.go.id"
    assert verify(out).returncode == 0


def test_an_export_never_carries_the_reporters_identity(url: str, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    export(url, out)

    text = out.read_text(encoding="utf-8") + manifest_path(out).read_text(encoding="utf-8")

    for value in REPORTER.values():
        assert value not in text
    assert "reporter_token" not in text and "Antrean puskesmas nomor 1 —" in text


def _change_effects(lines: list[dict[str, object]]) -> None:
    line = next(x for x in lines if (x["case_id"], x["seq"]) == ("LAPOR-E-1", 2))
    line["effects"] = [{"kind": "entered", "state": "archived", "status": "Diarsipkan"}]


def _delete_line(lines: list[dict[str, object]]) -> None:
    lines.remove(next(x for x in lines if (x["case_id"], x["seq"]) == ("LAPOR-E-2", 2)))


def _swap_lines(lines: list[dict[str, object]]) -> None:
    i = next(i for i, x in enumerate(lines) if (x["case_id"], x["seq"]) == ("LAPOR-E-1", 2))
    lines[i], lines[i + 1] = lines[i + 1], lines[i]


def _rewrite_and_rechain(lines: list[dict[str, object]]) -> None:
    """What someone with the file and the hash function does: a chain that checks out."""
    prev = None
    for line in lines:
        if line["case_id"] != "LAPOR-E-1" or int(str(line["seq"])) < 2:
            continue
        if line["seq"] == 2:
            line["effects"] = [{"kind": "entered", "state": "archived", "status": "Diarsipkan"}]
        else:
            line["prev_hash"] = prev
        line["hash"] = prev = record_hash(line)


TAMPERING = {
    "changed effects": (_change_effects, ["LAPOR-E-1 #2: the record does not hash"]),
    "deleted line": (_delete_line, ["LAPOR-E-2 #3: expected #2 here"]),
    "swapped lines": (
        _swap_lines,
        ["LAPOR-E-1 #3: expected #2 here", "LAPOR-E-1 #2: expected #4 here"],
    ),
    "rewritten chain": (_rewrite_and_rechain, ["log: the records do not hash to the checkpoint"]),
}


@pytest.mark.parametrize("tamper", list(TAMPERING), ids=list(TAMPERING))
def test_a_tampered_full_export_is_named_by_case_and_seq_or_root(
    url: str, tmp_path: Path, tamper: str
) -> None:
    out = tmp_path / "out.jsonl"
    export(url, out)
    change, expected = TAMPERING[tamper]
    lines = lines_of(out)
    change(lines)
    write_lines(out, lines)

    done = verify(out)

    assert done.returncode == 1
    for problem in expected:
        assert problem in done.stdout, done.stdout
    if tamper == "rewritten chain":
        assert done.stdout.count("\n") == 1  # the chain itself passes: only the root tells


def test_a_rewritten_chain_in_a_partial_export_fails_each_rewritten_records_proof(
    url: str, tmp_path: Path
) -> None:
    out = tmp_path / "part.jsonl"
    export(url, out, "LAPOR-E-1", "LAPOR-E-3")
    lines = lines_of(out)
    _rewrite_and_rechain(lines)
    write_lines(out, lines)

    done = verify(out)

    assert done.returncode == 1
    assert done.stdout.splitlines() == [
        f"LAPOR-E-1 #{seq}: its inclusion proof fails against the checkpoint root"
        for seq in (2, 3, 4)
    ]


def test_export_histories_reads_back_exactly_what_the_store_holds(url: str, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    export(url, out)
    engine = open_engine(url)
    with engine.connect() as conn:
        stored = [(h.case_id, h.records, h.model) for h in SqlHistories(conn).histories()]
    engine.dispose()

    source = ExportHistories(out)
    exported = [(h.case_id, h.records, h.model) for h in source.histories()]
    since = Selection(since=instant("2026-03-05T00:00:00+07:00"))

    assert exported == stored
    assert all(r.hash_is_valid() for _, records, _ in exported for r in records)
    assert source.count(EVERY_CASE) == 4 and source.count(since) is None
    assert [h.case_id for h in source.histories(since)] == ["LAPOR-E-3"]
    assert [h.case_id for h in source.histories(Selection(("LAPOR-E-1",)))] == ["LAPOR-E-1"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", r"out\.jsonl:2:1: not JSON"),
        ('{"case_id": "X"}', r"out\.jsonl:2:1: not an export record: no log_position, format"),
        ("FORMAT2", r"out\.jsonl:2:1: a record of format 2; this version reads 1"),
        ("[1, 2]", r"out\.jsonl:2:1: not an export record: a JSON list"),
    ],
    ids=["not-json", "missing-keys", "other-format", "not-an-object"],
)
def test_a_malformed_export_line_is_refused_naming_file_and_line(
    url: str, tmp_path: Path, line: str, message: str
) -> None:
    out = tmp_path / "out.jsonl"
    export(url, out, "LAPOR-E-0")
    first = out.read_text(encoding="utf-8").splitlines()[0]
    if line == "FORMAT2":
        line = first.replace('"format":1', '"format":2')
    out.write_text(f"{first}\n{line}\n", encoding="utf-8")

    with pytest.raises(LaporError) as raised:
        list(ExportHistories(out).histories())

    assert re.search(message, str(raised.value)) and "\n" not in str(raised.value)


def test_an_export_without_its_manifest_is_refused_naming_the_manifest(
    url: str, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    export(url, out, "LAPOR-E-0")
    manifest_path(out).unlink()

    with pytest.raises(LaporError, match=r"out\.manifest\.json: the export's manifest is missing"):
        ExportHistories(out)
    assert verify(out).returncode == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["LAPOR-NOPE-1"], "no case LAPOR-NOPE-1 in the log"),
        (["--key", "missing.pem"], "cannot read missing.pem"),
        (["-o", "nowhere/out.jsonl"], "the folder nowhere does not exist"),
        (["-o", "out.json"], "name the export FILE.jsonl"),
    ],
    ids=["unknown-case", "unreadable-key", "missing-folder", "not-jsonl"],
)
def test_a_mistake_in_the_command_is_one_line_and_exit_2_and_writes_nothing(
    tmp_path: Path, args: list[str], message: str
) -> None:
    db = f"sqlite:///{tmp_path / 'lapor.db'}"
    upgrade(db)
    output = [] if "-o" in args else ["-o", "out.jsonl"]

    done = lapor_process("audit", "export", *args, *output, "--db", db, cwd=tmp_path)

    assert done.returncode == 2, done.stdout + done.stderr
    [line] = done.stderr.strip().splitlines()
    assert message in line
    assert not [p for p in tmp_path.iterdir() if not p.name.startswith("lapor.db")]


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8, 13, 31, 64, 100])
def test_proof_tree_proofs_and_root_equal_the_reference_merkle_tree(size: int) -> None:
    records = [hashlib.sha256(f"r{i}".encode()).digest() for i in range(size)]
    leaves = [leaf_hash(r) for r in records]

    tree = ProofTree(records)

    assert tree.size == size and tree.root() == root_of(leaves)
    assert all(tree.proof(i) == inclusion_proof(i, leaves) for i in range(size))


def test_the_documented_verifier_is_the_shipped_file() -> None:
    doc = (ROOT / "docs" / "audit-export.md").read_text(encoding="utf-8")
    [block] = re.findall(r"```python\n(.*?)```", doc, flags=re.DOTALL)

    assert block == VERIFIER.read_text(encoding="utf-8")


LAPOR_VERIFY_FINDS = {
    "changed effects": ["LAPOR-E-1: record 2: hash does not match its contents"],
    "deleted line": ["LAPOR-E-2: record 3: expected sequence number 2"],
    "swapped lines": ["LAPOR-E-1: record 3: expected sequence number 2"],
    "rewritten chain": [
        "log: the export's records do not hash to its checkpoint's root",
        "LAPOR-E-1: record 2: effect",  # re-derivation tells even without the log
    ],
}


def test_lapor_audit_verify_reads_an_export_and_re_derives_every_decision(
    url: str, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    export(url, out)

    result = CliRunner().invoke(app, ["audit", "verify", str(out)])

    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"ok: {len(CASES)} case(s)")


@pytest.mark.parametrize("tamper", list(TAMPERING), ids=list(TAMPERING))
def test_lapor_audit_verify_names_each_tampering_of_an_export(
    url: str, tmp_path: Path, tamper: str
) -> None:
    out = tmp_path / "out.jsonl"
    export(url, out)
    lines = lines_of(out)
    TAMPERING[tamper][0](lines)
    write_lines(out, lines)

    result = CliRunner().invoke(app, ["audit", "verify", str(out)])

    assert result.exit_code == 1
    for problem in LAPOR_VERIFY_FINDS[tamper]:
        assert problem in result.output, result.output
