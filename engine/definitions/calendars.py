"""Reading (and drafting) the yearly holiday files ``policies/calendars/{name}-YYYY.yaml``.

One file per year because the holidays are decreed one year at a time (SKB 3 Menteri) and amended
in place; a file per year keeps each decree's diff and review separate. Validation is strict and
reports every problem of a file at once, each at its ``file:line:col``.

File format::

    calendar: id
    year: 2026
    provisional: false            # true until the year's SKB has been checked date by date
    source: "SKB ... tentang Hari Libur Nasional dan Cuti Bersama Tahun 2026"
    holidays:
      - {date: "2026-01-01", name: "Tahun Baru 2026 Masehi", kind: libur_nasional, source: "..."}

A holiday's ``source`` may be left out; it then defaults to the file's ``source``.
"""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path
from typing import Any

from engine.definitions.yamlio import MarkedDict, MarkedList, load_yaml_file
from engine.domain.calendar import CalendarYear, Holiday, WorkingCalendar
from engine.domain.errors import CalendarError, DefinitionError, DefinitionErrors, Location

__all__ = ["load_calendar_year", "load_calendars", "seed_calendar_year"]

_TOP_KEYS = ("calendar", "year", "provisional", "source", "holidays")
_HOLIDAY_KEYS = ("date", "name", "kind", "source")
_KINDS = ("libur_nasional", "cuti_bersama")
_NAME_RE = re.compile(r"[a-z0-9_]+")
_FILE_RE = re.compile(r"([a-z0-9_]+)-([0-9]{4})\.yaml")
# date.fromisoformat also takes "20260101" and week dates; a calendar file has one spelling.
_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class _Problems:
    def __init__(self) -> None:
        self.errors: list[DefinitionError] = []

    def add(self, message: str, location: Location) -> None:
        self.errors.append(DefinitionError(message, location=location))

    def keys(self, data: MarkedDict, allowed: tuple[str, ...], required: tuple[str, ...]) -> None:
        for key in data:
            if key not in allowed:
                self.add(
                    f"unknown key {key!r}; allowed keys: {', '.join(allowed)}", data.where(key)
                )
        missing = [key for key in required if key not in data]
        if missing:
            self.add(
                f"missing {', '.join(missing)} (required: {', '.join(required)})", data.where()
            )

    def get(self, data: MarkedDict, key: str, kind: type[Any], what: str) -> Any:
        """The value if present and of the right type, else None (problem recorded)."""
        if key not in data:
            return None
        value = data[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            self.add(f"{key} must be {what}, got {value!r}", data.where(key))
            return None
        if kind is str and not value.strip():
            self.add(f"{key} must not be empty", data.where(key))
            return None
        return value

    def raise_if_any(self) -> None:
        if len(self.errors) == 1:
            raise self.errors[0]
        if self.errors:
            raise DefinitionErrors(self.errors)


def load_calendar_year(path: str | Path) -> CalendarYear:
    """Read one ``{name}-YYYY.yaml`` file.

    Raises ``DefinitionError`` for one problem, ``DefinitionErrors`` for several.
    """
    data = load_yaml_file(path)
    if not isinstance(data, MarkedDict):
        raise DefinitionError(
            f"a calendar file is a mapping with keys {', '.join(_TOP_KEYS)}",
            location=getattr(data, "location", Location(str(path))),
        )
    problems = _Problems()
    problems.keys(data, _TOP_KEYS, _TOP_KEYS)
    name = problems.get(data, "calendar", str, "a calendar name such as id")
    year = problems.get(data, "year", int, "a whole year such as 2026")
    provisional = problems.get(data, "provisional", bool, "true or false")
    source = problems.get(data, "source", str, "text naming the decree (SKB) or draft source")
    entries = problems.get(data, "holidays", list, "a list of {date, name, kind, source}")
    if year is not None and not 1900 <= year <= 2999:
        problems.add(f"year {year} is not a plausible calendar year", data.where("year"))
        year = None
    named = _FILE_RE.fullmatch(Path(path).name)
    if named and name is not None and name != named.group(1):
        problems.add(
            f"calendar {name!r} does not match the file name {named.group(0)}",
            data.where("calendar"),
        )
    if named and year is not None and year != int(named.group(2)):
        problems.add(
            f"year {year} does not match the file name {named.group(0)}", data.where("year")
        )

    holidays: list[Holiday] = []
    first_seen: dict[date, Location] = {}
    for index, entry in enumerate(entries if isinstance(entries, MarkedList) else []):
        where = entries.where(index)
        if not isinstance(entry, MarkedDict):
            problems.add(f"a holiday is a mapping with keys {', '.join(_HOLIDAY_KEYS)}", where)
            continue
        problems.keys(entry, _HOLIDAY_KEYS, ("date", "name", "kind"))
        text = problems.get(entry, "date", str, 'a quoted date such as "2026-03-19"')
        label = problems.get(entry, "name", str, "text")
        kind = problems.get(entry, "kind", str, f"one of {', '.join(_KINDS)}")
        cite = problems.get(entry, "source", str, "text") if "source" in entry else source
        if kind is not None and kind not in _KINDS:
            problems.add(f"kind {kind!r} is not one of {', '.join(_KINDS)}", entry.where("kind"))
            kind = None
        day = _parse_date(text, entry.where("date"), problems) if text is not None else None
        if day is not None and year is not None and day.year != year:
            problems.add(f"date {day} is not in {year}, the year of this file", entry.where("date"))
            day = None
        if day is not None and day in first_seen:
            first = first_seen[day]
            problems.add(
                f"date {day} is listed twice (first at line {first.line})", entry.where("date")
            )
            day = None
        if day is not None:
            first_seen[day] = entry.where("date")
        if day is not None and label is not None and kind is not None and cite is not None:
            holidays.append(Holiday(day, label, kind, cite))
    problems.raise_if_any()
    return CalendarYear(year, tuple(sorted(holidays, key=lambda h: h.day)), provisional, source)


def _parse_date(text: str, where: Location, problems: _Problems) -> date | None:
    if _DATE_RE.fullmatch(text):
        try:
            return date.fromisoformat(text)
        except ValueError:
            problems.add(f"date {text!r} does not exist in the calendar", where)
            return None
    problems.add(f'date {text!r} must be written YYYY-MM-DD, e.g. "2026-03-19"', where)
    return None


def load_calendars(directory: Path, name: str = "id") -> WorkingCalendar:
    """Read every ``{name}-YYYY.yaml`` in ``directory`` into one calendar."""
    if not _NAME_RE.fullmatch(name):
        raise DefinitionError(f"calendar name {name!r} must be lower-case letters, digits or _")
    where = Location(str(directory))
    if not directory.is_dir():
        raise DefinitionError("calendar directory does not exist", location=where)
    errors: list[DefinitionError] = []
    years: list[CalendarYear] = []
    for path in sorted(directory.iterdir()):
        if not path.name.startswith(f"{name}-") or path.suffix not in (".yaml", ".yml"):
            continue
        named = _FILE_RE.fullmatch(path.name)
        if named is None or named.group(1) != name:
            errors.append(
                DefinitionError(
                    f"calendar files are named {name}-YYYY.yaml (e.g. {name}-2026.yaml); "
                    "rename this file or move it out of the directory",
                    location=Location(str(path)),
                )
            )
            continue
        try:
            years.append(load_calendar_year(path))
        except DefinitionErrors as exc:
            errors.extend(exc.errors)
        except DefinitionError as exc:
            errors.append(exc)
    if not years and not errors:
        raise DefinitionError(
            f"no calendar files {name}-YYYY.yaml in this directory", location=where
        )
    if errors:
        raise errors[0] if len(errors) == 1 else DefinitionErrors(errors)
    try:
        return WorkingCalendar(years)
    except CalendarError as exc:
        raise DefinitionError(exc.message, location=where) from None


def seed_calendar_year(year: int) -> str:
    """Draft ``id-{year}.yaml`` from the ``holidays`` package, marked provisional.

    A draft only: the package estimates Islamic dates the government has not fixed yet and can
    lag behind an amended SKB, so a person checks it against the decree before it is trusted.
    """
    import holidays  # lazily: only drafting needs it, never the engine or a workflow sandbox
    from holidays.countries.indonesia import Indonesia
    from holidays.version import __version__ as version

    first, last = int(Indonesia.start_year), int(Indonesia.end_year)
    if isinstance(year, bool) or not isinstance(year, int) or not first <= year <= last:
        raise CalendarError(
            f"cannot seed year {year!r}: the holidays package knows Indonesia for {first}–{last}"
        )
    categories = ("public", "government")
    both = holidays.country_holidays("ID", years=year, categories=categories, language="id")
    public = holidays.country_holidays("ID", years=year, categories=("public",))
    cite = f"holidays {version} (draft)"
    lines = [
        f"# DRAFT hari libur nasional dan cuti bersama {year}, generated by",
        f"# `lapor calendar seed {year}` from the Python holidays package {version}",
        "# (categories public = libur nasional, government = cuti bersama). This is NOT the SKB",
        f"# 3 Menteri: check every date against the SKB for {year} (dates marked 'perkiraan' are",
        "# estimates), then set provisional: false and name the SKB in source.",
        "calendar: id",
        f"year: {year}",
        "provisional: true",
        f"source: {_quote(f'holidays {version} Python package, ID public + government; draft')}",
        "holidays:" if both else "holidays: []",
    ]
    for day, label in sorted(both.items()):
        kind = "libur_nasional" if day in public else "cuti_bersama"
        lines.append(
            f"  - {{date: {_quote(day.isoformat())}, name: {_quote(label)}, "
            f"kind: {kind}, source: {_quote(cite)}}}"
        )
    return "\n".join(lines) + "\n"


def _quote(text: str) -> str:
    # A JSON string is a valid YAML double-quoted scalar, escapes included.
    return json.dumps(str(text), ensure_ascii=False)
