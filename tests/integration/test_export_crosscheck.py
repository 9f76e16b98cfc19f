"""An audit export of a 20,000-complaint demo database held against independent checkers: the
standard-library verifier of ``docs/verify_export.py``, and Go's ``golang.org/x/mod/sumdb/tlog``
and ``note`` (``scripts/tlogcheck``), which must compute the same root from the export's record
hashes in log order, accept its inclusion proofs and open its signed checkpoint.

Slow (about a minute: the demo, two exports, the verifier, the Go checker over every record);
everything lives in a temporary folder."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from engine.runtime.exports import manifest_path, read_manifest
from tests.integration.test_tlog_crosscheck import go

ROOT = Path(__file__).resolve().parents[2]
LAPOR = [sys.executable, "-m", "engine.faces.cli.main"]
COMPLAINTS = 20_000
SAMPLE = [f"LAPOR-DEMO-{n:08d}" for n in range(1, COMPLAINTS + 1, 997)]


@dataclass(frozen=True)
class Exported:
    full: Path
    partial: Path
    seconds: float


def run(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [*args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Exported:
    folder = tmp_path_factory.mktemp("export")
    db = f"sqlite:///{folder / 'demo.db'}"
    run(*LAPOR, "demo", "--complaints", str(COMPLAINTS), "--db", db)
    key = folder / "ed25519.pem"
    key.write_bytes(
        Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    signed = ["--db", db, "--key", str(key), "--name", "lapor.example.go.id"]
    started = time.perf_counter()
    run(*LAPOR, "audit", "export", *signed, "-o", str(folder / "full.jsonl"))
    seconds = time.perf_counter() - started
    run(*LAPOR, "audit", "export", *SAMPLE, *signed, "-o", str(folder / "sample.jsonl"))
    return Exported(folder / "full.jsonl", folder / "sample.jsonl", seconds)


def verify(path: Path) -> tuple[str, float]:
    started = time.perf_counter()
    done = run(sys.executable, "-I", "-S", str(ROOT / "docs" / "verify_export.py"), str(path))
    return done.stdout, time.perf_counter() - started


def test_the_standard_library_verifier_passes_a_full_and_a_partial_demo_export(
    exported: Exported,
) -> None:
    full, full_seconds = verify(exported.full)
    partial, _ = verify(exported.partial)

    manifest = read_manifest(exported.full)
    root = json.loads(manifest_path(exported.full).read_text(encoding="utf-8"))["log"]["root"]
    assert manifest.cases == COMPLAINTS and manifest.records == manifest.checkpoint.size
    assert full == f"ok: {COMPLAINTS} cases, {manifest.records} records, root {root}\n"
    assert partial.startswith(f"ok: {len(SAMPLE)} cases, ") and partial.endswith(f"{root}\n")
    size = exported.full.stat().st_size
    print(  # the figures, for `pytest -s`
        f"\n{manifest.records} records, {size / 2**20:.1f} MiB, exported in "
        f"{exported.seconds:.1f} s, verified in {full_seconds:.1f} s"
    )


def test_go_tlog_derives_the_same_root_accepts_the_proofs_and_opens_the_note(
    exported: Exported,
) -> None:
    by_position: dict[int, str] = {}
    with exported.full.open(encoding="utf-8") as lines:
        for line in lines:
            record = json.loads(line)
            by_position[record["log_position"]] = record["hash"]
    full = read_manifest(exported.full)
    sample = json.loads(manifest_path(exported.partial).read_text(encoding="utf-8"))
    checks = [{"index": int(p), "proof": proof} for p, proof in sorted(sample["proofs"].items())]
    assert full.verifier_key is not None

    answer = go(
        {
            "records": [by_position[p] for p in range(len(by_position))],
            "inclusion": checks,
            "note": full.note,
            "verifier": full.verifier_key,
        }
    )

    assert len(by_position) == full.checkpoint.size
    assert (
        answer["root"]
        == sample["log"]["root"]
        == json.loads(manifest_path(exported.full).read_text(encoding="utf-8"))["log"]["root"]
    )
    assert answer["inclusion_ok"] == [True] * len(checks) and len(checks) > len(SAMPLE)
    assert answer["inclusion_go"] == [c["proof"] for c in checks]
    assert answer["note_ok"] and answer["note_text"] == full.checkpoint.body()
    assert sample["log"]["checkpoint"] == full.note  # one log, one signed tree head
