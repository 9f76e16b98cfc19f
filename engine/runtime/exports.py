"""Audit exports: a store's logged histories as two portable files an auditor checks with the
standard library alone (``docs/audit-export.md`` is the format; ``docs/verify_export.py`` the
independent verifier).

``FILE.jsonl`` holds one line per record: the canonical JSON of ``HistoryRecord.to_json()`` plus
``case_id`` and ``log_position``, cases in id order, each case's records in sequence order.
``FILE.manifest.json`` beside it holds the counts, the selection, the models the records name,
the Merkle log's checkpoint and, for a partial export, an inclusion proof per record.

Both are written streaming: a line goes to disk as soon as its record is read, and the proofs
of a partial export go to a scratch file until the manifest is assembled, so an export of a
national year needs memory for its leaf hashes only (64 bytes a leaf, and only when proofs are
wanted). ``ExportHistories`` reads an export back as a ``HistorySource``.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from engine.domain.canonical import canonical_json, parse_json
from engine.domain.errors import LaporError, Location
from engine.domain.events import instant, utc_text
from engine.domain.merkle import MerkleTree, leaf_hash, node_hash, verify_inclusion
from engine.domain.model import Model
from engine.domain.records import RECORD_FORMAT, HistoryRecord
from engine.runtime.checkpoints import Checkpoint
from engine.runtime.histories import EVERY_CASE, CaseHistory, Selection

__all__ = [
    "EXPORT_FORMAT",
    "ExportHistories",
    "ExportManifest",
    "ExportSummary",
    "LogSnapshot",
    "LoggedHistory",
    "ProofTree",
    "SignedLog",
    "check_export_log",
    "checkpoint_of",
    "manifest_path",
    "read_manifest",
    "write_export",
]

EXPORT_FORMAT = "lapor-audit-export/1"
_LINE_KEYS = ("case_id", "log_position")
_SCRATCH_IDS = itertools.count()
_RECORD_KEYS = ("format", "seq", "at", "actor", "model_hash", "event", "effects", "prev_hash")


@dataclass(frozen=True, slots=True)
class LoggedHistory:
    """One case's logged records in sequence order, each with its leaf index in the log."""

    case_id: str
    records: tuple[HistoryRecord, ...]
    positions: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class LogSnapshot:
    """What an export reads from a store, all inside one read transaction: the log's size, its
    leaf hashes (raw 32-byte record hashes in position order) and the selected histories,
    restricted to records the log held at that size. Both are re-readable streams."""

    size: int
    record_hashes: Callable[[], Iterator[bytes]]
    histories: Callable[[], Iterator[LoggedHistory]]


@dataclass(frozen=True, slots=True)
class SignedLog:
    """The checkpoint an export is made against, and its text (a signed note, or the body)."""

    checkpoint: Checkpoint
    note: str
    verifier_key: str | None = None


@dataclass(frozen=True, slots=True)
class ExportSummary:
    cases: int
    records: int
    size: int
    root: bytes


def _is_power_of_two(n: int) -> bool:
    return n & (n - 1) == 0


def _split(n: int) -> int:
    return 1 << ((n - 1).bit_length() - 1)


class ProofTree:
    """Every perfect subtree hash of a log, level by level in flat byte arrays, so each
    inclusion proof costs O(log² n) hashes; ``engine.domain.merkle.inclusion_proof`` slices
    the leaf list and is O(n) a proof, too slow for thousands of records of a large log."""

    __slots__ = ("_levels", "size")

    def __init__(self, record_hashes: Iterable[bytes]) -> None:
        leaves = bytearray()
        for record_hash in record_hashes:
            leaves += leaf_hash(record_hash)
        self._levels = [bytes(leaves)]
        while len(self._levels[-1]) >= 64:
            below = self._levels[-1]
            pairs = len(below) // 64
            self._levels.append(
                b"".join(
                    node_hash(below[i * 64 : i * 64 + 32], below[i * 64 + 32 : i * 64 + 64])
                    for i in range(pairs)
                )
            )
        self.size = len(leaves) // 32

    def _range(self, lo: int, hi: int) -> bytes:
        """The hash of the RFC 6962 subtree over leaves ``lo``..``hi - 1``."""
        width = hi - lo
        if _is_power_of_two(width):
            level = width.bit_length() - 1
            start = (lo >> level) * 32
            return self._levels[level][start : start + 32]
        k = _split(width)
        return node_hash(self._range(lo, lo + k), self._range(lo + k, hi))

    def root(self) -> bytes:
        return self._range(0, self.size) if self.size else hashlib.sha256(b"").digest()

    def proof(self, index: int) -> list[bytes]:
        """The audit path of leaf ``index`` (RFC 9162 2.1.3.1), leaf side first."""
        if not 0 <= index < self.size:
            raise ValueError(f"leaf {index} is not in a tree of {self.size}")
        path: list[bytes] = []
        lo, hi = 0, self.size
        while hi - lo > 1:
            k = _split(hi - lo)
            if index < lo + k:
                path.append(self._range(lo + k, hi))
                hi = lo + k
            else:
                path.append(self._range(lo, lo + k))
                lo = lo + k
        path.reverse()
        return path


