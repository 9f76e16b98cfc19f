"""Canonical JSON: the one serialisation every hash is computed over, and the check that data is
JSON at all.

The canonical form is the standard library's ``json.dumps(value, sort_keys=True,
separators=(",", ":"), ensure_ascii=False)``; histories recorded since the first release are
hashed over exactly those bytes, so that definition never changes. ``orjson`` produces the same
bytes several times faster for everything except two corners, which fall back to the standard
library here:

- floats below 1e-4 in magnitude, which ``orjson`` writes as ``0.00001`` or ``1e-7`` where the
  standard library writes ``1e-05`` and ``1e-07`` (found by a regular expression over the output:
  a false alarm only costs the slow path);
- values ``orjson`` refuses (integers beyond 64 bits, non-string keys, lone surrogates).

NaN and the infinities are not JSON (``orjson`` would write ``null``); ``json_problem`` lets the
core refuse them where data enters, so they never reach a record.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

import orjson

__all__ = [
    "MAX_DEPTH",
    "MAX_ITEMS",
    "MAX_TEXT",
    "canonical_json",
    "compact_json",
    "json_problem",
    "json_string",
    "parse_json",
]

_SORTED = orjson.OPT_SORT_KEYS
_NEGATIVE_EXPONENT = re.compile(rb"[0-9]e-")
# 19 digits in a row may be an integer beyond 64 bits, which orjson would read as a float. Found
# by mapping every ASCII digit to "0" and everything else to a space, then a substring search:
# ~1 us for a stored case, where a regular expression took 11 (more than json.loads itself).
_DIGITS_AS_ZEROS = bytes(0x30 if 0x30 <= i <= 0x39 else 0x20 for i in range(256))
_LONG_DIGIT_RUN = b"0" * 19

_stdlib_canonical = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False
).encode
_stdlib_compact = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
# The standard library's own string encoder (C): canonical_json of a str, without the dispatch.
json_string = json.encoder.encode_basestring


def canonical_json(value: Any) -> str:
    """Sorted keys, no spaces, UTF-8: byte for byte the standard library's canonical text."""
    try:
        out = orjson.dumps(value, option=_SORTED)
    except TypeError:
        return _stdlib_canonical(value)
    # Where orjson's float text may differ from the standard library's: "1e-7" (stdlib "1e-07")
    # and "0.00001" (stdlib "1e-05"). Substring tests first: several times cheaper than a search,
    # and this runs several times per decision.
    if b"0.0000" in out or (b"e-" in out and _NEGATIVE_EXPONENT.search(out) is not None):
        return _stdlib_canonical(value)
    return out.decode()


def compact_json(value: Any) -> str:
    """No spaces, keys in insertion order: for stored bodies that are parsed, never hashed (so
    orjson's float spelling is as good as the standard library's)."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return _stdlib_compact(value)


def parse_json(text: str) -> Any:
    """``json.loads``, several times faster for what we store (orjson), with the same result.

    Texts orjson reads differently or refuses go to the standard library: a run of 19 digits
    (possibly an integer orjson would turn into a float; a false alarm costs only the slow path),
    and what orjson rejects (NaN, lone surrogates, numbers out of double range).
    """
    raw = text.encode("utf-8", "surrogatepass")  # orjson refuses those; the stdlib reads them
    if _LONG_DIGIT_RUN not in raw.translate(_DIGITS_AS_ZEROS):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    return json.loads(text)


MAX_DEPTH = 32
"""How deeply data may nest: far more than any intake or reply needs, far less than would
exhaust a parser's or an encoder's stack."""
MAX_TEXT = 20_000
"""Characters a text field may hold (a long complaint is a few thousand): every agency-facing
message carries the case's data, so one oversized field is copied into every outbox row."""
MAX_ITEMS = 500
"""Entries an object or a list may hold."""


def json_problem(value: Any, where: str, _depth: int = 0) -> str | None:
    """Why ``value`` is not plain JSON data (``None`` if it is), naming the offending path."""
    if _depth > MAX_DEPTH:
        return f"{where} is nested deeper than {MAX_DEPTH} levels"
    if isinstance(value, str):
        if len(value) > MAX_TEXT:
            return f"{where} has {len(value):,} characters; at most {MAX_TEXT:,}"
        return None
    if value is None or isinstance(value, bool | int):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{where} is {value!r}, which is not a JSON number"
    if isinstance(value, Mapping | list | tuple) and len(value) > MAX_ITEMS:
        return f"{where} has {len(value):,} entries; at most {MAX_ITEMS}"
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{where} has a non-string key {key!r}"
            problem = json_problem(item, f"{where}.{key}", _depth + 1)
            if problem is not None:
                return problem
        return None
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            problem = json_problem(item, f"{where}[{index}]", _depth + 1)
            if problem is not None:
                return problem
        return None
    return f"{where} is a {type(value).__name__}, which is not JSON data"
