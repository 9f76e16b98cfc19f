"""The Merkle log and signed checkpoints held against an independent implementation: Go's
``golang.org/x/mod/sumdb/tlog`` and ``note``, built from the Go module proxy into the cache by
``scripts/ensure-tlog-checker.sh``."""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from engine.domain.merkle import (
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root_of,
    verify_consistency,
    verify_inclusion,
)
from engine.runtime.checkpoints import Checkpoint, NoteSigner, open_checkpoint

ROOT = Path(__file__).resolve().parents[2]


@functools.cache
def checker() -> Path:
    done = subprocess.run(
        ["sh", str(ROOT / "scripts" / "ensure-tlog-checker.sh")],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"building the Go checker failed:\n{done.stderr}")
    return Path(done.stdout.strip().splitlines()[-1])


def go(request: dict[str, Any]) -> dict[str, Any]:
    done = subprocess.run(
        [str(checker())], input=json.dumps(request), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


def b64(values: list[bytes]) -> list[str]:
    return [base64.b64encode(v).decode() for v in values]


RECORDS = [hashlib.sha256(f"record {i}".encode()).digest() for i in range(1000)]


@pytest.mark.parametrize(("size", "old"), [(1, 1), (7, 3), (64, 32), (1000, 677)])
def test_roots_and_proofs_agree_with_go_tlog(size: int, old: int) -> None:
    leaves = [leaf_hash(r) for r in RECORDS[:size]]
    indexes = sorted({0, size // 2, size - 1})
    ours = {i: inclusion_proof(i, leaves) for i in indexes}
    ours_consistency = consistency_proof(old, leaves)

    answer = go(
        {
            "records": [r.hex() for r in RECORDS[:size]],
            "old_size": old,
            "inclusion": [{"index": i, "proof": b64(ours[i])} for i in indexes],
            "consistency": b64(ours_consistency),
        }
    )

    root = root_of(leaves)
    assert answer["root"] == base64.b64encode(root).decode()
    assert answer["old_root"] == base64.b64encode(root_of(leaves[:old])).decode()
    assert answer["inclusion_ok"] == [True] * len(indexes)
    assert answer["inclusion_go"] == [b64(ours[i]) for i in indexes]
    assert answer["consistency_ok"] is (old < size or ours_consistency == [])
    for i, proof in zip(indexes, answer["inclusion_go"], strict=True):
        decoded = [base64.b64decode(p) for p in proof]
        assert verify_inclusion(i, size, leaves[i], decoded, root)
    if old < size:
        theirs = [base64.b64decode(p) for p in answer["consistency_go"]]
        assert verify_consistency(old, size, root_of(leaves[:old]), root, theirs)


def test_a_signed_checkpoint_opens_with_go_note_and_a_forged_one_does_not() -> None:
    signer = NoteSigner("lapor.example.go.id", Ed25519PrivateKey.generate())
    leaves = [leaf_hash(r) for r in RECORDS[:10]]
    checkpoint = Checkpoint("lapor.example.go.id/log", 10, root_of(leaves))
    note = signer.sign(checkpoint)

    answer = go({"records": [], "note": note, "verifier": signer.verifier_key})
    forged = go(
        {"records": [], "note": note.replace("\n10\n", "\n11\n"), "verifier": signer.verifier_key}
    )

    assert answer["note_ok"] and answer["note_text"] == checkpoint.body()
    assert not forged["note_ok"]
    assert open_checkpoint(note, signer.verifier_key) == checkpoint
    with pytest.raises(Exception, match="does not verify"):
        open_checkpoint(note.replace("\n10\n", "\n11\n"), signer.verifier_key)
