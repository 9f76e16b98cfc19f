"""Verify a lapor-sla audit export with the Python standard library alone:
``python verify_export.py out.jsonl`` (reads out.manifest.json beside it). Re-derives every
record hash, checks each case's chain, then the checkpoint's Merkle root (full export) or every
inclusion proof (partial). Prints "ok: ..." or one line per problem and exits 1. The checkpoint's
Ed25519 signature is not checked here (docs/audit-export.md says how)."""

import base64
import hashlib
import json
import sys
from collections.abc import Iterable

GENESIS = "0" * 64


def canonical(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def root_of(leaves: Iterable[bytes]) -> bytes:
    """RFC 6962 tree hash: perfect subtrees as they fill, then folded right to left."""
    stack: list[tuple[int, bytes]] = []
    for leaf in leaves:
        count, value = 1, leaf
        while stack and stack[-1][0] == count:
            below, left = stack.pop()
            count, value = below + count, node(left, value)
        stack.append((count, value))
    if not stack:
        return hashlib.sha256(b"").digest()
    value = stack[-1][1]
    for _, left in reversed(stack[:-1]):
        value = node(left, value)
    return value


def included(index: int, size: int, leaf: bytes, proof: list[bytes], root: bytes) -> bool:
    """RFC 9162 section 2.1.3.2: whether ``proof`` puts ``leaf`` at ``index`` under ``root``."""
    if not 0 <= index < size:
        return False
    fn, sn, value = index, size - 1, leaf
    for sibling in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            value = node(sibling, value)
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            value = node(value, sibling)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and value == root


def verify(path: str) -> tuple[int, int, str, list[str]]:
    problems: list[str] = []
    bad = problems.append
    with open(path.removesuffix(".jsonl") + ".manifest.json", encoding="utf-8") as file:
        manifest = json.load(file)
    origin, size, root_text = manifest["log"]["checkpoint"].split("\n")[:3]
    size, root = int(size), base64.b64decode(root_text)
    if [origin, size, root_text] != [manifest["log"][k] for k in ("origin", "size", "root")]:
        bad("manifest: its log fields disagree with its checkpoint")
    full = not manifest["selection"]["case_ids"] and manifest["selection"]["since"] is None
    for model_hash, data in manifest["models"].items():
        if hashlib.sha256(canonical(data).encode()).hexdigest() != model_hash:
            bad(f"manifest: model {model_hash[:12]} does not hash to its key")
    leaves: dict[int, bytes] = {}
    cases, records, case, expected, prev = 0, 0, "", 1, GENESIS
    with open(path, encoding="utf-8") as lines:
        for number, text in enumerate(lines, 1):
            try:
                record = json.loads(text)
                case_id, position = record.pop("case_id"), record.pop("log_position")
                claimed, seq, _ = record.pop("hash"), record["seq"], record["prev_hash"]
            except (ValueError, KeyError, TypeError, AttributeError):
                bad(f"line {number}: not a record of a lapor audit export")
                continue
            where = f"{case_id} #{seq}"
            if case_id != case:
                if case_id < case:
                    bad(f"{where}: line {number}: the case is out of case-id order")
                case, expected, prev = case_id, 1, GENESIS
                cases += 1
            records += 1
            digest = hashlib.sha256(canonical(record).encode()).hexdigest()
            if digest != claimed:
                bad(f"{where}: the record does not hash to its hash (it was changed)")
            if seq != expected:
                bad(f"{where}: expected #{expected} here: a record is missing or moved")
            elif record["prev_hash"] != prev:
                bad(f"{where}: prev_hash does not link to the record before it")
            if record["model_hash"] not in manifest["models"]:
                bad(f"{where}: its model is not in the manifest")
            expected, prev = seq + 1, claimed
            leaf = hashlib.sha256(b"\x00" + bytes.fromhex(digest)).digest()
            if position in leaves or not 0 <= position < size:
                bad(f"{where}: log position {position} is taken or not in the log")
            leaves[position] = leaf
            if not full:
                proof = [base64.b64decode(h) for h in manifest["proofs"].get(str(position), [])]
                if not included(position, size, leaf, proof, root):
                    bad(f"{where}: its inclusion proof fails against the checkpoint root")
    if (cases, records) != (manifest["cases"], manifest["records"]):
        bad(f"export: {cases} cases, {records} records, not as the manifest says")
    if full:
        absent = [p for p in range(size) if p not in leaves]
        if absent:
            bad(f"log: {len(absent)} of {size} positions missing (first {absent[:3]})")
        elif root_of(leaves[p] for p in range(size)) != root:
            bad("log: the records do not hash to the checkpoint's root")
    return cases, records, root_text, problems


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python verify_export.py EXPORT.jsonl")
    try:
        cases, records, root_text, problems = verify(sys.argv[1])
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        cases, records, root_text, problems = 0, 0, "", [f"unreadable export: {exc!r}"]
    for problem in problems:
        print(problem)
    if problems:
        sys.exit(1)
    print(f"ok: {cases} cases, {records} records, root {root_text}")