def checkpoint_of(
    snapshot: LogSnapshot, origin: str, *, proofs: bool
) -> tuple[Checkpoint, ProofTree | None]:
    """The checkpoint of the snapshot's log and, when ``proofs`` (a partial export), its proof
    tree; a full export needs only the root, in O(log n) memory."""
    if proofs:
        tree = ProofTree(snapshot.record_hashes())
        return Checkpoint(origin, tree.size, tree.root()), tree
    head = MerkleTree()
    for record_hash in snapshot.record_hashes():
        head.append(leaf_hash(record_hash))
    return Checkpoint(origin, head.size, head.root()), None


def manifest_path(path: Path) -> Path:
    """``out.jsonl`` -> ``out.manifest.json``, beside it."""
    return path.with_name(f"{path.stem}.manifest.json")


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode()


def _scratch(beside: Path) -> IO[str]:
    # Not tempfile's: its files are private (0600); an export is made to be handed on, so it
    # gets the permissions the umask gives any new file.
    name = beside.with_name(f".{beside.name}.{os.getpid()}.{next(_SCRATCH_IDS)}.tmp")
    return name.open("w", encoding="utf-8")


def write_export(
    path: Path,
    histories: Iterable[LoggedHistory],
    log: SignedLog,
    models: Callable[[str], Mapping[str, Any] | None],
    selection: Selection = EVERY_CASE,
    proofs: ProofTree | None = None,
) -> ExportSummary:
    """Write ``path`` and its manifest from ``histories`` (in case id order), made against
    ``log``; ``models`` gives a model's stored data by hash. A partial export (any selection)
    needs ``proofs``, the tree of the checkpoint's size. Both files appear whole or not at all:
    they are written beside their names and renamed at the end.

    A case named in ``selection`` that no history carries is an input mistake (``LaporError``).
    """
    partial = selection != EVERY_CASE
    if partial and (proofs is None or proofs.size != log.checkpoint.size):
        raise ValueError("a partial export needs the proof tree of the checkpoint's size")
    target = manifest_path(path)
    if not path.parent.is_dir():
        raise LaporError(f"cannot write {path}: the folder {path.parent} does not exist")
    lines, proof_lines = _scratch(path), _scratch(target)
    try:
        cases = records = 0
        model_hashes: set[str] = set()
        named: set[str] = set()
        first_proof = True
        for found in histories:
            cases += 1
            if selection.case_ids:
                named.add(found.case_id)
            for record, position in zip(found.records, found.positions, strict=True):
                line = record.to_json()
                line["case_id"] = found.case_id
                line["log_position"] = position
                lines.write(canonical_json(line))
                lines.write("\n")
                records += 1
                model_hashes.add(record.model_hash)
                if proofs is not None and partial:
                    hashes = ",".join(f'"{_b64(h)}"' for h in proofs.proof(position))
                    proof_lines.write(f'{"" if first_proof else ","}\n"{position}":[{hashes}]')
                    first_proof = False
        missing = sorted(set(selection.case_ids) - named)
        if missing and selection.since is None:
            raise LaporError(f"no case {', '.join(missing)} in the log")
        lines.close()
        proof_lines.close()
        manifest = _scratch(target)
        try:
            _write_manifest(
                manifest,
                cases,
                records,
                selection,
                sorted(model_hashes),
                models,
                log,
                Path(proof_lines.name),
            )
            manifest.close()
            os.replace(lines.name, path)
            os.replace(manifest.name, target)
        finally:
            manifest.close()
            Path(manifest.name).unlink(missing_ok=True)
    finally:
        for scratch in (lines, proof_lines):
            scratch.close()
            Path(scratch.name).unlink(missing_ok=True)
    return ExportSummary(cases, records, log.checkpoint.size, log.checkpoint.root)


