"""The shipped calendar files, and what a malformed calendar file is told."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from engine.definitions.calendars import load_calendar_year, load_calendars, seed_calendar_year
from engine.domain.calendar import CalendarYear
from engine.domain.errors import CalendarError, DefinitionError, DefinitionErrors

CALENDARS = Path(__file__).resolve().parents[2] / "policies" / "calendars"


def dates(texts: str) -> set[date]:
    return {date.fromisoformat(t) for t in texts.split()}


LIBUR_2025 = dates(
    "2025-01-01 2025-01-27 2025-01-29 2025-03-29 2025-03-31 2025-04-01 2025-04-18 2025-04-20 "
    "2025-05-01 2025-05-12 2025-05-29 2025-06-01 2025-06-06 2025-06-27 2025-08-17 2025-09-05 "
    "2025-12-25"
)
CUTI_2025 = dates(
    "2025-01-28 2025-03-28 2025-04-02 2025-04-03 2025-04-04 2025-04-07 2025-05-13 2025-05-30 "
    "2025-06-09 2025-08-18 2025-12-26"
)
LIBUR_2026 = dates(
    "2026-01-01 2026-01-16 2026-02-17 2026-03-19 2026-03-21 2026-03-22 2026-04-03 2026-04-05 "
    "2026-05-01 2026-05-14 2026-05-27 2026-05-31 2026-06-01 2026-06-16 2026-08-17 2026-08-25 "
    "2026-12-25"
)
CUTI_2026 = dates(
    "2026-02-16 2026-03-18 2026-03-20 2026-03-23 2026-03-24 2026-05-15 2026-05-28 2026-12-24"
)


def by_kind(year: CalendarYear, kind: str) -> set[date]:
    return {h.day for h in year.holidays if h.kind == kind}


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


GOOD = """\
calendar: id
year: 2026
provisional: false
source: "test decree"
holidays:
  - {date: "2026-01-01", name: "Tahun Baru", kind: libur_nasional, source: "SKB"}
  - {date: "2026-02-16", name: "Cuti Imlek", kind: cuti_bersama}
