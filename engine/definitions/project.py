"""Where a project's definitions live: a folder holding ``workflows/`` and ``policies/``.

Every command and the SDK find their project the same way, in this order:

1. the folder given explicitly (``--project DIR``, ``Client(project=...)``);
2. ``$LAPOR_PROJECT``;
3. the nearest folder at or above the starting point (the current directory) holding both;
4. the definitions shipped with the package (the SP4N-LAPOR! workflow, its policies, calendars
   and scenarios), so an installed copy works from an empty directory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from engine.domain.errors import LaporError, Location

__all__ = ["PROJECT_ENV", "Project", "find_project_root", "locate_project", "shipped_root"]

PROJECT_ENV = "LAPOR_PROJECT"


@dataclass(frozen=True, slots=True)
class Project:
    """A project folder and how it was found (``how`` is shown to the user when the project
    is not the current directory)."""

    root: Path
    how: str

    @property
    def workflows(self) -> Path:
        return self.root / "workflows"

    @property
    def policies(self) -> Path:
        return self.root / "policies"

    @property
    def calendars(self) -> Path:
        return self.root / "policies" / "calendars"

    @property
    def scenarios(self) -> Path:
        return self.root / "policies" / "tests"


def _is_project(folder: Path) -> bool:
    return (folder / "workflows").is_dir() and (folder / "policies").is_dir()


def find_project_root(start: Path) -> Path:
    """The nearest folder at or above ``start`` holding both ``workflows/`` and ``policies/``."""
    for folder in [start, *start.parents]:
        if _is_project(folder):
            return folder
    raise LaporError(
        "no project (a folder with workflows/ and policies/) at or above this place",
        location=Location(str(start)),
    )


def shipped_root() -> Path:
    """The definitions that ship with the package: ``engine/definitions/shipped/`` in an installed
    wheel (the repository's ``workflows/`` and ``policies/``, mapped there at build time, see
    pyproject.toml); in a checkout or an editable install, the checkout itself."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "shipped", here.parents[1]):
        if _is_project(candidate):
            return candidate
    raise LaporError(
        "this installation of lapor-sla lacks its shipped definitions "
        f"(engine/definitions/shipped/): reinstall it, or give --project or ${PROJECT_ENV}",
        location=Location(str(here / "shipped")),
    )


def locate_project(explicit: Path | str | None = None, start: Path | None = None) -> Project:
    """The project to use (see the module docstring for the order; ``start`` replaces the
    current directory, e.g. a scenario file's folder). An explicit folder, or
    ``$LAPOR_PROJECT``, that is not a project is an error, never a silent fallback."""
    candidates: tuple[tuple[Path | str | None, str, str], ...] = (
        (explicit, "--project", "given with --project"),
        (os.environ.get(PROJECT_ENV) or None, PROJECT_ENV, f"from ${PROJECT_ENV}"),
    )
    for given, name, how in candidates:
        if given is None:
            continue
        root = Path(given).expanduser().resolve()
        if not _is_project(root):
            raise LaporError(
                f"{name}: {root} is not a project folder (it needs workflows/ and policies/)"
            )
        return Project(root, how)
    here = (start or Path.cwd()).resolve()
    try:
        root = find_project_root(here)
    except LaporError:
        return Project(shipped_root(), "the definitions shipped with lapor-sla")
    return Project(root, f"found above {'the current directory' if start is None else here}")