def _write_manifest(
    out: IO[str],
    cases: int,
    records: int,
    selection: Selection,
    model_hashes: list[str],
    models: Callable[[str], Mapping[str, Any] | None],
    log: SignedLog,
    proofs: Path,
) -> None:
    def item(key: str, value: Any, last: bool = False) -> None:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        out.write(f'"{key}":{text}{"" if last else ","}\n')

    since = None if selection.since is None else utc_text(selection.since)
    checkpoint = log.checkpoint
    out.write("{")
    item("format", EXPORT_FORMAT)
    item("cases", cases)
    item("records", records)
    item("selection", {"case_ids": list(selection.case_ids), "since": since})
    out.write('"models":{')
    for n, model_hash in enumerate(model_hashes):
        data = models(model_hash)
        if data is None:
            raise LaporError(f"definition {model_hash[:12]} is missing from the database")
        # The stored text is already canonical: the auditor re-hashes exactly these bytes.
        out.write(f'{"," if n else ""}\n"{model_hash}":{canonical_json(data)}')
    out.write("},\n")
    log_part = {
        "origin": checkpoint.origin,
        "size": checkpoint.size,
        "root": _b64(checkpoint.root),
        "checkpoint": log.note,
        "verifier_key": log.verifier_key,
    }
    item("log", log_part)
    out.write('"proofs":{')
    with proofs.open(encoding="utf-8") as source:
        while chunk := source.read(1 << 20):
            out.write(chunk)
    out.write("}}\n")


# --- reading ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExportManifest:
    path: Path
    cases: int
    records: int
    selection: Selection
    models: Mapping[str, Mapping[str, Any]]
    checkpoint: Checkpoint
    note: str
    verifier_key: str | None
    proofs: Mapping[str, Sequence[str]] = field(default_factory=dict)
    """Base64 audit paths by decimal log position, as written: decoded one at a time by
    ``proof``, since a partial export of a national year carries millions of hashes."""

    def proof(self, position: int) -> tuple[bytes, ...] | None:
        """The inclusion proof of the record at ``position``, if the manifest carries one."""
        found = self.proofs.get(str(position))
        if found is None:
            return None
        try:
            return tuple(base64.b64decode(h, validate=True) for h in found)
        except (TypeError, ValueError):
            raise _problem(self.path, f"the proof of position {position} is not base64") from None

    @property
    def complete(self) -> bool:
        """Whether the export holds every record of the log (no selection was made)."""
        return self.selection == EVERY_CASE


def _problem(path: Path, message: str, line: int = 0, column: int = 0) -> LaporError:
    return LaporError(message, location=Location(str(path), line, column))


def read_manifest(path: Path) -> ExportManifest:
    """The manifest of the export ``path`` (the ``.jsonl`` file or the manifest itself)."""
    target = path if path.name.endswith(".manifest.json") else manifest_path(path)
    try:
        text = target.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise _problem(target, "the export's manifest is missing") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise _problem(target, f"cannot read the manifest: {exc}") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        line, column = getattr(exc, "lineno", 0), getattr(exc, "colno", 0)
        raise _problem(target, f"not JSON: {exc}", line, column) from None
    if not isinstance(data, dict) or data.get("format") != EXPORT_FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise _problem(target, f"not a {EXPORT_FORMAT} manifest (format {found!r})", 1)
    try:
        log, chosen = data["log"], data["selection"]
        since = chosen["since"]
        selection = Selection(tuple(chosen["case_ids"]), None if since is None else instant(since))
        checkpoint = Checkpoint.parse(log["checkpoint"])
        proofs = data["proofs"]
        if not isinstance(proofs, dict):
            raise TypeError("proofs is not an object")
        return ExportManifest(
            target,
            int(data["cases"]),
            int(data["records"]),
            selection,
            dict(data["models"]),
            checkpoint,
            log["checkpoint"],
            log["verifier_key"],
            proofs,
        )
    except KeyError as exc:
        raise _problem(target, f"the manifest has no {exc.args[0]!r}", 1) from None
    except LaporError as exc:
        raise _problem(target, exc.message, 1) from None
    except (TypeError, ValueError, AttributeError) as exc:
        raise _problem(target, f"a malformed manifest: {exc}", 1) from None


