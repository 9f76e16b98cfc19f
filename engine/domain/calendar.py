"""Working-time arithmetic for SLA deadlines: working days, working hours, calendar days.

Pure and deterministic on purpose: no I/O, no clock, no tz database. The same code then runs in
the API, the CLI and inside Temporal's workflow sandbox (which forbids all three) and gives the
same answer on replay. Indonesia has kept fixed UTC offsets without DST since 1964, so plain
``timezone`` objects are exact, not an approximation of Asia/Jakarta and friends.

A calendar never guesses: a computation that needs a day of a year no calendar file covers raises
``CalendarError`` rather than treating unknown holidays as working days.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from difflib import get_close_matches
from types import MappingProxyType
from typing import Any, Literal, get_args

from engine.domain.errors import CalendarError

__all__ = [
    "CALENDAR_WARNING_DAYS",
    "REGION_NAMES",
    "REGION_ZONES",
    "ZONES",
    "CalendarYear",
    "Duration",
    "DurationUnit",
    "Holiday",
    "HolidayKind",
    "WorkingCalendar",
    "calendar_runs_out",
    "days_of_calendar_left",
    "zone_for_region",
]

ZONES: Mapping[str, tzinfo] = MappingProxyType(
    {
        "WIB": timezone(timedelta(hours=7), "WIB"),
        "WITA": timezone(timedelta(hours=8), "WITA"),
        "WIT": timezone(timedelta(hours=9), "WIT"),
    }
)

# ISO 3166-2:ID provinces (38 since the 2022 Papua split). West and Central Kalimantan are WIB,
# the other three Kalimantan provinces WITA: the zone follows the province, not the island.
# fmt: off
_PROVINCES: tuple[tuple[str, str, str], ...] = (
    # Sumatra
    ("ID-AC", "Aceh", "WIB"), ("ID-SU", "Sumatera Utara", "WIB"),
    ("ID-SB", "Sumatera Barat", "WIB"), ("ID-RI", "Riau", "WIB"),
    ("ID-KR", "Kepulauan Riau", "WIB"), ("ID-JA", "Jambi", "WIB"),
    ("ID-SS", "Sumatera Selatan", "WIB"), ("ID-BB", "Kepulauan Bangka Belitung", "WIB"),
    ("ID-BE", "Bengkulu", "WIB"), ("ID-LA", "Lampung", "WIB"),
    # Java
    ("ID-JK", "Jakarta", "WIB"), ("ID-JB", "Jawa Barat", "WIB"), ("ID-BT", "Banten", "WIB"),
    ("ID-JT", "Jawa Tengah", "WIB"), ("ID-YO", "Daerah Istimewa Yogyakarta", "WIB"),
    ("ID-JI", "Jawa Timur", "WIB"),
    # Kalimantan
    ("ID-KB", "Kalimantan Barat", "WIB"), ("ID-KT", "Kalimantan Tengah", "WIB"),
    ("ID-KS", "Kalimantan Selatan", "WITA"), ("ID-KI", "Kalimantan Timur", "WITA"),
    ("ID-KU", "Kalimantan Utara", "WITA"),
    # Bali and Nusa Tenggara
    ("ID-BA", "Bali", "WITA"), ("ID-NB", "Nusa Tenggara Barat", "WITA"),
    ("ID-NT", "Nusa Tenggara Timur", "WITA"),
    # Sulawesi
    ("ID-SA", "Sulawesi Utara", "WITA"), ("ID-GO", "Gorontalo", "WITA"),
    ("ID-ST", "Sulawesi Tengah", "WITA"), ("ID-SR", "Sulawesi Barat", "WITA"),
    ("ID-SN", "Sulawesi Selatan", "WITA"), ("ID-SG", "Sulawesi Tenggara", "WITA"),
    # Maluku and Papua
    ("ID-MA", "Maluku", "WIT"), ("ID-MU", "Maluku Utara", "WIT"),
    ("ID-PA", "Papua", "WIT"), ("ID-PB", "Papua Barat", "WIT"),
    ("ID-PD", "Papua Barat Daya", "WIT"), ("ID-PE", "Papua Pegunungan", "WIT"),
    ("ID-PS", "Papua Selatan", "WIT"), ("ID-PT", "Papua Tengah", "WIT"),
)
# fmt: on
REGION_ZONES: Mapping[str, str] = MappingProxyType({c: z for c, _, z in _PROVINCES})
REGION_NAMES: Mapping[str, str] = MappingProxyType({c: n for c, n, _ in _PROVINCES})


def zone_for_region(region: str) -> tzinfo:
    """The fixed-offset zone of an ISO 3166-2:ID province code such as ``"ID-JK"``."""
    zone = REGION_ZONES.get(region) if isinstance(region, str) else None
    if zone is not None:
        return ZONES[zone]
    guess = str(region).strip().upper()
    if guess and not guess.startswith("ID-"):
        guess = "ID-" + guess
    close = [guess] if guess in REGION_ZONES else get_close_matches(guess, REGION_ZONES, n=3)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise CalendarError(
        f"unknown region {region!r}: {hint}regions are ISO 3166-2:ID province codes, "
        "e.g. ID-JK (Jakarta, WIB), ID-BA (Bali, WITA), ID-PA (Papua, WIT); "
        f"all {len(REGION_ZONES)}: {', '.join(REGION_ZONES)}"
    )


DurationUnit = Literal[
    "working_days", "working_hours", "working_seconds", "calendar_days", "calendar_seconds"
]
HolidayKind = Literal["libur_nasional", "cuti_bersama"]
_UNITS: tuple[str, ...] = get_args(DurationUnit)
_KINDS: tuple[str, ...] = get_args(HolidayKind)
_SINGULAR: Mapping[str, str] = {
    "working_days": "working day",
    "working_hours": "working hour",
    "working_seconds": "working second",
    "calendar_days": "calendar day",
    "calendar_seconds": "calendar second",
}
_PHRASES: Mapping[str, DurationUnit] = {
    **dict.fromkeys(("working day", "working days", "hari kerja"), "working_days"),
    **dict.fromkeys(("working hour", "working hours", "jam kerja"), "working_hours"),
    **dict.fromkeys(("working second", "working seconds", "detik kerja"), "working_seconds"),
    **dict.fromkeys(
        ("calendar day", "calendar days", "day", "days", "hari", "hari kalender"), "calendar_days"
    ),
    **dict.fromkeys(
        ("calendar second", "calendar seconds", "second", "seconds", "detik"), "calendar_seconds"
    ),
}
# ASCII digits only ("٣" is a digit to int()), and at most 9 so a typo cannot ask for an
# astronomically large int.
_DURATION_RE = re.compile(r"([0-9]{1,9})\s+([^\s0-9].*)", re.ASCII | re.DOTALL)
_ACCEPTED = (
    "'<whole number> <unit>' with unit one of: working day(s) / hari kerja, "
    "working hour(s) / jam kerja, working second(s) / detik kerja, "
    "calendar day(s) / day(s) / hari / hari kalender, calendar second(s) / detik; "
    "e.g. '3 working days', '3 hari kerja', '4 jam kerja', '60 calendar days', '60 hari', "
    "'7200 calendar seconds'"
)


@dataclass(frozen=True, slots=True)
class Duration:
    """An SLA period: a non-negative whole amount of one unit."""

    amount: int
    unit: DurationUnit

    def __post_init__(self) -> None:
        if isinstance(self.amount, bool) or not isinstance(self.amount, int) or self.amount < 0:
            raise CalendarError(f"duration amount must be a whole number >= 0, got {self.amount!r}")
        if self.unit not in _UNITS:
            raise CalendarError(
                f"unknown duration unit {self.unit!r}; use one of {', '.join(_UNITS)}"
            )

    @classmethod
    def parse(cls, text: str) -> Duration:
        match = _DURATION_RE.fullmatch(text.strip()) if isinstance(text, str) else None
        unit = _PHRASES.get(" ".join(match.group(2).lower().split())) if match else None
        if match is None or unit is None:
            raise CalendarError(f"cannot read duration {text!r}: write {_ACCEPTED}")
        return cls(int(match.group(1)), unit)

    def __str__(self) -> str:
        return f"{self.amount} {_SINGULAR[self.unit]}{'' if self.amount == 1 else 's'}"


@dataclass(frozen=True, slots=True)
class Holiday:
    """A day off by decree: libur nasional or cuti bersama (it may fall on a weekend)."""

    day: date
    name: str
    kind: HolidayKind
    source: str

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise CalendarError(f"holiday kind {self.kind!r} must be one of {', '.join(_KINDS)}")


@dataclass(frozen=True, slots=True)
class CalendarYear:
    """One year's holidays as decreed (or, if ``provisional``, as drafted before the decree)."""

    year: int
    holidays: tuple[Holiday, ...]
    provisional: bool
    source: str


