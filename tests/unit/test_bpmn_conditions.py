"""BPMN conditions become CEL guards and timer texts become durations, and nothing is ever run.

Every accepted form and every refusal of ``engine.definitions.bpmn.conditions`` and
``engine.definitions.bpmn.durations`` is a row below; the translated CEL is compiled (and some
of it evaluated) with the ``cel`` package the engine's guards use, to show it means what the
BPMN text meant.
"""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path
from typing import Any

import pytest

from engine.definitions.bpmn.conditions import ConditionError, Guard, translate_condition
from engine.definitions.bpmn.durations import DurationError, parse_timer_duration

BPMN = Path(__file__).resolve().parents[2] / "engine" / "definitions" / "bpmn"

# (text, language, CEL, fields)
ACCEPTED: list[tuple[str, str | None, str, tuple[str, ...]]] = [
    # JUEL (Camunda 7)
    ("${approved}", None, "data.approved == true", ("approved",)),
    ("${!approved}", None, "data.approved != true", ("approved",)),
    ("${not approved}", None, "data.approved != true", ("approved",)),
    ("${not(approved)}", None, "data.approved != true", ("approved",)),
    ("${amount > 100}", None, "data.amount > 100", ("amount",)),
    ("${status == 'open'}", None, 'data.status == "open"', ("status",)),
    ('${status eq "open"}', None, 'data.status == "open"', ("status",)),
    ("${x != 1}", None, "data.x != 1", ("x",)),
    ("${x ne 1}", None, "data.x != 1", ("x",)),
    ("${x lt 5}", None, "data.x < 5", ("x",)),
    ("${x gt 5}", None, "data.x > 5", ("x",)),
    ("${x le 5}", None, "data.x <= 5", ("x",)),
    ("${x ge 5}", None, "data.x >= 5", ("x",)),
    ("${x < 5}", None, "data.x < 5", ("x",)),
    ("${x <= 5}", None, "data.x <= 5", ("x",)),
    ("${x >= 5}", None, "data.x >= 5", ("x",)),
    ("${a > 1 && b == 'x'}", None, 'data.a > 1 && data.b == "x"', ("a", "b")),
    ("${a > 1 and b == 'x'}", None, 'data.a > 1 && data.b == "x"', ("a", "b")),
    ("${a || b}", None, "data.a == true || data.b == true", ("a", "b")),
    ("${a or b}", None, "data.a == true || data.b == true", ("a", "b")),
    (
        "${(a || b) && c}",
        None,
        "(data.a == true || data.b == true) && data.c == true",
        ("a", "b", "c"),
    ),
    (
        "${a || b && c}",
        None,
        "data.a == true || (data.b == true && data.c == true)",
        ("a", "b", "c"),
    ),
    (
        "${a && (b && c)}",
        None,
        "data.a == true && data.b == true && data.c == true",
        ("a", "b", "c"),
    ),
    ("${!(a > 1)}", None, "!(data.a > 1)", ("a",)),
    ("${!(a || b)}", None, "!(data.a == true || data.b == true)", ("a", "b")),
    ("${!!a}", None, "!(data.a != true)", ("a",)),
    ("${  x\n  >\t1  }", None, "data.x > 1", ("x",)),
    ("  ${x > 1}  ", None, "data.x > 1", ("x",)),
    (
        "#{x ge 2 and (y le 3 or z gt 4)}",
        None,
        "data.x >= 2 && (data.y <= 3 || data.z > 4)",
        ("x", "y", "z"),
    ),
    ("${a == b}", None, "data.a == data.b", ("a", "b")),
    ("${100 < amount}", None, "100 < data.amount", ("amount",)),
    ("${x > -5}", None, "data.x > -5", ("x",)),
    ("${x > 1.50}", None, "data.x > 1.50", ("x",)),
    ("${x == 007}", None, "data.x == 7", ("x",)),
    ("${x == -0}", None, "data.x == 0", ("x",)),
    ("${x == true}", None, "data.x == true", ("x",)),
    ("${x != false}", None, "data.x != false", ("x",)),
    ("${true}", None, "true", ()),
    ("${b > 1 && a > 1 && b < 9}", None, "data.b > 1 && data.a > 1 && data.b < 9", ("a", "b")),
    ("${_x1 == 1}", None, "data._x1 == 1", ("_x1",)),
    ("${s == 'it\\'s'}", None, 'data.s == "it\'s"', ("s",)),
    ('${s == "say \\"hi\\""}', None, 'data.s == "say \\"hi\\""', ("s",)),
    ("${s == 'back\\\\slash'}", None, 'data.s == "back\\\\slash"', ("s",)),
    ("${s == 'two\nlines'}", None, 'data.s == "two\\nlines"', ("s",)),
    ("${s == 'é'}", None, 'data.s == "é"', ("s",)),
    ("${x > 1}", "juel", "data.x > 1", ("x",)),
    ("${x > 1}", "JUEL", "data.x > 1", ("x",)),
    ("${x > 1}", "http://www.w3.org/1999/XPath", "data.x > 1", ("x",)),
    ("${x > 1}", "", "data.x > 1", ("x",)),
    # FEEL (Camunda 8 / Zeebe)
    (
        '=managerReviewOutcome = "approved"',
        None,
        'data.managerReviewOutcome == "approved"',
        ("managerReviewOutcome",),
    ),
    ("= x != 3", None, "data.x != 3", ("x",)),
    ("  =x > 10 and y = true", None, "data.x > 10 && data.y == true", ("x", "y")),
    ("=not(approved)", None, "data.approved != true", ("approved",)),
    ("=not(a > 1 or b)", None, "!(data.a > 1 || data.b == true)", ("a", "b")),
    ("=approved", None, "data.approved == true", ("approved",)),
    ("=a or b", None, "data.a == true || data.b == true", ("a", "b")),
    (
        "=(a or b) and c <= 2",
        None,
        "(data.a == true || data.b == true) && data.c <= 2",
        ("a", "b", "c"),
    ),
    ('=s = "q\\"uote"', None, 'data.s == "q\\"uote"', ("s",)),
    ("=x >= 1", "feel", "data.x >= 1", ("x",)),
    ("x >= 1", "FEEL", "data.x >= 1", ("x",)),
    ("=x >= 1", "https://www.omg.org/spec/DMN/20191111/FEEL", "data.x >= 1", ("x",)),
    # bare CEL-like text
    ("amount >= 1.5", "cel", "data.amount >= 1.5", ("amount",)),
    ("!(a < 2) || b", "https://cel.dev", "!(data.a < 2) || data.b == true", ("a", "b")),
    (
        "status == 'open' && !closed",
        "cel",
        'data.status == "open" && data.closed != true',
        ("closed", "status"),
    ),
    ("amount > 100", None, "data.amount > 100", ("amount",)),
]

