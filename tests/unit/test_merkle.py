"""The RFC 6962 Merkle log (``engine.domain.merkle``): roots, inclusion and consistency proofs
for every size up to 40, and that a changed, dropped or reordered leaf breaks them."""

from __future__ import annotations

import hashlib

import pytest

from engine.domain.merkle import (
    MerkleTree,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_of,
    verify_consistency,
    verify_inclusion,
)

LEAVES = [leaf_hash(hashlib.sha256(str(i).encode()).digest()) for i in range(40)]


def reference_root(leaves: list[bytes]) -> bytes:
    """RFC 6962 section 2.1 written as the recursion it is."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return node_hash(reference_root(leaves[:k]), reference_root(leaves[k:]))


def test_the_known_answer_of_rfc_6962_for_an_empty_and_a_one_leaf_tree() -> None:
    assert root_of([]).hex() == ("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    assert leaf_hash(b"").hex() == (
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    )


@pytest.mark.parametrize("size", range(1, 41))
def test_the_incremental_root_is_the_recursive_one(size: int) -> None:
    tree = MerkleTree()
    for leaf in LEAVES[:size]:
        tree.append(leaf)

    assert tree.size == size and tree.root() == reference_root(LEAVES[:size])


@pytest.mark.parametrize("size", range(1, 41))
def test_every_leaf_has_an_inclusion_proof_that_fails_for_any_other_leaf(size: int) -> None:
    leaves, root = LEAVES[:size], reference_root(LEAVES[:size])
    for index in range(size):
        proof = inclusion_proof(index, leaves)
        assert verify_inclusion(index, size, leaves[index], proof, root)
        other = LEAVES[(index + 1) % 40]
        assert not verify_inclusion(index, size, other, proof, root)
        if size > 1:
            assert not verify_inclusion((index + 1) % size, size, leaves[index], proof, root)


@pytest.mark.parametrize("size", range(1, 41))
def test_every_older_tree_is_proved_a_prefix_and_a_rewrite_is_not(size: int) -> None:
    leaves = LEAVES[:size]
    root = reference_root(leaves)
    for old in range(1, size + 1):
        proof = consistency_proof(old, leaves)
        old_root = reference_root(leaves[:old])
        assert verify_consistency(old, size, old_root, root, proof)
        rewritten = reference_root([LEAVES[39 - i] for i in range(old)])
        if old < size:
            assert not verify_consistency(old, size, rewritten, root, proof)
            truncated = reference_root(leaves[: old - 1]) if old > 1 else rewritten
            assert not verify_consistency(old, size, truncated, root, proof)