"""


# --- shipped files ----------------------------------------------------------------------------


def test_shipped_calendars_load_and_cover_2025_to_2027() -> None:
    cal = load_calendars(CALENDARS)
    assert cal.years == (2025, 2026, 2027)
    assert cal.provisional_years == (2027,)


def test_2025_lists_the_27_skb_dates_plus_the_august_amendment() -> None:
    year = load_calendar_year(CALENDARS / "id-2025.yaml")
    assert len(year.holidays) == 28
    assert by_kind(year, "libur_nasional") == LIBUR_2025
    assert by_kind(year, "cuti_bersama") == CUTI_2025
    assert not year.provisional


def test_2026_lists_exactly_the_25_skb_dates() -> None:
    year = load_calendar_year(CALENDARS / "id-2026.yaml")
    assert len(year.holidays) == 25
    assert by_kind(year, "libur_nasional") == LIBUR_2026
    assert by_kind(year, "cuti_bersama") == CUTI_2026
    assert not year.provisional


def test_2027_is_provisional_and_says_so_in_the_file() -> None:
    year = load_calendar_year(CALENDARS / "id-2027.yaml")
    assert year.provisional
    assert "PROVISIONAL" in (CALENDARS / "id-2027.yaml").read_text(encoding="utf-8")
    assert all(h.day.year == 2027 for h in year.holidays)
    assert {"libur_nasional", "cuti_bersama"} == {h.kind for h in year.holidays}


@pytest.mark.parametrize("name", ["id-2025.yaml", "id-2026.yaml", "id-2027.yaml"])
def test_every_shipped_holiday_has_a_name_and_a_source(name: str) -> None:
    year = load_calendar_year(CALENDARS / name)
    assert year.source
    assert all(h.name.strip() and h.source.strip() for h in year.holidays)
    assert [h.day for h in year.holidays] == sorted(h.day for h in year.holidays)


# --- a good file and defaults -----------------------------------------------------------------


def test_holiday_source_defaults_to_the_file_source(tmp_path: Path) -> None:
    year = load_calendar_year(write(tmp_path, "id-2026.yaml", GOOD))
    assert [(h.day, h.kind, h.source) for h in year.holidays] == [
        (date(2026, 1, 1), "libur_nasional", "SKB"),
        (date(2026, 2, 16), "cuti_bersama", "test decree"),
    ]


def test_a_holiday_on_a_weekend_is_accepted(tmp_path: Path) -> None:
    text = GOOD.replace("2026-02-16", "2026-03-21")  # Saturday
    year = load_calendar_year(write(tmp_path, "id-2026.yaml", text))
    assert date(2026, 3, 21) in {h.day for h in year.holidays}


# --- bad files: each error names file:line ----------------------------------------------------


def expect_error(path: Path, line: int, *fragments: str) -> None:
    with pytest.raises(DefinitionError) as err:
        load_calendar_year(path)
    text = str(err.value)
    assert text.startswith(f"{path}:{line}:"), text
    for fragment in fragments:
        assert fragment in text, text


def test_unknown_top_level_key_names_the_allowed_keys(tmp_path: Path) -> None:
    path = write(
        tmp_path, "id-2026.yaml", GOOD.replace("provisional:", "provisionl: x\nprovisional:")
    )
    with pytest.raises(DefinitionError) as err:
        load_calendar_year(path)
    assert str(err.value).startswith(f"{path}:3:")
    assert "unknown key 'provisionl'" in str(err.value)
    assert "calendar, year, provisional, source, holidays" in str(err.value)


def test_unknown_holiday_key_names_the_allowed_keys(tmp_path: Path) -> None:
    text = GOOD.replace("kind: cuti_bersama}", "kind: cuti_bersama, nama: x}")
    expect_error(write(tmp_path, "id-2026.yaml", text), 7, "'nama'", "date, name, kind, source")


def test_unknown_kind_lists_the_two_kinds(tmp_path: Path) -> None:
    text = GOOD.replace("kind: cuti_bersama", "kind: cuti")
    expect_error(write(tmp_path, "id-2026.yaml", text), 7, "'cuti'", "libur_nasional, cuti_bersama")


def test_date_outside_the_file_year_is_an_error(tmp_path: Path) -> None:
    text = GOOD.replace("2026-02-16", "2027-02-16")
    expect_error(write(tmp_path, "id-2026.yaml", text), 7, "not in 2026")


def test_duplicate_date_points_at_the_first_one(tmp_path: Path) -> None:
    text = GOOD.replace("2026-02-16", "2026-01-01")
    expect_error(write(tmp_path, "id-2026.yaml", text), 7, "listed twice", "first at line 6")


@pytest.mark.parametrize(
    ("spelling", "fragment"),
    [
        ('"2026-02-30"', "does not exist"),
        ('"20260216"', "YYYY-MM-DD"),
        ('"2026/02/16"', "YYYY-MM-DD"),
        ("2026-02-16", None),  # unquoted is still text to our YAML reader, so it is fine
        ("20260216", "must be a quoted date"),
    ],
)
def test_dates_must_be_real_iso_dates(tmp_path: Path, spelling: str, fragment: str | None) -> None:
    path = write(tmp_path, "id-2026.yaml", GOOD.replace('"2026-02-16"', spelling))
    if fragment is None:
        assert len(load_calendar_year(path).holidays) == 2
    else:
        expect_error(path, 7, fragment)


def test_year_must_match_the_file_name(tmp_path: Path) -> None:
    expect_error(write(tmp_path, "id-2025.yaml", GOOD), 2, "does not match the file name")


def test_implausible_year_is_an_error(tmp_path: Path) -> None:
    text = GOOD.replace("year: 2026", "year: 26")
    expect_error(write(tmp_path, "draft.yaml", text), 2, "not a plausible calendar year")


def test_missing_keys_are_named(tmp_path: Path) -> None:
    text = GOOD.replace('source: "test decree"\n', "")
    expect_error(write(tmp_path, "id-2026.yaml", text), 1, "missing source")


def test_wrong_types_are_explained(tmp_path: Path) -> None:
    expect_error(write(tmp_path, "id-2026.yaml", GOOD.replace("false", "no")), 3, "true or false")


def test_a_list_instead_of_a_mapping_is_an_error(tmp_path: Path) -> None:
    expect_error(write(tmp_path, "id-2026.yaml", "- 2026-01-01\n"), 1, "is a mapping")


def test_malformed_yaml_reports_its_line(tmp_path: Path) -> None:
    expect_error(write(tmp_path, "id-2026.yaml", GOOD + "  - {date: \n"), 9, "malformed YAML")


def test_several_problems_are_reported_together(tmp_path: Path) -> None:
    text = GOOD.replace("kind: cuti_bersama", "kind: cuti").replace("2026-01-01", "2025-01-01")
    path = write(tmp_path, "id-2026.yaml", text)
    with pytest.raises(DefinitionErrors) as err:
        load_calendar_year(path)
    lines = str(err.value).splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"{path}:6:") and lines[1].startswith(f"{path}:7:")


def test_directory_with_a_misnamed_file_is_an_error(tmp_path: Path) -> None:
    write(tmp_path, "id-2026.yaml", GOOD)
    write(tmp_path, "id-2026-draft.yaml", GOOD)
    with pytest.raises(DefinitionError, match=r"named id-YYYY\.yaml"):
        load_calendars(tmp_path)


def test_directory_without_calendar_files_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DefinitionError, match="no calendar files"):
        load_calendars(tmp_path)
    with pytest.raises(DefinitionError, match="does not exist"):
        load_calendars(tmp_path / "missing")


def test_directory_errors_keep_the_file_and_line(tmp_path: Path) -> None:
    write(tmp_path, "id-2025.yaml", GOOD.replace("2026", "2025"))
    bad = write(tmp_path, "id-2026.yaml", GOOD.replace("kind: cuti_bersama", "kind: cuti"))
    with pytest.raises(DefinitionError) as err:
        load_calendars(tmp_path)
    assert str(err.value).startswith(f"{bad}:7:")


def test_other_calendar_names_are_loaded_separately(tmp_path: Path) -> None:
    write(tmp_path, "id-2026.yaml", GOOD)
    write(tmp_path, "test-2026.yaml", GOOD.replace("calendar: id", "calendar: test"))
    assert load_calendars(tmp_path, "test").years == (2026,)
    with pytest.raises(DefinitionError, match="does not match the file name"):
        load_calendar_year(write(tmp_path, "xx-2026.yaml", GOOD))


# --- seeding ----------------------------------------------------------------------------------


def test_seeded_2027_loads_and_matches_the_shipped_draft(tmp_path: Path) -> None:
    path = write(tmp_path, "id-2027.yaml", seed_calendar_year(2027))
    seeded = load_calendar_year(path)
    shipped = load_calendar_year(CALENDARS / "id-2027.yaml")
    assert seeded.provisional
    assert "holidays" in seeded.source
    assert [(h.day, h.kind) for h in seeded.holidays] == [(h.day, h.kind) for h in shipped.holidays]


def test_seeded_2026_agrees_with_the_skb(tmp_path: Path) -> None:
    seeded = load_calendar_year(write(tmp_path, "id-2026.yaml", seed_calendar_year(2026)))
    assert by_kind(seeded, "libur_nasional") == LIBUR_2026
    assert by_kind(seeded, "cuti_bersama") == CUTI_2026


def test_seed_refuses_years_the_package_does_not_know() -> None:
    with pytest.raises(CalendarError, match="cannot seed year"):
        seed_calendar_year(1800)