NOT_PLAIN = "is not a plain comparison of fields; write it in CEL with lapor:guard"

# (text, language, a part of the reason)
REFUSED: list[tuple[str, str | None, str]] = [
    ("x > 1", "groovy", "conditions in groovy are scripts and are never run"),
    ("x > 1", "Groovy", "conditions in Groovy are scripts and are never run"),
    ("x", "javascript", "scripts and are never run"),
    ("x", "text/javascript", "scripts and are never run"),
    ("x", "js", "scripts and are never run"),
    ("x", "python", "scripts and are never run"),
    ("x", "Jython", "scripts and are never run"),
    ("x", "ruby", "scripts and are never run"),
    ("${x}", "xquery", "conditions in xquery are not translated"),
    ("${a.b()}", None, f"the condition ${{a.b()}} {NOT_PLAIN}"),
    ("${a.b}", None, "a.b is a field path, not a top-level field"),
    ("${a.b.c == 1}", None, "a.b.c is a field path"),
    ("${a. == 1}", None, NOT_PLAIN),
    ("${f(x)}", None, NOT_PLAIN),
    ("${x == null}", None, "null comparisons are not translated"),
    ("${null != x}", None, "null comparisons are not translated"),
    ("=x = null", None, "null comparisons are not translated"),
    ("${null}", None, NOT_PLAIN),
    ("${1 == 1}", None, "compares literals only; a comparison reads a field"),
    ("${'a' == 'a'}", None, "compares literals only"),
    ("${1}", None, NOT_PLAIN),
    ("${'yes'}", None, NOT_PLAIN),
    ("${x > true}", None, "true and false have no order"),
    ("${!a == b}", None, NOT_PLAIN),
    ("${not a == b}", None, NOT_PLAIN),
    ("${(a > 1) == true}", None, NOT_PLAIN),
    ("${a < b < c}", None, NOT_PLAIN),
    ("${a + 1 > 2}", None, NOT_PLAIN),
    ("${-a > 2}", None, NOT_PLAIN),
    ("${x > 1e5}", None, NOT_PLAIN),
    ("${x > 1.}", None, NOT_PLAIN),
    ("${x > 10L}", None, NOT_PLAIN),
    ("${x == 1234567890123456789}", None, "has more than 18 digits"),
    ("${empty x}", None, NOT_PLAIN),
    ("${x eq}", None, NOT_PLAIN),
    ("${x & y}", None, NOT_PLAIN),
    ("${x[0] == 1}", None, NOT_PLAIN),
    ("${x in [1, 2]}", None, NOT_PLAIN),
    ("${a ? b : c}", None, NOT_PLAIN),
    ("${(a > 1}", None, NOT_PLAIN),
    ("${a > 1)}", None, NOT_PLAIN),
    ("${a} ${b}", None, NOT_PLAIN),
    ("${a > 1", None, NOT_PLAIN),
    ("${ñ == 1}", None, NOT_PLAIN),
    ("${in == 1}", None, "the field name in is reserved in CEL"),
    ("${s == 'x\\n'}", None, "has a string escape other than"),
    ("${s == 'open}", None, "has a string that is never closed"),
    ("x > 1", "juel", "is not one ${...} expression"),
    ("", None, "the condition is empty"),
    ("   ", None, "the condition is empty"),
    ("${}", None, "the condition is empty"),
    ("#{ }", None, "the condition is empty"),
    ("=", None, "the condition is empty"),
    # FEEL spells its operators its own way
    ("=x == 1", None, NOT_PLAIN),
    ("=x = 1 && y = 2", None, NOT_PLAIN),
    ("=!x", None, NOT_PLAIN),
    ("=not x", None, NOT_PLAIN),
    ("=x = 'open'", None, "FEEL strings are written in double quotes"),
    ("=x between 1 and 5", None, NOT_PLAIN),
    ('=x in ("a", "b")', None, NOT_PLAIN),
    ("=date(x) > today()", None, NOT_PLAIN),
    # bare CEL spells them its own way too
    ("a = 1", "cel", NOT_PLAIN),
    ("a > 1 and b", "cel", NOT_PLAIN),
    ("${a > 1}", "cel", NOT_PLAIN),
    ("size(data.x) > 2", "cel", NOT_PLAIN),
    ("data.x > 2", "cel", "data.x is a field path"),
]


