"""``lapor audit export``: the embedded store's logged histories as a portable, self-verifying
export (``engine.runtime.exports``; the format is ``docs/audit-export.md``).

An adapter: it sequences the Merkle log (as ``lapor audit checkpoint`` does), then reads the
log's records, leaves and root in one read transaction, signs the checkpoint and hands the
stream to the writer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy import Connection

from engine.domain.errors import LaporError
from engine.faces.cli.options import DEFAULT_DB, Db

__all__ = ["audit_export", "register"]


def register(audit_app: typer.Typer) -> None:
    """Add ``export`` to the ``lapor audit`` group."""
    audit_app.command("export")(audit_export)


def audit_export(
    output: Annotated[
        Path, typer.Option("-o", "--output", help="The export FILE.jsonl (manifest beside it).")
    ],
    cases: Annotated[
        list[str] | None, typer.Argument(help="The cases to export (default: every case).")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="Only cases opened on or after this date or instant.")
    ] = None,
    db: Db = DEFAULT_DB,
    key: Annotated[
        Path | None, typer.Option(help="Ed25519 private key (PEM) to sign the checkpoint with.")
    ] = None,
    name: Annotated[
        str, typer.Option(help="The log's origin and the signing key's name.")
    ] = "lapor-sla",
) -> None:
    """Export recorded histories with the Merkle log's checkpoint, for auditors.

    Writes FILE.jsonl (a line per record) and FILE.manifest.json (models, checkpoint, proofs).

    `python docs/verify_export.py FILE.jsonl` checks it with the Python standard library alone.
    """
    from engine.faces.cli.verify import parse_since
    from engine.runtime.checkpoints import Checkpoint, NoteSigner
    from engine.runtime.exports import SignedLog, checkpoint_of, write_export
    from engine.runtime.histories import EVERY_CASE, Selection, named
    from engine.sql import store
    from engine.sql.auditlog import export_snapshot, sequence

    if output.suffix != ".jsonl":
        raise LaporError(f"{output}: name the export FILE.jsonl (its manifest goes beside it)")
    if not output.parent.is_dir():
        raise LaporError(f"cannot write {output}: the folder {output.parent} does not exist")
    signer = None
    if key is not None:
        try:
            pem = key.read_bytes()
        except OSError as exc:
            raise LaporError(f"cannot read {key}: {exc.strerror or exc}") from None
        signer = NoteSigner.from_pem(name, pem)
    selection = Selection(named(cases or []), parse_since(since))
    Checkpoint(name, 0, b"").body()  # a bad origin fails before the database is touched

    def export(conn: Connection) -> tuple[int, int, int, str]:
        snapshot = export_snapshot(conn, selection)
        checkpoint, proofs = checkpoint_of(snapshot, name, proofs=selection != EVERY_CASE)
        if signer is not None:
            log = SignedLog(checkpoint, signer.sign(checkpoint), signer.verifier_key)
        else:
            log = SignedLog(checkpoint, checkpoint.body())
        summary = write_export(
            output,
            snapshot.histories(),
            log,
            lambda model_hash: store.load_model_data(conn, model_hash),
            selection,
            proofs,
        )
        return summary.cases, summary.records, summary.size, log.note.split("\n")[2]

    engine = store.open_engine(db, create=False)
    try:
        store.transact(engine, sequence, action="append records to the log")
        exported, records, size, root = store.read(engine, export, action="export the log")
    finally:
        engine.dispose()
    if signer is not None:
        typer.echo(f"verifier key: {signer.verifier_key}", err=True)
    else:
        typer.echo("note: checkpoint unsigned (give --key ed25519.pem to sign it)", err=True)
    typer.echo(
        f"exported {exported} case(s), {records} record(s) to {output}; "
        f"log size {size}, root {root}",
        err=True,
    )
