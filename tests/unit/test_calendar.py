"""Working-time arithmetic against the real 2025–2027 Indonesian calendars we ship."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.definitions.calendars import load_calendars
from engine.domain.calendar import (
    REGION_NAMES,
    REGION_ZONES,
    ZONES,
    CalendarYear,
    Duration,
    Holiday,
    WorkingCalendar,
    zone_for_region,
)
from engine.domain.errors import CalendarError

CALENDARS = Path(__file__).resolve().parents[2] / "policies" / "calendars"
WIB = timezone(timedelta(hours=7))
WITA = timezone(timedelta(hours=8))
WIT = timezone(timedelta(hours=9))


@pytest.fixture(scope="module")
def cal() -> WorkingCalendar:
    return load_calendars(CALENDARS)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def days(n: int) -> Duration:
    return Duration(n, "working_days")


def hours(n: int) -> Duration:
    return Duration(n, "working_hours")


def plain_calendar(*years: int, holidays: tuple[str, ...] = ()) -> WorkingCalendar:
    """Mon–Fri only (plus the given holidays): makes the arithmetic easy to follow by hand."""
    by_year = {
        y: tuple(
            Holiday(date.fromisoformat(d), "test", "libur_nasional", "test")
            for d in holidays
            if d.startswith(str(y))
        )
        for y in years
    }
    return WorkingCalendar(CalendarYear(y, hs, False, "test") for y, hs in by_year.items())


# --- working days on the real calendars -------------------------------------------------------


def test_five_working_days_skip_idul_fitri_2025_cuti_bersama(cal: WorkingCalendar) -> None:
    # DOMAIN.md worked example: 28 Mar – 7 Apr 2025 are all non-working days.
    due = cal.due(at("2025-03-27T10:00:00+07:00"), days(5), "ID-JK")
    assert due.isoformat() == "2025-04-14T23:59:59+07:00"


def test_three_working_days_skip_the_2026_nyepi_and_idul_fitri_block(cal: WorkingCalendar) -> None:
    # 18 cuti, 19 Nyepi, 20 cuti, 21–22 Idul Fitri (weekend), 23–24 cuti.
    due = cal.due(at("2026-03-13T15:00:00+07:00"), days(3), "ID-JK")
    assert due.isoformat() == "2026-03-25T23:59:59+07:00"
    assert [cal.is_working_day(date(2026, 3, d)) for d in range(16, 26)] == [
        True,
        True,
        False,
        False,
        False,
        False,
        False,
        False,
        False,
        True,
    ]


def test_christmas_2026_cuti_bersama_and_natal_push_to_monday(cal: WorkingCalendar) -> None:
    assert not cal.is_working_day(date(2026, 12, 24))
    assert not cal.is_working_day(date(2026, 12, 25))
    due = cal.due(at("2026-12-23T09:00:00+07:00"), days(1), "ID-JK")
    assert due.isoformat() == "2026-12-28T23:59:59+07:00"


def test_waisak_on_sunday_then_pancasila_monday_2026(cal: WorkingCalendar) -> None:
    # 30 May Sat, 31 May Waisak (Sun), 1 Jun Hari Lahir Pancasila (Mon).
    due = cal.due(at("2026-05-29T11:00:00+07:00"), days(1), "ID-JK")
    assert due.date() == date(2026, 6, 2)


def test_kenaikan_and_its_cuti_bersama_2026_make_a_four_day_weekend(cal: WorkingCalendar) -> None:
    due = cal.due(at("2026-05-13T11:00:00+08:00"), days(1), "ID-BA")
    assert due.isoformat() == "2026-05-18T23:59:59+08:00"


def test_receipt_on_saturday_counts_from_monday(cal: WorkingCalendar) -> None:
    saturday = cal.due(at("2026-01-10T09:00:00+07:00"), days(1), "ID-JK")
    friday = cal.due(at("2026-01-09T09:00:00+07:00"), days(1), "ID-JK")
    assert saturday.date() == friday.date() == date(2026, 1, 12)


def test_receipt_on_a_holiday_counts_from_the_next_working_day(cal: WorkingCalendar) -> None:
    on_nyepi = cal.due(at("2026-03-19T10:00:00+07:00"), days(1), "ID-JK")
    assert on_nyepi.date() == date(2026, 3, 25)


def test_receipt_at_2330_local_belongs_to_that_local_day(cal: WorkingCalendar) -> None:
    due = cal.due(at("2026-01-05T23:30:00+07:00"), days(1), "ID-JK")
    assert due.isoformat() == "2026-01-06T23:59:59+07:00"


def test_zero_working_days_ends_the_local_day_of_receipt(cal: WorkingCalendar) -> None:
    due = cal.due(at("2026-01-10T09:00:00+07:00"), days(0), "ID-JK")
    assert due.isoformat() == "2026-01-10T23:59:59+07:00"


def test_same_utc_instant_falls_on_different_local_days_in_wib_and_wit(
    cal: WorkingCalendar,
) -> None:
    instant = at("2026-01-05T16:00:00+00:00")  # Mon 23:00 WIB, Tue 01:00 WIT
    jakarta = cal.due(instant, days(1), "ID-JK")
    jayapura = cal.due(instant, days(1), "ID-PA")
    assert jakarta.isoformat() == "2026-01-06T23:59:59+07:00"
    assert jayapura.isoformat() == "2026-01-07T23:59:59+09:00"


def test_due_is_expressed_in_the_region_zone_whatever_the_start_zone(
    cal: WorkingCalendar,
) -> None:
    due = cal.due(at("2026-01-05T02:00:00+00:00"), days(2), "ID-SN")
    assert due.utcoffset() == timedelta(hours=8)
    assert due.tzname() == "WITA"


def test_five_working_days_cross_the_2025_2026_year_boundary(cal: WorkingCalendar) -> None:
    # 25 Dec Natal, 26 Dec cuti; 29, 30, 31 Dec; 1 Jan Tahun Baru; 2 Jan; 5 Jan.
    due = cal.due(at("2025-12-24T10:00:00+07:00"), days(5), "ID-JK")
    assert due.isoformat() == "2026-01-05T23:59:59+07:00"


# --- working hours ----------------------------------------------------------------------------


def test_working_hours_carry_over_the_weekend(cal: WorkingCalendar) -> None:
    # Friday 14:00–16:00 gives 2 h; the other 2 h run Monday 07:30–09:30.
    due = cal.due(at("2026-01-09T14:00:00+07:00"), hours(4), "ID-JK")
    assert due.isoformat() == "2026-01-12T09:30:00+07:00"


def test_working_hours_ending_exactly_at_work_end_stay_on_that_day(cal: WorkingCalendar) -> None:
    due = cal.due(at("2026-01-12T08:00:00+07:00"), hours(8), "ID-JK")
    assert due.isoformat() == "2026-01-12T16:00:00+07:00"
    whole_day = cal.due(
        at("2026-01-12T07:30:00+07:00"), Duration(30600, "working_seconds"), "ID-JK"
    )
    assert whole_day.isoformat() == "2026-01-12T16:00:00+07:00"


def test_working_hours_one_second_past_the_window_move_to_next_morning(
    cal: WorkingCalendar,
) -> None:
    due = cal.due(at("2026-01-12T07:30:00+07:00"), Duration(30601, "working_seconds"), "ID-JK")
    assert due.isoformat() == "2026-01-13T07:30:01+07:00"


def test_working_hours_before_opening_start_counting_at_0730(cal: WorkingCalendar) -> None:
    due = cal.due(at("2026-01-12T06:00:00+07:00"), hours(1), "ID-JK")
    assert due.isoformat() == "2026-01-12T08:30:00+07:00"


@pytest.mark.parametrize("clock", ["16:00:00", "17:00:00", "23:59:59"])
def test_working_hours_at_or_after_closing_start_next_morning(
    cal: WorkingCalendar, clock: str
) -> None:
    due = cal.due(at(f"2026-01-12T{clock}+07:00"), hours(1), "ID-JK")
    assert due.isoformat() == "2026-01-13T08:30:00+07:00"


def test_working_hours_skip_christmas_2026(cal: WorkingCalendar) -> None:
    due = cal.due(at("2026-12-23T15:00:00+07:00"), hours(2), "ID-JK")
    assert due.isoformat() == "2026-12-28T08:30:00+07:00"


def test_working_hours_cross_new_year_2026(cal: WorkingCalendar) -> None:
    due = cal.due(at("2025-12-31T15:00:00+07:00"), hours(2), "ID-JK")
    assert due.isoformat() == "2026-01-02T08:30:00+07:00"


def test_zero_working_hours_is_now_inside_the_window_else_the_next_opening(
    cal: WorkingCalendar,
) -> None:
    inside = at("2026-01-12T10:15:00+07:00")
    assert cal.due(inside, hours(0), "ID-JK") == inside
    saturday = cal.due(at("2026-01-10T10:15:00+07:00"), hours(0), "ID-JK")
    assert saturday.isoformat() == "2026-01-12T07:30:00+07:00"


def test_working_hours_use_the_local_window_of_the_region(cal: WorkingCalendar) -> None:
    # 07:00 WIB is 09:00 WIT: inside Jayapura's window, before Jakarta's.
    start = at("2026-01-12T00:00:00+00:00")
    assert cal.due(start, hours(1), "ID-PA").isoformat() == "2026-01-12T10:00:00+09:00"
    assert cal.due(start, hours(1), "ID-JK").isoformat() == "2026-01-12T08:30:00+07:00"


def test_custom_working_window_is_honoured() -> None:
    cal = WorkingCalendar([CalendarYear(2026, (), False, "t")], time(8, 0), time(12, 0))
    due = cal.due(at("2026-01-12T11:00:00+07:00"), hours(2), "ID-JK")
    assert due.isoformat() == "2026-01-13T09:00:00+07:00"


# --- calendar days ----------------------------------------------------------------------------


def test_calendar_days_ignore_weekends_and_holidays(cal: WorkingCalendar) -> None:
    due = cal.due(at("2026-03-13T15:00:00+07:00"), Duration(14, "calendar_days"), "ID-JK")
    assert due.isoformat() == "2026-03-27T23:59:59+07:00"


def test_sixty_calendar_days_cross_the_year_boundary(cal: WorkingCalendar) -> None:
    due = cal.due(at("2025-12-01T10:00:00+09:00"), Duration.parse("60 hari"), "ID-MA")
    assert due.isoformat() == "2026-01-30T23:59:59+09:00"


# --- errors -----------------------------------------------------------------------------------


def test_due_past_the_last_covered_year_names_the_missing_file(cal: WorkingCalendar) -> None:
    with pytest.raises(CalendarError) as err:
        cal.due(at("2027-12-30T10:00:00+07:00"), days(5), "ID-JK")
    message = str(err.value)
    assert "no calendar for 2028" in message
    assert "covered: 2025, 2026, 2027" in message
    assert "policies/calendars/id-2028.yaml" in message
    assert "lapor calendar seed 2028" in message


def test_calendar_days_past_the_last_covered_year_are_refused(cal: WorkingCalendar) -> None:
    with pytest.raises(CalendarError, match="no calendar for 2028"):
        cal.due(at("2027-12-01T10:00:00+07:00"), Duration(60, "calendar_days"), "ID-JK")


def test_working_hours_past_the_last_covered_year_are_refused(cal: WorkingCalendar) -> None:
    with pytest.raises(CalendarError, match="no calendar for 2028"):
        cal.due(at("2027-12-31T15:00:00+07:00"), hours(2), "ID-JK")


def test_start_before_the_first_covered_year_is_refused(cal: WorkingCalendar) -> None:
    with pytest.raises(CalendarError, match="no calendar for 2024"):
        cal.due(at("2024-12-31T10:00:00+07:00"), days(1), "ID-JK")
    with pytest.raises(CalendarError, match="no calendar for 2024"):
        cal.is_working_day(date(2024, 6, 3))


def test_a_gap_between_covered_years_is_never_skipped_silently() -> None:
    cal = plain_calendar(2025, 2027)
    assert cal.years == (2025, 2027)
    with pytest.raises(CalendarError, match="no calendar for 2026"):
        cal.due(at("2025-12-30T10:00:00+07:00"), days(5), "ID-JK")
    with pytest.raises(CalendarError, match="no calendar for 2026"):
        cal.remaining(
            at("2025-12-30T10:00:00+07:00"),
            at("2027-01-05T23:59:59+07:00"),
            "working_days",
            "ID-JK",
        )


def test_unknown_region_lists_valid_codes(cal: WorkingCalendar) -> None:
    with pytest.raises(CalendarError) as err:
        cal.due(at("2026-01-05T10:00:00+07:00"), days(1), "ID-XX")
    assert "ID-JK" in str(err.value) and "ID-BA" in str(err.value) and "ID-PA" in str(err.value)


@pytest.mark.parametrize("typo", ["JK", "id-jk", " ID-JK "])
def test_region_typo_suggests_the_intended_code(typo: str) -> None:
    with pytest.raises(CalendarError, match="did you mean ID-JK"):
        zone_for_region(typo)


def test_naive_start_is_refused(cal: WorkingCalendar) -> None:
    with pytest.raises(CalendarError, match="no time zone"):
        cal.due(datetime(2026, 1, 5, 10, 0), days(1), "ID-JK")


def test_calendar_rejects_inverted_window_duplicate_years_and_stray_dates() -> None:
    year = CalendarYear(2026, (), False, "t")
    with pytest.raises(CalendarError, match="before work_end"):
        WorkingCalendar([year], time(16, 0), time(7, 30))
    with pytest.raises(CalendarError, match="twice"):
        WorkingCalendar([year, year])
    stray = Holiday(date(2025, 12, 25), "x", "libur_nasional", "t")
    with pytest.raises(CalendarError, match="another year"):
        WorkingCalendar([CalendarYear(2026, (stray,), False, "t")])
    with pytest.raises(CalendarError, match="at least one year"):
        WorkingCalendar([])
    with pytest.raises(CalendarError, match="whole year"):
        WorkingCalendar([CalendarYear(0, (), False, "t")])


def test_calendar_is_immutable(cal: WorkingCalendar) -> None:
    with pytest.raises(AttributeError):
        cal._ordinals = ()


# --- regions ----------------------------------------------------------------------------------


def test_all_38_provinces_have_a_zone_and_a_name() -> None:
    assert len(REGION_ZONES) == 38
    assert set(REGION_ZONES) == set(REGION_NAMES)
    assert set(REGION_ZONES.values()) == {"WIB", "WITA", "WIT"}
    for code in ("ID-PA", "ID-PB", "ID-PD", "ID-PE", "ID-PS", "ID-PT", "ID-MA", "ID-MU"):
        assert REGION_ZONES[code] == "WIT"
    assert REGION_ZONES["ID-KB"] == REGION_ZONES["ID-KT"] == "WIB"
    assert REGION_ZONES["ID-KS"] == REGION_ZONES["ID-KI"] == REGION_ZONES["ID-KU"] == "WITA"
    assert REGION_ZONES["ID-BA"] == "WITA"
    assert zone_for_region("ID-JK").utcoffset(None) == timedelta(hours=7)
    assert ZONES["WIT"].utcoffset(None) == timedelta(hours=9)


# --- Duration ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3 working days", Duration(3, "working_days")),
        ("1 working day", Duration(1, "working_days")),
        ("3 hari kerja", Duration(3, "working_days")),
        ("0 working days", Duration(0, "working_days")),
        ("  5   Working   Days ", Duration(5, "working_days")),
        ("3 working hours", Duration(3, "working_hours")),
        ("1 working hour", Duration(1, "working_hours")),
        ("3 jam kerja", Duration(3, "working_hours")),
        ("3 JAM KERJA", Duration(3, "working_hours")),
        ("90 working seconds", Duration(90, "working_seconds")),
        ("90 detik kerja", Duration(90, "working_seconds")),
        ("60 calendar days", Duration(60, "calendar_days")),
        ("1 calendar day", Duration(1, "calendar_days")),
        ("60 days", Duration(60, "calendar_days")),
        ("1 day", Duration(1, "calendar_days")),
        ("60 hari", Duration(60, "calendar_days")),
        ("60 hari kalender", Duration(60, "calendar_days")),
    ],
)
def test_duration_parse_accepts_english_and_indonesian_forms(text: str, expected: Duration) -> None:
    assert Duration.parse(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "3",
        "working days",
        "three working days",
        "-1 working days",
        "+1 working days",
        "1.5 working days",
        "3 weeks",
        "3 working",
        "3 jam",
        "3working days",
        "working days 3",
        "٣ hari kerja",
        "1234567890 days",
        "3 working days extra",
    ],
)
def test_duration_parse_rejects_other_forms_and_names_the_accepted_ones(text: str) -> None:
    with pytest.raises(CalendarError, match="hari kerja") as err:
        Duration.parse(text)
    assert repr(text) in str(err.value)


@pytest.mark.parametrize(
    ("duration", "text"),
    [
        (Duration(3, "working_days"), "3 working days"),
        (Duration(1, "working_days"), "1 working day"),
        (Duration(0, "working_days"), "0 working days"),
        (Duration(5, "working_hours"), "5 working hours"),
        (Duration(90, "working_seconds"), "90 working seconds"),
        (Duration(60, "calendar_days"), "60 calendar days"),
    ],
)
def test_duration_str_is_canonical_english(duration: Duration, text: str) -> None:
    assert str(duration) == text


@pytest.mark.parametrize("amount", [-1, True, 1.0, "3"])
def test_duration_refuses_bad_amounts(amount: object) -> None:
    with pytest.raises(CalendarError, match="whole number"):
        Duration(amount, "working_days")  # type: ignore[arg-type]


def test_duration_refuses_unknown_units() -> None:
    with pytest.raises(CalendarError, match="working_days"):
        Duration(1, "weeks")  # type: ignore[arg-type]


@given(
    st.integers(0, 10**9 - 1),
    st.sampled_from(["working_days", "working_hours", "working_seconds", "calendar_days"]),
)
def test_duration_text_round_trips(amount: int, unit: str) -> None:
    duration = Duration(amount, unit)  # type: ignore[arg-type]
    assert Duration.parse(str(duration)) == duration


# --- serialisation ----------------------------------------------------------------------------


def test_to_data_from_data_round_trip_is_plain_json(cal: WorkingCalendar) -> None:
    data = cal.to_data()
    restored = WorkingCalendar.from_data(json.loads(json.dumps(data)))
    assert restored == cal
    assert hash(restored) == hash(cal)
    assert restored.to_data() == data
    assert data["work_start"] == "07:30" and data["work_end"] == "16:00"
    assert data["years"][1]["holidays"][0] == {
        "date": "2026-01-01",
        "name": "Tahun Baru 2026 Masehi",
        "kind": "libur_nasional",
        "source": "SKB 3 Menteri 2026",
    }
    assert restored.provisional_years == (2027,)
    start = at("2026-03-13T15:00:00+07:00")
    assert restored.due(start, days(3), "ID-JK") == cal.due(start, days(3), "ID-JK")


def test_to_data_is_canonical_whatever_the_holiday_order() -> None:
    a = Holiday(date(2026, 1, 1), "a", "libur_nasional", "t")
    b = Holiday(date(2026, 2, 17), "b", "libur_nasional", "t")
    one = WorkingCalendar([CalendarYear(2026, (a, b), False, "t")])
    two = WorkingCalendar([CalendarYear(2026, (b, a), False, "t")])
    assert one.to_data() == two.to_data() and one == two


def test_round_trip_keeps_a_custom_window_with_seconds() -> None:
    cal = WorkingCalendar([CalendarYear(2026, (), True, "t")], time(8, 0), time(16, 30, 15))
    data = cal.to_data()
    assert (data["work_start"], data["work_end"]) == ("08:00", "16:30:15")
    assert WorkingCalendar.from_data(data) == cal


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"work_start": "07:30", "work_end": "16:00"},
        {"work_start": "7.30", "work_end": "16:00", "years": []},
        {"work_start": "07:30", "work_end": "16:00", "years": [{"year": "2026"}]},
        {
            "work_start": "07:30",
            "work_end": "16:00",
            "years": [
                {
                    "year": 2026,
                    "provisional": False,
                    "source": "s",
                    "holidays": [{"date": "2026-13-01", "name": "n", "kind": "x", "source": "s"}],
                }
            ],
        },
    ],
)
def test_from_data_refuses_malformed_data(data: dict[str, object]) -> None:
    with pytest.raises(CalendarError, match="malformed calendar data"):
        WorkingCalendar.from_data(data)


# --- remaining --------------------------------------------------------------------------------


def test_remaining_working_days_counts_days_after_the_pause_up_to_the_due_day(
    cal: WorkingCalendar,
) -> None:
    due = cal.due(at("2026-03-13T15:00:00+07:00"), days(3), "ID-JK")  # 25 Mar
    left = cal.remaining(at("2026-03-16T10:00:00+07:00"), due, "working_days", "ID-JK")
    assert left == Duration(2, "working_days")  # 17 and 25 March
    resumed = cal.due(at("2026-03-30T09:00:00+07:00"), left, "ID-JK")
    assert resumed.isoformat() == "2026-04-01T23:59:59+07:00"


def test_remaining_is_zero_on_or_after_the_due_day(cal: WorkingCalendar) -> None:
    due = at("2026-03-25T23:59:59+07:00")
    for moment in ("2026-03-25T08:00:00+07:00", "2026-03-26T08:00:00+07:00"):
        assert cal.remaining(at(moment), due, "working_days", "ID-JK") == days(0)
    late = at("2026-04-01T08:00:00+07:00")
    assert cal.remaining(late, due, "working_hours", "ID-JK") == Duration(0, "working_seconds")
    assert cal.remaining(late, due, "calendar_days", "ID-JK") == Duration(0, "calendar_days")


def test_remaining_working_hours_is_working_seconds_across_the_weekend(
    cal: WorkingCalendar,
) -> None:
    due = cal.due(at("2026-01-09T14:00:00+07:00"), hours(4), "ID-JK")  # Mon 09:30
    left = cal.remaining(at("2026-01-09T15:00:00+07:00"), due, "working_hours", "ID-JK")
    assert left == Duration(3 * 3600, "working_seconds")
    resumed = cal.due(at("2026-01-12T10:00:00+07:00"), left, "ID-JK")
    assert resumed.isoformat() == "2026-01-12T13:00:00+07:00"


def test_remaining_working_seconds_rounds_sub_second_remainders_up(cal: WorkingCalendar) -> None:
    due = at("2026-01-12T10:00:00+07:00")
    paused = at("2026-01-12T09:59:58.250000+07:00")
    assert cal.remaining(paused, due, "working_seconds", "ID-JK") == Duration(2, "working_seconds")


def test_remaining_calendar_days_counts_whole_local_days(cal: WorkingCalendar) -> None:
    due = at("2026-03-06T23:59:59+07:00")
    left = cal.remaining(at("2026-01-10T08:00:00+07:00"), due, "calendar_days", "ID-JK")
    assert left == Duration(55, "calendar_days")


def test_remaining_refuses_naive_datetimes_and_unknown_units(cal: WorkingCalendar) -> None:
    due = at("2026-03-06T23:59:59+07:00")
    with pytest.raises(CalendarError, match="no time zone"):
        cal.remaining(datetime(2026, 1, 10), due, "working_days", "ID-JK")
    with pytest.raises(CalendarError, match="unknown duration unit"):
        cal.remaining(due, due, "weeks", "ID-JK")  # type: ignore[arg-type]


# --- properties -------------------------------------------------------------------------------

REGIONS = st.sampled_from(["ID-JK", "ID-BA", "ID-PA"])
STARTS = st.datetimes(
    min_value=datetime(2025, 1, 1), max_value=datetime(2026, 9, 30), timezones=st.just(UTC)
).map(lambda d: d.replace(microsecond=0))


@settings(max_examples=200)
@given(STARTS, st.integers(0, 40), REGIONS)
def test_due_in_working_days_is_strictly_monotonic_and_lands_on_working_days(
    cal: WorkingCalendar, start: datetime, n: int, region: str
) -> None:
    this, following = cal.due(start, days(n), region), cal.due(start, days(n + 1), region)
    assert this < following
    assert following.time() == time(23, 59, 59)
    assert cal.is_working_day(following.date())
    assert following.utcoffset() == zone_for_region(region).utcoffset(None)


@settings(max_examples=200)
@given(STARTS, st.integers(0, 200), REGIONS)
def test_due_in_working_hours_is_monotonic_and_inside_the_window(
    cal: WorkingCalendar, start: datetime, n: int, region: str
) -> None:
    this, following = cal.due(start, hours(n), region), cal.due(start, hours(n + 1), region)
    assert this < following
    assert cal.is_working_day(following.date())
    assert time(7, 30) < following.time() <= time(16, 0)


@settings(max_examples=200)
@given(STARTS, st.integers(1, 30), st.floats(0, 1), REGIONS)
def test_working_days_resume_on_a_working_day_before_due_keeps_the_deadline(
    cal: WorkingCalendar, start: datetime, n: int, fraction: float, region: str
) -> None:
    due = cal.due(start, days(n), region)
    zone = zone_for_region(region)
    first = start.astimezone(zone).date() + timedelta(days=1)
    candidates = [
        first + timedelta(days=i)
        for i in range((due.date() - first).days + 1)
        if cal.is_working_day(first + timedelta(days=i))
    ]
    pause_day = candidates[min(int(fraction * len(candidates)), len(candidates) - 1)]
    paused = datetime.combine(pause_day, time(10, 0), zone)
    left = cal.remaining(paused, due, "working_days", region)
    assert cal.due(paused, left, region) == due


@settings(max_examples=200)
@given(STARTS, st.integers(1, 120), st.floats(0, 1), REGIONS)
def test_working_hours_pause_and_immediate_resume_keeps_the_deadline(
    cal: WorkingCalendar, start: datetime, n: int, fraction: float, region: str
) -> None:
    due = cal.due(start, hours(n), region)
    paused = start + (due - start) * fraction
    paused = paused.replace(microsecond=0)
    if paused >= due:
        return
    left = cal.remaining(paused, due, "working_hours", region)
    assert cal.due(paused, left, region) == due


@settings(max_examples=200)
@given(STARTS, st.integers(1, 500_000), REGIONS)
def test_remaining_at_the_start_gives_back_the_whole_duration(
    cal: WorkingCalendar, start: datetime, seconds: int, region: str
) -> None:
    due = cal.due(start, Duration(seconds, "working_seconds"), region)
    left = cal.remaining(start, due, "working_seconds", region)
    assert left == Duration(seconds, "working_seconds")


def naive_due(cal: WorkingCalendar, start: datetime, duration: Duration, region: str) -> datetime:
    """Day-by-day reference implementation of the counting rules, to check the bisect one."""
    zone = zone_for_region(region)
    local = start.astimezone(zone)
    if duration.unit == "working_days":
        day, counted = local.date(), 0
        while counted < duration.amount:
            day += timedelta(days=1)
            counted += cal.is_working_day(day)
        return datetime.combine(day, time(23, 59, 59), zone)
    left = timedelta(seconds=duration.amount * (3600 if duration.unit == "working_hours" else 1))
    moment = local
    while True:
        opening = datetime.combine(moment.date(), time(7, 30), zone)
        closing = datetime.combine(moment.date(), time(16, 0), zone)
        if cal.is_working_day(moment.date()) and moment < closing:
            moment = max(moment, opening)
            if left <= closing - moment:
                return moment + left
            left -= closing - moment
        moment = datetime.combine(moment.date() + timedelta(days=1), time(0), zone)


@settings(max_examples=300)
@given(
    STARTS,
    st.one_of(
        st.builds(Duration, st.integers(1, 30), st.just("working_days")),
        st.builds(Duration, st.integers(1, 100), st.just("working_hours")),
        st.builds(Duration, st.integers(1, 400_000), st.just("working_seconds")),
    ),
    REGIONS,
)
def test_due_agrees_with_a_day_by_day_count(
    cal: WorkingCalendar, start: datetime, duration: Duration, region: str
) -> None:
    assert cal.due(start, duration, region) == naive_due(cal, start, duration, region)