@pytest.mark.parametrize(("text", "language", "cel", "fields"), ACCEPTED)
def test_a_plain_condition_becomes_cel_reading_data(
    text: str, language: str | None, cel: str, fields: tuple[str, ...]
) -> None:
    assert translate_condition(text, language) == Guard(cel=cel, fields=fields)


@pytest.mark.parametrize(("text", "language", "reason"), REFUSED)
def test_anything_else_is_refused_naming_why(text: str, language: str | None, reason: str) -> None:
    with pytest.raises(ConditionError) as raised:
        translate_condition(text, language)
    assert reason in raised.value.reason
    assert str(raised.value) == raised.value.reason
    assert "\n" not in raised.value.reason


def test_feel_equality_of_a_field_becomes_cel() -> None:
    guard = translate_condition('=managerReviewOutcome = "approved"', None)
    assert guard.cel == 'data.managerReviewOutcome == "approved"'
    assert guard.fields == ("managerReviewOutcome",)


def test_a_groovy_condition_is_refused_as_a_script() -> None:
    with pytest.raises(ConditionError, match="conditions in groovy are scripts and are never run"):
        translate_condition('"touch /tmp/x".execute()', "groovy")


def test_a_method_call_is_refused_not_run() -> None:
    with pytest.raises(ConditionError) as raised:
        translate_condition("${a.b()}", None)
    assert raised.value.reason == (
        "the condition ${a.b()} is not a plain comparison of fields; "
        "write it in CEL with lapor:guard"
    )


