"""One exception base for everything a user can get wrong.

Each error carries structured fields (where, what, the valid alternatives) so the CLI can print
``file:line:col: message`` and the API can return it as JSON, and no user ever sees a traceback for
a mistake in their own input.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "CalendarError",
    "DefinitionError",
    "DefinitionErrors",
    "LaporError",
    "Location",
    "ScenarioError",
]


@dataclass(frozen=True, slots=True)
class Location:
    """A place in a source file; line and column are 1-based, 0 when unknown."""

    file: str
    line: int = 0
    column: int = 0

    def __str__(self) -> str:
        if self.line:
            return f"{self.file}:{self.line}:{self.column or 1}"
        return self.file


class LaporError(Exception):
    """Base of every error the engine raises for bad input or an impossible request."""

    def __init__(self, message: str, *, location: Location | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.location = location

    def __str__(self) -> str:
        if self.location is not None:
            return f"{self.location}: {self.message}"
        return self.message


class DefinitionError(LaporError):
    """A workflow, policy, calendar or scenario file that is malformed or inconsistent."""


class DefinitionErrors(LaporError):
    """Several definition problems found in one pass, reported together (one line each)."""

    def __init__(self, errors: list[DefinitionError]) -> None:
        super().__init__("\n".join(str(e) for e in errors))
        self.errors = errors


class CalendarError(LaporError):
    """A date outside the calendars we ship, an unknown region, or a malformed duration."""


class ScenarioError(LaporError):
    """A scenario file that cannot be run (not a failed expectation: that is a test result)."""
