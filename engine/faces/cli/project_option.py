"""``--project DIR``, taken by every ``lapor`` command that reads definitions, and the one line
on stderr that says which project a command used when it is not the current directory.

The rule that picks the project is ``engine.definitions.project.locate_project`` alone (the
option, then ``$LAPOR_PROJECT``, then the nearest project above, then the shipped definitions).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from engine.definitions.project import PROJECT_ENV, Project, locate_project

__all__ = ["ProjectDir", "note_project", "use_project"]


def _only_from_command_line(
    ctx: typer.Context, param: typer.CallbackParam, value: Path | None
) -> Path | None:
    # typer reads $LAPOR_PROJECT too, so that --help shows it; a value that came from there is
    # dropped here, for locate_project to read the variable itself and name it in its messages.
    source = ctx.get_parameter_source(param.name) if param.name else None
    return None if source is not None and source.name == "ENVIRONMENT" else value


ProjectDir = Annotated[
    Path | None,
    typer.Option(
        "--project",
        envvar=PROJECT_ENV,
        metavar="DIR",
        callback=_only_from_command_line,
        show_default=False,
        help="The folder with your workflows/ and policies/ (default: the nearest one at or "
        "above the current directory, else the definitions shipped with lapor-sla).",
    ),
]


def note_project(project: Project) -> None:
    """Say on stderr which project is used, unless it is the current directory."""
    if project.root != Path.cwd().resolve():
        typer.echo(f"lapor: using project {project.root} ({project.how})", err=True)


def use_project(explicit: Path | None, start: Path | None = None) -> Project:
    """The project for ``--project`` (``explicit``), found from ``start`` (default: the current
    directory); noted on stderr when it is not the current directory."""
    project = locate_project(explicit, start)
    note_project(project)
    return project