def test_a_condition_error_is_a_value_error_with_its_reason() -> None:
    error = ConditionError("because")
    assert isinstance(error, ValueError)
    assert error.reason == "because"


def test_a_guard_is_frozen() -> None:
    guard = translate_condition("${x}", None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        guard.cel = "true"  # type: ignore[misc]


def test_a_long_condition_is_shown_shortened_in_the_reason() -> None:
    text = "${" + "x" * 100 + "()}"
    with pytest.raises(ConditionError) as raised:
        translate_condition(text, None)
    assert "..." in raised.value.reason and len(raised.value.reason) < 200


def test_a_condition_of_500_characters_is_translated_and_501_is_refused() -> None:
    body = "${x == 1"
    fits = body + " " * (500 - len(body) - 1) + "}"
    assert len(fits) == 500
    assert translate_condition(fits, None).cel == "data.x == 1"
    with pytest.raises(ConditionError, match="501 characters long; at most 500"):
        translate_condition(body + " " + fits[len(body) :], None)


@pytest.mark.parametrize(
    ("text", "deep_enough"),
    [
        ("${" + "(" * 8 + "a" + ")" * 8 + "}", True),
        ("${" + "(" * 9 + "a" + ")" * 9 + "}", False),
        ("${" + "!" * 8 + "a}", True),
        ("${" + "!" * 9 + "a}", False),
        ("=" + "not(" * 8 + "a" + ")" * 8, True),
        ("=" + "not(" * 9 + "a" + ")" * 9, False),
        ("${" + "!(" * 4 + "a" + ")" * 4 + "}", True),
        ("${a && (b || (c && (d || (e && (f || (g && (h || (i && (j)))))))))}", False),
        ("${" + "(" * 240 + "a" + ")" * 240 + "}", False),
    ],
)
def test_nesting_deeper_than_8_is_refused(text: str, deep_enough: bool) -> None:
    if deep_enough:
        assert "a" in translate_condition(text, None).fields
    else:
        with pytest.raises(ConditionError, match="nests deeper than 8 levels"):
            translate_condition(text, None)


# --- nothing is evaluated -----------------------------------------------------------------


@pytest.mark.parametrize("language", [None, "", "juel", "feel", "cel", "groovy", "python"])
def test_hostile_conditions_are_refused_and_nothing_runs(
    tmp_path: Path, language: str | None
) -> None:
    canary = tmp_path / "x"
    hostile = [
        "${''.getClass().forName('java.lang.Runtime')}",
        "${''.getClass().forName('java.lang.Runtime').getRuntime().exec('touch " + f"{canary}')}}",
        f"${{__import__('os').system('touch {canary}')}}",
        f"#{{__import__('os').system('touch {canary}')}}",
        f"=__import__('os').system('touch {canary}')",
        f'=__import__("os").system("touch {canary}")',
        f"__import__('os').system('touch {canary}')",
        f"open('{canary}', 'w')",
        f"x == 1 or __import__('os').system('touch {canary}')",
    ]
    for text in hostile:
        with pytest.raises(ConditionError):
            translate_condition(text, language)
    assert not canary.exists()


def test_hostile_timer_texts_are_refused_and_nothing_runs(tmp_path: Path) -> None:
    canary = tmp_path / "x"
    for text in (
        f"__import__('os').system('touch {canary}') or \"PT1H\"",
        f"${{''.getClass().forName('java.lang.Runtime').getRuntime().exec('touch {canary}')}}",
        f"=__import__('os').system('touch {canary}')",
        f'"{canary}"',
    ):
        with pytest.raises(DurationError):
            parse_timer_duration(text)
    assert not canary.exists()


@pytest.mark.parametrize("module", ["conditions.py", "durations.py"])
def test_the_translators_call_no_evaluator_and_import_no_engine(module: str) -> None:
    tree = ast.parse((BPMN / module).read_text(encoding="utf-8"))
    called = {
        node.func.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    }
    assert not called & {"eval", "exec", "compile", "__import__", "getattr", "open"}
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        (node.module or "").split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
    }
    assert imported <= {"__future__", "collections", "dataclasses", "enum", "typing"}


