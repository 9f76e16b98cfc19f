"""The global log of record hashes as an RFC 6962 (RFC 9162 section 2.1) Merkle tree.

Per-case hash chains show a record changed in place, but not a case deleted outright, a chain
cut short, or a chain rewritten whole by someone with write access. Every record hash is also a
leaf of one append-only tree: ``leaf = SHA-256(0x00 || record hash)``, ``node = SHA-256(0x01 ||
left || right)``, the left subtree of ``n`` leaves always the largest power of two below ``n``.
An auditor who kept an older tree head (size and root) checks with a consistency proof that the
log only grew since, and with an inclusion proof that a record is in it. The same hashes as Go's
``golang.org/x/mod/sumdb/tlog`` (the test cross-checks them).

Pure: hashes in, hashes out.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

__all__ = [
    "MerkleTree",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root_of",
    "verify_consistency",
    "verify_inclusion",
]


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly below ``n`` (``n`` > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


class MerkleTree:
    """The tree head of a growing list of leaves in O(log n) memory: the roots of the perfect
    subtrees the leaves so far fill, largest first."""

    __slots__ = ("_frontier", "size")

    def __init__(self) -> None:
        self._frontier: list[tuple[int, bytes]] = []  # (leaves under it, its hash)
        self.size = 0

    def append(self, leaf: bytes) -> None:
        """Add the leaf hash ``leaf`` (``leaf_hash`` of the record's bytes)."""
        count, value = 1, leaf
        while self._frontier and self._frontier[-1][0] == count:
            below, left = self._frontier.pop()
            count, value = below + count, node_hash(left, value)
        self._frontier.append((count, value))
        self.size += 1

    def root(self) -> bytes:
        """The root of the leaves so far (SHA-256 of nothing for an empty tree, as RFC 6962)."""
        if not self._frontier:
            return hashlib.sha256(b"").digest()
        value = self._frontier[-1][1]
        for _, left in reversed(self._frontier[:-1]):
            value = node_hash(left, value)
        return value


def root_of(leaves: Sequence[bytes]) -> bytes:
    tree = MerkleTree()
    for leaf in leaves:
        tree.append(leaf)
    return tree.root()


def _subtree(leaves: Sequence[bytes]) -> bytes:
    if len(leaves) == 1:
        return leaves[0]
    k = _split(len(leaves))
    return node_hash(_subtree(leaves[:k]), _subtree(leaves[k:]))


def inclusion_proof(index: int, leaves: Sequence[bytes]) -> list[bytes]:
    """The audit path of leaf ``index`` in the tree of ``leaves`` (RFC 9162 2.1.3.1)."""
    if not 0 <= index < len(leaves):
        raise ValueError(f"leaf {index} is not in a tree of {len(leaves)}")
    if len(leaves) == 1:
        return []
    k = _split(len(leaves))
    if index < k:
        return [*inclusion_proof(index, leaves[:k]), _subtree(leaves[k:])]
    return [*inclusion_proof(index - k, leaves[k:]), _subtree(leaves[:k])]


def consistency_proof(old_size: int, leaves: Sequence[bytes]) -> list[bytes]:
    """The proof that the tree of the first ``old_size`` leaves is a prefix of the tree of
    ``leaves`` (RFC 9162 2.1.4.1)."""
    if not 0 < old_size <= len(leaves):
        raise ValueError(f"no consistency proof from size {old_size} to {len(leaves)}")
    return _consistency(old_size, leaves, True)


def _consistency(m: int, leaves: Sequence[bytes], complete: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if complete else [_subtree(leaves)]
    k = _split(n)
    if m <= k:
        return [*_consistency(m, leaves[:k], complete), _subtree(leaves[k:])]
    return [*_consistency(m - k, leaves[k:], False), _subtree(leaves[:k])]


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> bool:
    """Whether ``proof`` shows leaf hash ``leaf`` at ``index`` in the tree of ``size`` with
    ``root`` (RFC 9162 2.1.3.2)."""
    if not 0 <= index < size:
        return False
    fn, sn, value = index, size - 1, leaf
    for sibling in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            value = node_hash(sibling, value)
            if not fn & 1:
                while fn and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
        else:
            value = node_hash(value, sibling)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and value == root


def verify_consistency(
    old_size: int, size: int, old_root: bytes, root: bytes, proof: Sequence[bytes]
) -> bool:
    """Whether ``proof`` shows the tree of ``old_size`` with ``old_root`` is a prefix of the tree
    of ``size`` with ``root`` (RFC 9162 2.1.4.2)."""
    if old_size == size:
        return not proof and old_root == root
    if not 0 < old_size < size or not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # a power of two: the old root is the first node
        path.insert(0, old_root)
    fn, sn = old_size - 1, size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    first = path[0]
    fr = sr = first
    for sibling in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(sibling, fr), node_hash(sibling, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, sibling)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and fr == old_root and sr == root
