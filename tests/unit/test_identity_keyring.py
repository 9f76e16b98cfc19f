"""The key ring (``engine.runtime.identity``): envelope sealing bound to its case, key files,
rotation, and reporter tokens."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest

from engine.runtime.identity import IdentityError, KeyRing, SealedIdentity, new_key

IDENTITY = {"name": "Siti Rahmawati", "phone": "081298765432"}


def test_a_sealed_identity_opens_only_for_its_own_case() -> None:
    ring = KeyRing.generate()
    sealed = ring.seal("LAPOR-1", IDENTITY)

    assert ring.open("LAPOR-1", sealed) == IDENTITY
    assert b"Siti" not in sealed.ciphertext + sealed.wrapped_key
    with pytest.raises(IdentityError, match="LAPOR-2"):
        ring.open("LAPOR-2", sealed)


def test_a_data_key_moved_to_another_identity_does_not_open_it() -> None:
    ring = KeyRing.generate()
    one, other = ring.seal("LAPOR-1", IDENTITY), ring.seal("LAPOR-1", {"name": "Budi"})

    with pytest.raises(IdentityError, match="altered"):
        ring.open("LAPOR-1", dataclasses.replace(other, wrapped_key=one.wrapped_key))


def test_each_identity_has_its_own_data_key() -> None:
    ring = KeyRing.generate()
    first, second = ring.seal("LAPOR-1", IDENTITY), ring.seal("LAPOR-1", IDENTITY)

    assert first.wrapped_key != second.wrapped_key and first.ciphertext != second.ciphertext


def test_rotation_rewraps_only_the_data_key() -> None:
    old = KeyRing.generate("k1")
    sealed = old.seal("LAPOR-1", IDENTITY)
    new = old.with_new_key("k2")

    moved = new.rewrap("LAPOR-1", sealed)

    assert (moved.key_id, moved.ciphertext) == ("k2", sealed.ciphertext)
    assert new.open("LAPOR-1", moved) == IDENTITY
    with pytest.raises(IdentityError, match="key 'k2'"):
        old.open("LAPOR-1", moved)


def test_the_text_form_round_trips_and_the_old_one_key_form_still_opens() -> None:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    ring = KeyRing.generate("k1")
    sealed = ring.seal("LAPOR-1", IDENTITY)
    assert ring.open_text("LAPOR-1", sealed.to_text()) == IDENTITY
    assert (
        repr(SealedIdentity.from_text(sealed.to_text())) == "SealedIdentity(key_id='k1', <sealed>)"
    )

    # What Temporal inputs held before envelopes: the identity sealed directly by the key.
    key = os.urandom(32)
    nonce = os.urandom(12)
    plain = json.dumps(IDENTITY).encode()
    import base64

    legacy = (
        "v1:"
        + base64.urlsafe_b64encode(nonce + AESGCM(key).encrypt(nonce, plain, b"LAPOR-1")).decode()
    )
    assert KeyRing({"env-legacy": key}, "env-legacy").open_text("LAPOR-1", legacy) == IDENTITY


def test_a_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ring.json"
    KeyRing.generate("k1").write(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert KeyRing.from_file(path).key_ids == ("k1",)

    path.chmod(0o644)
    with pytest.raises(IdentityError, match="readable by others"):
        KeyRing.from_file(path)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("not json", "not JSON"),
        ('{"keys": {}}', "expected"),
        ('{"active": "k1", "keys": {"k1": "c2hvcnQ="}}', "5 bytes"),
        (json.dumps({"active": "k9", "keys": {"k1": new_key()}}), "active key 'k9'"),
        (json.dumps({"active": "a b", "keys": {"a b": new_key()}}), "key id"),
    ],
)
def test_a_malformed_key_file_is_one_clear_error(
    tmp_path: Path, content: str, problem: str
) -> None:
    path = tmp_path / "ring.json"
    path.write_text(content)
    path.chmod(0o600)

    with pytest.raises(IdentityError, match=problem):
        KeyRing.from_file(path)


def test_the_environment_key_is_a_one_key_ring_with_a_stable_id() -> None:
    key = new_key()
    first = KeyRing.from_env({"LAPOR_IDENTITY_KEY": key})
    second = KeyRing.from_env({"LAPOR_IDENTITY_KEY": key})

    assert first is not None and second is not None and first.key_ids == second.key_ids
    assert key not in repr(first)
    assert KeyRing.from_env({}) is None
    with pytest.raises(IdentityError, match=r"base64|bytes"):
        KeyRing.from_env({"LAPOR_IDENTITY_KEY": "not a key"})


def test_a_reporter_token_is_stable_bound_to_its_case_and_survives_rotation() -> None:
    ring = KeyRing.generate("k1")
    token = ring.reporter_token("LAPOR-1")

    assert token == ring.reporter_token("LAPOR-1") and token.startswith("rt1.k1.")
    assert ring.is_reporter_token("LAPOR-1", token)
    assert not ring.is_reporter_token("LAPOR-2", token)
    assert not ring.is_reporter_token("LAPOR-1", token[:-2] + "AA")
    assert not KeyRing.generate("k1").is_reporter_token("LAPOR-1", token)
    assert ring.with_new_key("k2").is_reporter_token("LAPOR-1", token)  # the old key stays