# --- the CEL is CEL, and means what the condition meant -------------------------------------


def _run(cel_source: str, data: dict[str, Any]) -> Any:
    cel = pytest.importorskip("cel")
    # As engine/domain/guards.py does: compile once, execute against {"data": ...}.
    return cel.compile(cel_source).execute({"data": data})


@pytest.mark.parametrize(("text", "language", "cel", "fields"), ACCEPTED)
def test_every_translation_compiles_as_cel(
    text: str, language: str | None, cel: str, fields: tuple[str, ...]
) -> None:
    compiler = pytest.importorskip("cel")
    program = compiler.compile(translate_condition(text, language).cel)
    assert set(program.variables()) <= {"data"}


@pytest.mark.parametrize(
    ("amount", "holds"), [(150, True), (100, False), (50, False), (150.5, True)]
)
def test_a_juel_amount_comparison_holds_as_it_did(amount: float, holds: bool) -> None:
    assert _run(translate_condition("${amount > 100}", None).cel, {"amount": amount}) is holds


@pytest.mark.parametrize(
    ("text", "data", "holds"),
    [
        ('=managerReviewOutcome = "approved"', {"managerReviewOutcome": "approved"}, True),
        ('=managerReviewOutcome = "approved"', {"managerReviewOutcome": "rejected"}, False),
        ("${approved}", {"approved": True}, True),
        ("${approved}", {"approved": False}, False),
        ("${approved}", {"approved": "yes"}, False),
        ("${!approved}", {"approved": False}, True),
        ("${!approved}", {"approved": True}, False),
        ("=not(approved)", {"approved": "yes"}, True),
        ("${a > 1 && b == 'x'}", {"a": 2, "b": "x"}, True),
        ("${a > 1 && b == 'x'}", {"a": 2, "b": "y"}, False),
        ("${(a || b) && c}", {"a": False, "b": True, "c": True}, True),
        ("${(a || b) && c}", {"a": True, "b": False, "c": False}, False),
        ("${a || b && c}", {"a": True, "b": False, "c": False}, True),
        ("${x > -5}", {"x": -4}, True),
        ("${x > 1.5}", {"x": 2}, True),
        ("${true}", {}, True),
    ],
)
def test_a_translated_guard_decides_as_the_condition_did(
    text: str, data: dict[str, Any], holds: bool
) -> None:
    assert _run(translate_condition(text, None).cel, data) is holds


@pytest.mark.parametrize(
    "value", ['say "hi"', "it's", "back\\slash", "two\nlines\r\t", "\x01", "é ✓"]
)
def test_a_string_literal_survives_as_the_same_cel_string(value: str) -> None:
    juel = value.replace("\\", "\\\\").replace("'", "\\'")
    guard = translate_condition(f"${{s == '{juel}'}}", None)
    assert _run(guard.cel, {"s": value}) is True
    assert _run(guard.cel, {"s": value + "."}) is False


# --- timer durations ----------------------------------------------------------------------

DURATIONS: list[tuple[str, tuple[int, str]]] = [
    ("P3D", (3, "calendar_days")),
    ("P2W", (14, "calendar_days")),
    ("P1W2D", (9, "calendar_days")),
    ("P0D", (0, "calendar_days")),
    ("PT2H", (7200, "calendar_seconds")),
    ("PT90M", (5400, "calendar_seconds")),
    ("PT30S", (30, "calendar_seconds")),
    ("PT1H30M", (5400, "calendar_seconds")),
    ("P1DT2H", (93600, "calendar_seconds")),
    ("P1DT2H3M4S", (93784, "calendar_seconds")),
    ("PT0S", (0, "calendar_seconds")),
    ("PT123456789S", (123456789, "calendar_seconds")),
    ("'PT1H'", (3600, "calendar_seconds")),
    ('"PT1H"', (3600, "calendar_seconds")),
    ('"P3D"', (3, "calendar_days")),
    ("\n   PT1H\n  ", (3600, "calendar_seconds")),
]