_END_OF_DAY = time(23, 59, 59)
_US = 1_000_000


def _time_text(value: time) -> str:
    return value.isoformat(
        timespec="minutes" if not value.second and not value.microsecond else "auto"
    )


class WorkingCalendar:
    """Mon–Fri minus holidays over a set of covered years, with a daily working window.

    Working days are precomputed as a sorted array of ordinals, so "the N-th working day after d"
    is one bisect plus an index. Working time is the same length W every working day, so the k-th
    working day starts at working-time offset k*W and hours arithmetic is plain integer division.
    """

    __slots__ = ("_by_year", "_ordinals", "_window_us", "_work_end", "_work_start")

    _by_year: Mapping[int, CalendarYear]
    _ordinals: tuple[int, ...]
    _window_us: int
    _work_start: time
    _work_end: time

    def __init__(
        self,
        years: Iterable[CalendarYear],
        work_start: time = time(7, 30),
        work_end: time = time(16, 0),
    ) -> None:
        by_year: dict[int, CalendarYear] = {}
        for cy in sorted(years, key=lambda y: y.year):
            if (
                isinstance(cy.year, bool)
                or not isinstance(cy.year, int)
                or not 1 <= cy.year <= 9999
            ):
                raise CalendarError(f"calendar year must be a whole year 1–9999, got {cy.year!r}")
            if cy.year in by_year:
                raise CalendarError(f"year {cy.year} is given twice; give each year once")
            days = [h.day for h in cy.holidays]
            stray = [d.isoformat() for d in days if d.year != cy.year]
            if stray:
                raise CalendarError(f"calendar {cy.year} lists dates of another year: {stray}")
            if len(set(days)) != len(days):
                twice = sorted({d.isoformat() for d in days if days.count(d) > 1})
                raise CalendarError(f"calendar {cy.year} lists {twice} more than once")
            # Sorted holidays make to_data() canonical, so a model hash ignores file order.
            holidays = tuple(sorted(cy.holidays, key=lambda h: h.day))
            by_year[cy.year] = CalendarYear(cy.year, holidays, cy.provisional, cy.source)
        if not by_year:
            raise CalendarError("a working calendar needs at least one year of holidays")
        if work_start.tzinfo is not None or work_end.tzinfo is not None:
            raise CalendarError("work_start and work_end are local wall-clock times without zone")
        if not work_start < work_end:
            raise CalendarError(
                f"work_start {_time_text(work_start)} must be before work_end "
                f"{_time_text(work_end)} (the window may not cross midnight)"
            )
        ordinals: list[int] = []
        for cy in by_year.values():
            off = {h.day.toordinal() for h in cy.holidays}
            first, last = date(cy.year, 1, 1).toordinal(), date(cy.year, 12, 31).toordinal()
            ordinals.extend(
                o
                for o in range(first, last + 1)
                if date.fromordinal(o).weekday() < 5 and o not in off
            )
        window = datetime.combine(date.min, work_end) - datetime.combine(date.min, work_start)
        object.__setattr__(self, "_by_year", MappingProxyType(by_year))
        object.__setattr__(self, "_ordinals", tuple(ordinals))
        object.__setattr__(self, "_window_us", window // timedelta(microseconds=1))
        object.__setattr__(self, "_work_start", work_start)
        object.__setattr__(self, "_work_end", work_end)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("WorkingCalendar is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("WorkingCalendar is immutable")

    def _key(self) -> tuple[object, ...]:
        return (tuple(self._by_year.values()), self._work_start, self._work_end)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, WorkingCalendar):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (
            f"WorkingCalendar(years={self.years}, work_start={_time_text(self._work_start)}, "
            f"work_end={_time_text(self._work_end)})"
        )

    @property
    def years(self) -> tuple[int, ...]:
        return tuple(self._by_year)

    @property
    def provisional_years(self) -> tuple[int, ...]:
        return tuple(y for y, cy in self._by_year.items() if cy.provisional)

    @property
    def calendar_years(self) -> tuple[CalendarYear, ...]:
        return tuple(self._by_year.values())

    @property
    def work_start(self) -> time:
        return self._work_start

    @property
    def work_end(self) -> time:
        return self._work_end

    def is_working_day(self, day: date) -> bool:
        self._require(day)
        i = bisect_left(self._ordinals, day.toordinal())
        return i < len(self._ordinals) and self._ordinals[i] == day.toordinal()

    def due(self, start: datetime, duration: Duration, region: str) -> datetime:
        """The deadline of ``duration`` started at ``start`` by an agency in ``region``.

        Working days end at 23:59:59 local on the N-th working day strictly after the local day of
        ``start``. Working hours/seconds elapse only inside [work_start, work_end) of working
        days. Calendar days end at 23:59:59 local, N days after the local day of ``start``.
        Calendar seconds are elapsed time, holidays or not (a BPMN timer's plain ``PT2H``).
        """
        zone = zone_for_region(region)
        local = _localise(start, zone, "start")
        day = local.date()
        self._require(day)
        n = duration.amount
        if duration.unit == "working_days":
            if n == 0:
                return datetime.combine(day, _END_OF_DAY, zone)
            index = bisect_right(self._ordinals, day.toordinal()) + n - 1
            return datetime.combine(self._working_day(index, day), _END_OF_DAY, zone)
        if duration.unit == "calendar_seconds":
            try:
                due = local + timedelta(seconds=n)
            except OverflowError:
                raise CalendarError(f"{duration} from {day} is past the year 9999") from None
            self._require(day, due.date())
            return due
        if duration.unit == "calendar_days":
            try:
                last = day + timedelta(days=n)
            except OverflowError:
                raise CalendarError(f"{duration} from {day} is past the year 9999") from None
            self._require(day, last)
            return datetime.combine(last, _END_OF_DAY, zone)
        seconds = n * 3600 if duration.unit == "working_hours" else n
        target = self._offset_us(local) + seconds * _US
        # N > 0 rounds so that an end exactly at work_end stays on that day (into == W) instead
        # of becoming work_start of the next working day; N == 0 means "now, or next opening".
        if n == 0:
            index, into = divmod(target, self._window_us)
        else:
            index, into = divmod(target - 1, self._window_us)
            into += 1
        opening = datetime.combine(self._working_day(index, day), self._work_start, zone)
        return opening + timedelta(microseconds=into)

    def remaining(self, at: datetime, due: datetime, unit: DurationUnit, region: str) -> Duration:
        """What is left of a clock paused at ``at`` whose deadline is ``due``.

        ``self.due(resume_at, remaining, region)`` is then the deadline after the pause. As with a
        receipt, the local day of ``resume_at`` does not count as a working day. Never negative.
        """
        if unit not in _UNITS:
            raise CalendarError(f"unknown duration unit {unit!r}; use one of {', '.join(_UNITS)}")
        zone = zone_for_region(region)
        at_local, due_local = _localise(at, zone, "at"), _localise(due, zone, "due")
        out: DurationUnit = (
            "working_seconds" if unit in ("working_hours", "working_seconds") else unit
        )
        if at_local >= due_local:
            return Duration(0, out)
        first, last = at_local.date(), due_local.date()
        self._require(first, last)
        if unit == "working_days":
            n = bisect_right(self._ordinals, last.toordinal()) - bisect_right(
                self._ordinals, first.toordinal()
            )
        elif unit == "calendar_days":
            n = (last - first).days
        elif unit == "calendar_seconds":
            n = -(-(due_local - at_local) // timedelta(seconds=1))
        else:
            # Round up: a pause must never take working time away from the party being timed.
            n = -(-(self._offset_us(due_local) - self._offset_us(at_local)) // _US)
        return Duration(max(n, 0), out)

    def to_data(self) -> dict[str, Any]:
        return {
            "work_start": _time_text(self._work_start),
            "work_end": _time_text(self._work_end),
            "years": [
                {
                    "year": cy.year,
                    "provisional": cy.provisional,
                    "source": cy.source,
                    "holidays": [
                        {
                            "date": h.day.isoformat(),
                            "name": h.name,
                            "kind": h.kind,
                            "source": h.source,
                        }
                        for h in cy.holidays
                    ],
                }
                for cy in self._by_year.values()
            ],
        }

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> WorkingCalendar:
        try:
            years = [
                CalendarYear(
                    year=_typed(y["year"], int, "year"),
                    provisional=_typed(y["provisional"], bool, "provisional"),
                    source=_typed(y["source"], str, "source"),
                    holidays=tuple(
                        Holiday(
                            day=date.fromisoformat(_typed(h["date"], str, "date")),
                            name=_typed(h["name"], str, "name"),
                            kind=_typed(h["kind"], str, "kind"),
                            source=_typed(h["source"], str, "source"),
                        )
                        for h in y["holidays"]
                    ),
                )
                for y in data["years"]
            ]
            start = time.fromisoformat(_typed(data["work_start"], str, "work_start"))
            end = time.fromisoformat(_typed(data["work_end"], str, "work_end"))
        except (KeyError, TypeError, ValueError) as exc:
            raise CalendarError(
                f"malformed calendar data ({type(exc).__name__}: {exc}); expected the output of "
                "WorkingCalendar.to_data(): {work_start, work_end, years: [{year, provisional, "
                "source, holidays: [{date, name, kind, source}]}]}"
            ) from None
        return cls(years, start, end)

    def _require(self, first: date, last: date | None = None) -> None:
        for year in range(first.year, (last or first).year + 1):
            if year not in self._by_year:
                raise self._missing(year)

    def _missing(self, year: int) -> CalendarError:
        covered = ", ".join(str(y) for y in self._by_year)
        return CalendarError(
            f"no calendar for {year} (covered: {covered}); add policies/calendars/id-{year}.yaml, "
            f"e.g. drafted with `lapor calendar seed {year}`"
        )

    def _working_day(self, index: int, after: date) -> date:
        if index >= len(self._ordinals):
            year = after.year
            while year in self._by_year:
                year += 1
            raise self._missing(year)
        day = date.fromordinal(self._ordinals[index])
        self._require(after, day)  # covered years may have gaps the array silently skips
        return day

    def _offset_us(self, local: datetime) -> int:
        """Working time elapsed from the start of the first covered working day to ``local``."""
        ordinal = local.date().toordinal()
        index = bisect_left(self._ordinals, ordinal)
        base = index * self._window_us
        if index == len(self._ordinals) or self._ordinals[index] != ordinal:
            return base
        since = datetime.combine(local.date(), local.time()) - datetime.combine(
            local.date(), self._work_start
        )
        return base + min(max(since // timedelta(microseconds=1), 0), self._window_us)


def _localise(moment: datetime, zone: tzinfo, what: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise CalendarError(
            f"{what} {moment.isoformat()} has no time zone; give an aware datetime such as "
            "2026-03-13T15:00:00+07:00 (or in UTC with +00:00)"
        )
    return moment.astimezone(zone)


def _typed(value: Any, kind: type[Any], what: str) -> Any:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise TypeError(f"{what} must be {kind.__name__}, got {value!r}")
    return value


CALENDAR_WARNING_DAYS = 60
"""How long before its last covered day a calendar is announced as running out: time to review
the next year's SKB (joint decree) and add its file before deadlines need it."""


def days_of_calendar_left(calendar: WorkingCalendar, today: date) -> int:
    """Days from ``today`` to the last day ``calendar`` covers (negative once past it)."""
    return (date(max(calendar.years), 12, 31) - today).days


def calendar_runs_out(
    calendar: WorkingCalendar, today: date, within: int = CALENDAR_WARNING_DAYS
) -> str | None:
    """The warning to give when deadlines counted from ``today`` will soon reach a year the
    calendar does not cover (``None`` while more than ``within`` days are left)."""
    left = days_of_calendar_left(calendar, today)
    if left > within:
        return None
    year = max(calendar.years) + 1
    when = f"in {left} day(s)" if left >= 0 else "already"
    return (
        f"deadlines will reach {year}, which has no calendar ({when}): review the SKB for "
        f"{year} and add policies/calendars/id-{year}.yaml (`lapor calendar seed {year}` drafts it)"
    )
