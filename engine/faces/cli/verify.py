"""``lapor audit verify``: every chain checked and every decision re-derived, across a whole store,
a Temporal namespace or an export file, plus the Merkle log and a kept checkpoint where the store
keeps one. One line per problem, naming case and sequence number; exit 1 if any.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy import Connection, func, select

from engine.domain.errors import LaporError
from engine.domain.events import instant
from engine.faces.cli.options import DEFAULT_DB, Db, Temporal
from engine.faces.presenting import printable
from engine.runtime.histories import HistorySource, Selection, named
from engine.runtime.verification import VerifyTally, verify_histories

__all__ = ["audit_verify", "parse_since"]


def parse_since(text: str | None) -> datetime | None:
    """``--since``: a date (the start of that day, WIB) or an ISO 8601 instant with offset."""
    if text is None:
        return None
    if "T" not in text:
        text = f"{text}T00:00:00+07:00"
    return instant(text)


def audit_verify(
    targets: Annotated[
        list[str] | None,
        typer.Argument(help="An export FILE.jsonl first, or none; then the cases (default: all)."),
    ] = None,
    db: Db = DEFAULT_DB,
    temporal: Temporal = None,
    since: Annotated[
        str | None, typer.Option(help="Only cases opened on or after this date or instant.")
    ] = None,
    as_of: Annotated[
        str | None,
        typer.Option(
            help="When the evidence was taken: a deadline that passed before it with nothing "
            "recorded is a missed lapse (default for --db: the store's latest record)."
        ),
    ] = None,
    checkpoint: Annotated[
        Path | None, typer.Option(help="A checkpoint kept from `lapor audit checkpoint`.")
    ] = None,
    verifier: Annotated[
        str | None, typer.Option(help="The checkpoint's verifier key (name+hash+key).")
    ] = None,
) -> None:
    """Check every case's chain and decisions (and, on --db, the Merkle log against the history
    and a kept checkpoint); one line per problem, exit 1 if any."""
    names = list(targets or [])
    export = Path(names.pop(0)) if names and names[0].endswith(".jsonl") else None
    selection = Selection(named(names), parse_since(since))
    moment = instant(as_of) if as_of is not None else None
    if export is not None:
        problems, tally = _verify_export(export, selection, moment, checkpoint, verifier)
    elif temporal is not None:
        if checkpoint is not None:
            raise LaporError("--checkpoint needs --db: the Merkle log is the embedded store's")
        problems, tally = _verify_temporal(temporal, selection, moment)
    else:
        problems, tally = _verify_db(db, selection, moment, checkpoint, verifier)
    for problem in problems:
        typer.echo(printable(f"PROBLEM {problem}"))
    if problems:
        typer.echo(
            f"{tally.failed} of {tally.cases} case(s) failed; {len(problems)} problem(s)", err=True
        )
        raise typer.Exit(1)
    typer.echo(
        f"ok: {tally.cases} case(s), {tally.records} record(s); every chain intact and every "
        "decision re-derived" + ("; the log verified" if export is None and not temporal else "")
    )


def _walk(
    source: HistorySource, selection: Selection, as_of: datetime | None
) -> tuple[list[str], VerifyTally]:
    tally = VerifyTally()
    with _progress(source.count(selection)) as advance:
        problems = [str(p) for p in verify_histories(source, selection, as_of=as_of,
                                                     tally=tally, progress=advance)]  # fmt: skip
    return problems, tally


@contextmanager
def _progress(total: int | None) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr for a person watching; nothing when stderr is not a terminal."""
    if not sys.stderr.isatty():
        yield lambda _records: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    columns = (BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("verifying", total=total)
        yield lambda _records: bar.advance(task)


def _verify_db(
    url: str,
    selection: Selection,
    as_of: datetime | None,
    checkpoint: Path | None,
    verifier: str | None,
) -> tuple[list[str], VerifyTally]:
    from engine.sql import store
    from engine.sql.auditlog import SqlHistories, check_log, log_root
    from engine.sql.tables import history

    def work(conn: Connection) -> tuple[list[str], VerifyTally]:
        found = [p for p in check_log(conn) if _selected(p.case_id, selection)]
        problems = [str(p) for p in found]
        if checkpoint is not None:
            problems += _against_checkpoint(conn, checkpoint, verifier, log_root)
        moment = as_of
        if moment is None:
            latest = conn.scalar(select(func.max(history.c.at)))
            moment = instant(latest) if latest else None
        source = SqlHistories(conn)
        walked, tally = _walk(source, selection, moment)
        _unknown(selection, tally, {p.case_id for p in found})
        return problems + walked, tally

    engine = store.open_engine(url, create=False)
    try:
        return store.read(engine, work, action="verify the store")
    finally:
        engine.dispose()


def _selected(case_id: str, selection: Selection) -> bool:
    return not selection.case_ids or case_id in selection.case_ids


def _unknown(selection: Selection, tally: VerifyTally, mentioned: set[str]) -> None:
    """A case named on the command line that no source holds and no log mentions is a mistake
    in the command, not a finding."""
    if selection.case_ids and selection.since is None and tally.cases + len(mentioned) == 0:
        raise LaporError(f"no case {', '.join(selection.case_ids)} here")


def _against_checkpoint(
    conn: Connection,
    path: Path,
    verifier: str | None,
    log_root: Callable[[Connection, int | None], tuple[int, bytes]],
) -> list[str]:
    from engine.runtime.checkpoints import Checkpoint, open_checkpoint

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise LaporError(f"cannot read checkpoint {path}: {exc}") from None
    kept = open_checkpoint(text, verifier) if verifier else Checkpoint.parse(text)
    size, root = log_root(conn, kept.size)
    if size < kept.size:
        return [
            f"log: the checkpoint covers {kept.size} records, the log holds {size}: "
            "it was truncated"
        ]
    if root != kept.root:
        return [
            f"log: the first {kept.size} records no longer hash to the checkpoint's root: "
            "records were rewritten or removed"
        ]
    return []


def _verify_temporal(
    address: str, selection: Selection, as_of: datetime | None
) -> tuple[list[str], VerifyTally]:
    from workers.connection import TemporalTarget
    from workers.histories import TemporalHistories
    from workers.runtime import TemporalRuntime

    backend = TemporalRuntime.connect(TemporalTarget.from_env(address))
    try:
        return _walk(TemporalHistories(backend), selection, as_of)
    finally:
        backend.close()


def _verify_export(
    path: Path,
    selection: Selection,
    as_of: datetime | None,
    checkpoint: Path | None,
    verifier: str | None,
) -> tuple[list[str], VerifyTally]:
    """An export file: its records against its checkpoint, the checkpoint against the verifier
    key or a kept checkpoint the auditor holds (the manifest's own key proves nothing: whoever
    rewrote the export could have re-signed it), then every case."""
    from engine.runtime.checkpoints import open_checkpoint
    from engine.runtime.exports import ExportHistories, check_export_log

    source = ExportHistories(path)
    manifest = source.manifest
    problems = check_export_log(path, manifest)
    if verifier is not None:
        open_checkpoint(manifest.note, verifier)  # raises, one line, if it does not verify
    if checkpoint is not None:
        problems += _export_against_kept(path, manifest.checkpoint, checkpoint, verifier)
    walked, tally = _walk(source, selection, as_of)
    _unknown(selection, tally, set())
    return problems + walked, tally


def _export_against_kept(
    path: Path, exported: object, kept_path: Path, verifier: str | None
) -> list[str]:
    from engine.runtime.checkpoints import Checkpoint, open_checkpoint

    try:
        text = kept_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise LaporError(f"cannot read checkpoint {kept_path}: {exc}") from None
    kept = open_checkpoint(text, verifier) if verifier else Checkpoint.parse(text)
    if exported == kept:
        return []
    return [
        f"log: {path.name}'s checkpoint is not the kept one ({kept.size} records): compare "
        "them with `lapor audit verify --db --checkpoint`, which checks the log only grew"
    ]