class ExportHistories:
    """An export file as a ``HistorySource``: case by case, read streaming, each case with the
    model the manifest carries for it. ``case`` is ``None``: an export holds records only."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.manifest = read_manifest(path)
        self._models: dict[str, Model | str] = {}

    def count(self, selection: Selection = EVERY_CASE) -> int | None:
        return self.manifest.cases if selection == EVERY_CASE else None

    def histories(self, selection: Selection = EVERY_CASE) -> Iterator[CaseHistory]:
        for case_id, records, problem in self._cases():
            found = self._history(case_id, records, problem)
            if selection.wants(found):
                yield found

    def _history(
        self, case_id: str, records: tuple[HistoryRecord, ...], problem: str | None
    ) -> CaseHistory:
        model = self._model(records[0].model_hash)
        if isinstance(model, str):
            return CaseHistory(case_id, records, None, problem=problem or model)
        return CaseHistory(case_id, records, model, problem=problem, models=self._model_or_none)

    def _model_or_none(self, model_hash: str) -> Model | None:
        found = self._model(model_hash)
        return None if isinstance(found, str) else found

    def _model(self, model_hash: str) -> Model | str:
        """The model, or why there is none (a problem of the cases pinned to it)."""
        known = self._models.get(model_hash)
        if known is not None:
            return known
        data = self.manifest.models.get(model_hash)
        found: Model | str
        if data is None:
            found = f"model {model_hash[:12]} is not in the export's manifest"
        else:
            try:
                found = Model.from_data(data)
            except (LaporError, KeyError, TypeError, ValueError) as exc:
                found = f"model {model_hash[:12]} in the manifest is unreadable: {exc}"
            else:
                if found.hash != model_hash:
                    found = f"model {model_hash[:12]} in the manifest does not hash to its key"
        self._models[model_hash] = found
        return found

    def _cases(self) -> Iterator[tuple[str, tuple[HistoryRecord, ...], str | None]]:
        """Consecutive lines of one case, grouped; a case out of id order is its problem."""
        current: str | None = None
        previous = ""
        records: list[HistoryRecord] = []
        problem: str | None = None
        try:
            source = self.path.open(encoding="utf-8")
        except OSError as exc:
            raise _problem(self.path, f"cannot read the export: {exc.strerror or exc}") from None
        with source:
            for number, text in enumerate(source, 1):
                case_id, record = _parse_line(self.path, number, text)
                if case_id != current:
                    if current is not None:
                        yield current, tuple(records), problem
                    problem = None
                    if current is not None and case_id <= previous:
                        problem = f"line {number}: the case is out of case-id order in the export"
                    current, previous, records = case_id, max(previous, case_id), []
                records.append(record)
        if current is not None:
            yield current, tuple(records), problem


def _parse_line(path: Path, number: int, text: str) -> tuple[str, HistoryRecord]:
    try:
        data = parse_json(text)
    except (ValueError, RecursionError) as exc:
        raise _problem(path, f"not JSON: {str(exc).splitlines()[0]}", number) from None
    except UnicodeEncodeError:
        raise _problem(path, "not JSON text", number) from None
    if not isinstance(data, dict):
        raise _problem(path, f"not an export record: a JSON {type(data).__name__}", number)
    absent = [k for k in (*_LINE_KEYS, *_RECORD_KEYS, "hash") if k not in data]
    if absent:
        raise _problem(path, f"not an export record: no {', '.join(absent)}", number)
    if data["format"] != RECORD_FORMAT:
        raise _problem(
            path,
            f"a record of format {data['format']!r}; this version reads {RECORD_FORMAT}",
            number,
        )
    case_id = data["case_id"]
    if not isinstance(case_id, str) or not isinstance(data["log_position"], int):
        raise _problem(path, "not an export record: case_id or log_position mistyped", number)
    try:
        return case_id, HistoryRecord.from_json(data)
    except (TypeError, ValueError, AttributeError) as exc:
        raise _problem(path, f"not an export record: {exc}", number) from None


def check_export_log(path: Path, manifest: ExportManifest) -> list[str]:
    """The export against its own checkpoint: a full export's leaves must rebuild the root, a
    partial export's records must each prove their inclusion. A record rewritten with its whole
    chain recomputed passes every chain check but not this."""
    problems: list[str] = []
    size, root = manifest.checkpoint.size, manifest.checkpoint.root
    leaves: dict[int, bytes] = {}
    try:
        source = path.open(encoding="utf-8")
    except OSError as exc:
        raise _problem(path, f"cannot read the export: {exc.strerror or exc}") from None
    with source:
        for number, text in enumerate(source, 1):
            case_id, record = _parse_line(path, number, text)
            position = int(parse_json(text)["log_position"])
            where = f"{case_id} #{record.seq}"
            if not 0 <= position < size:
                problems.append(f"{where}: log position {position} is outside the checkpoint")
                continue
            if position in leaves:
                problems.append(f"{where}: log position {position} appears twice")
                continue
            leaf = leaf_hash(bytes.fromhex(record.hash))
            leaves[position] = leaf
            if manifest.complete:
                continue
            proof = manifest.proof(position)
            if proof is None or not verify_inclusion(position, size, leaf, list(proof), root):
                problems.append(f"{where}: not included in the checkpoint's tree")
    if manifest.complete:
        missing = [p for p in range(size) if p not in leaves]
        if missing:
            problems.append(
                f"log: {len(missing)} of the checkpoint's {size} records are missing from the "
                f"export (first: position {missing[0]})"
            )
        else:
            tree = MerkleTree()
            for position in range(size):
                tree.append(leaves[position])
            if tree.root() != root:
                problems.append(
                    "log: the export's records do not hash to its checkpoint's root: "
                    "records were rewritten"
                )
    return problems
