"""Options several ``lapor`` command modules share (one definition, so ``--db`` means one thing
everywhere); a leaf module, so any command module may import it without a cycle."""

from __future__ import annotations

from typing import Annotated

import typer

__all__ = ["DEFAULT_DB", "AsJson", "Db", "Temporal"]

DEFAULT_DB = "sqlite:///lapor.db"

Db = Annotated[
    str,
    typer.Option("--db", envvar="LAPOR_DB", help="Database URL (sqlite:///FILE or postgresql://)."),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
Temporal = Annotated[
    str | None,
    typer.Option(
        "--temporal",
        envvar="LAPOR_TEMPORAL",
        help="Use the Temporal runtime at this address (host:port) instead of --db.",
    ),
]