DURATION_REFUSALS: list[tuple[str, str]] = [
    ("${duration}", "expressions are not evaluated"),
    ("#{x}", "expressions are not evaluated"),
    ("=duration", "expressions are not evaluated"),
    ('"${duration}"', "expressions are not evaluated"),
    ("PT${hours}H", "expressions are not evaluated"),
    ("R/PT1H", "a timeCycle-style repetition is not a duration"),
    ("R3/PT1H", "a timeCycle-style repetition is not a duration"),
    ("R3/2025-01-01T00:00:00Z/P1D", "a timeCycle-style repetition is not a duration"),
    ("2025-01-01T00:00:00Z/P1D", "a date or interval is not a duration"),
    ("P1D/2025-01-01", "a date or interval is not a duration"),
    ("P1Y", "months and years have no fixed length; use days"),
    ("P2M", "months and years have no fixed length; use days"),
    ("P1Y2D", "months and years have no fixed length; use days"),
    ("P0Y", "months and years have no fixed length; use days"),
    ("PT0.2S", "durations are whole seconds or days"),
    ("P1.5D", "durations are whole seconds or days"),
    ("PT0,5H", "durations are whole seconds or days"),
    ("-PT1H", "negative durations are not allowed"),
    ("P-1D", "negative durations are not allowed"),
    ("PT-1H", "negative durations are not allowed"),
    ("P1DT-1H", "negative durations are not allowed"),
    ("", "the duration is empty"),
    ("   ", "the duration is empty"),
    ("''", "the duration is empty"),
    ("PT1234567890S", "a component has more than 9 digits"),
    ("P", "not an ISO 8601 duration such as PT2H or P3D"),
    ("PT", "not an ISO 8601 duration such as PT2H or P3D"),
    ("P1DT", "not an ISO 8601 duration such as PT2H or P3D"),
    ("P1H", "not an ISO 8601 duration such as PT2H or P3D"),
    ("PT1D", "not an ISO 8601 duration such as PT2H or P3D"),
    ("P1D2D", "not an ISO 8601 duration such as PT2H or P3D"),
    ("PT1M1H", "not an ISO 8601 duration such as PT2H or P3D"),
    ("PT1HT1M", "not an ISO 8601 duration such as PT2H or P3D"),
    ("P1W1Y", "not an ISO 8601 duration such as PT2H or P3D"),
    ("3D", "not an ISO 8601 duration such as PT2H or P3D"),
    ("pt1h", "not an ISO 8601 duration such as PT2H or P3D"),
    ("P 1D", "not an ISO 8601 duration such as PT2H or P3D"),
    ("P+1D", "not an ISO 8601 duration such as PT2H or P3D"),
    ("P²D", "not an ISO 8601 duration such as PT2H or P3D"),
    ("P١D", "not an ISO 8601 duration such as PT2H or P3D"),
    ("''PT1H''", "not an ISO 8601 duration such as PT2H or P3D"),
    ("'PT1H\"", "not an ISO 8601 duration such as PT2H or P3D"),
    ('duration("PT1H")', "not an ISO 8601 duration such as PT2H or P3D"),
    ("1 hour", "not an ISO 8601 duration such as PT2H or P3D"),
]


@pytest.mark.parametrize(("text", "expected"), DURATIONS)
def test_an_iso_duration_literal_is_read_in_days_or_seconds(
    text: str, expected: tuple[int, str]
) -> None:
    assert parse_timer_duration(text) == expected


@pytest.mark.parametrize(("text", "reason"), DURATION_REFUSALS)
def test_a_timer_text_that_is_not_a_literal_duration_is_refused_naming_why(
    text: str, reason: str
) -> None:
    with pytest.raises(DurationError) as raised:
        parse_timer_duration(text)
    assert reason in raised.value.reason
    assert isinstance(raised.value, ValueError) and str(raised.value) == raised.value.reason
