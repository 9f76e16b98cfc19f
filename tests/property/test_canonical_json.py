"""``canonical_json`` takes a fast path (orjson) but must give the standard library's bytes, which
every recorded hash was computed over, for any JSON data at all."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.domain.canonical import canonical_json, compact_json, json_problem, parse_json


def stdlib_canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()  # beyond 64 bits too: the fast path refuses those and falls back
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),  # any code point, lone surrogates included
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=30,
)


@settings(max_examples=2_000)
@given(json_values)
def test_canonical_json_is_the_standard_librarys_canonical_text(value: Any) -> None:
    assert canonical_json(value) == stdlib_canonical(value)


@settings(max_examples=500)
@given(json_values)
def test_compact_json_parses_back_to_the_same_value(value: Any) -> None:
    assert json.loads(compact_json(value)) == value


@settings(max_examples=2_000)
@given(json_values)
def test_parse_json_reads_what_the_standard_library_reads(value: Any) -> None:
    for text in (compact_json(value), json.dumps(value)):
        parsed = parse_json(text)
        assert parsed == json.loads(text)
        assert _types(parsed) == _types(json.loads(text))  # 2**70 stays an int, not 1.18e21


def _types(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _types(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_types(item) for item in value]
    return type(value)


@pytest.mark.parametrize(
    "text",
    [
        "123456789012345678901234567890",
        "[-9223372036854775809]",
        "NaN",
        '"\\ud800"',  # an escaped lone surrogate
        '"\ud800"',  # a raw one, as the standard library writes it with ensure_ascii off
        "1e400",
    ],
)
def test_parse_json_corners_orjson_reads_differently_or_refuses(text: str) -> None:
    parsed, expected = parse_json(text), json.loads(text)
    assert repr(parsed) == repr(expected)


@pytest.mark.parametrize(
    "value",
    [1e-05, -1.3923031510219263e-05, 1e-07, 5e-324, 1e16, 1e22, 0.0001, -0.0, 2**64, -(2**63) - 1],
)
def test_floats_and_integers_where_the_fast_encoder_differs(value: float | int) -> None:
    assert canonical_json({"x": [value]}) == stdlib_canonical({"x": [value]})


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ({"rating": math.nan}, "data.rating is nan"),
        ({"a": [1, {"b": math.inf}]}, "data.a[1].b is inf"),
        ({1: "x"}, "data has a non-string key 1"),
        ({"when": object()}, "data.when is a object"),
    ],
)
def test_json_problem_names_the_offending_path(value: Any, problem: str) -> None:
    found = json_problem(value, "data")
    assert found is not None and found.startswith(problem)


def test_plain_json_data_has_no_problem() -> None:
    assert json_problem({"a": [1, 2.5, None, True, "x", {"b": []}]}, "data") is None
