"""``python -m workers.main``: the Temporal commands alone (``lapor`` registers them too)."""

from __future__ import annotations

import sys

import typer

from engine.errors import LaporError
from workers.cli import register

__all__ = ["main"]


def main() -> None:
    app = typer.Typer(add_completion=False, no_args_is_help=True)
    register(app)
    try:
        app()
    except LaporError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
