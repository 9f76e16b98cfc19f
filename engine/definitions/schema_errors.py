"""Schema errors said in the file's terms, at the place in the file they are about.

pydantic reports ``('clocks', 'verification', 'pauses'), extra_forbidden, "Extra inputs are not
permitted"``; a policy author needs ``policies/sla/x.yaml:12:5: unknown key 'pauses' in clock
'verification'; allowed keys: duration, runs_in, ...``. This module does that translation: it walks
the error's path through the file to the deepest element that exists, names that element the way
the file does (clock 'verification', level 2 of ladder 'agency') and says what was expected, using
the schema models themselves to list the allowed keys. pydantic's own text (URLs, input reprs)
never reaches the user.
"""

from __future__ import annotations

from collections.abc import Sequence
from difflib import get_close_matches
from typing import Any, get_args, get_origin

from pydantic import BaseModel

from engine.definitions.schema import DURATION_TABLE_TAG, DURATION_TEXT_TAG, ITEM_NOUNS, Source
from engine.domain.errors import DefinitionError

__all__ = ["schema_error", "schema_errors", "type_name"]

_TAGS = (DURATION_TEXT_TAG, DURATION_TABLE_TAG)
_NAMED = {
    "states": "state",
    "transitions": "transition",
    "clocks": "clock",
    "ladders": "ladder",
    "agencies": "agency",
    "roles": "role",
}
_INDEXED = {"rules": "rule", "notify": "notification"}
_DICT_NOUNS = {
    "roles": "role name to description",
    "states": "state name to state",
    "transitions": "trigger name to transition",
    "clocks": "clock name to clock",
    "ladders": "ladder name to its list of levels",
    "agencies": "agency code to agency",
    "values": "field value to duration",
}
_NOT_BOOLEANS = {"yes", "no", "on", "off", "y", "n", "true", "false"}


def schema_errors(
    source: Source, root: type[BaseModel], errors: Sequence[Any]
) -> list[DefinitionError]:
    """pydantic's error entries (``ValidationError.errors()``) as ``DefinitionError``s.

    A misspelt key (``too: x`` for ``to: x``) is said once, as an unknown key with the suggestion,
    not a second time as the required key that is consequently missing.
    """
    misspelt = set()
    for error in errors:
        if error["type"] == "extra_forbidden":
            loc = _clean(error["loc"])
            close = _suggest(root, loc)
            if close:
                misspelt.add((*loc[:-1], close))
    return [
        schema_error(source, root, e)
        for e in errors
        if not (e["type"] == "missing" and _clean(e["loc"]) in misspelt)
    ]


def _clean(loc: Sequence[Any]) -> tuple[Any, ...]:
    return tuple(part for part in loc if part not in _TAGS)


def _suggest(root: type[BaseModel], loc: tuple[Any, ...]) -> str | None:
    close = get_close_matches(str(loc[-1]), _keys(_model_at(root, loc[:-1])), n=1)
    return close[0] if close else None


def schema_error(source: Source, root: type[BaseModel], error: Any) -> DefinitionError:
    """One pydantic error entry as a ``DefinitionError`` at the place in the file it is about."""
    loc = _clean(error["loc"])
    kind = error["type"]
    if kind == "extra_forbidden":
        allowed = _keys(_model_at(root, loc[:-1]))
        close = _suggest(root, loc)
        hint = f"; did you mean {close!r}?" if close else ""
        message = (
            f"unknown key {loc[-1]!r} {_in(loc[:-1])}; allowed keys: {', '.join(allowed)}{hint}"
        )
        return DefinitionError(message, location=source.where(loc, key=True))
    if kind == "missing":
        message = f"missing required key {loc[-1]!r} {_in(loc[:-1])}"
        return DefinitionError(message, location=source.where(loc[:-1], key=True))
    if kind == "value_error":
        message = f"{error['ctx']['error']} ({_describe(loc)})"
        return DefinitionError(message, location=source.where(loc))
    got = _got(error.get("input"))
    message = f"{_expected(root, loc, kind, error)}, got {got} ({_describe(loc)})"
    return DefinitionError(message, location=source.where(loc))


def _expected(root: type[BaseModel], loc: tuple[Any, ...], kind: str, error: Any) -> str:
    name = next((p for p in reversed(loc) if isinstance(p, str)), "")
    if kind == "list_type":
        noun = "levels" if loc[-2:-1] == ("ladders",) else ITEM_NOUNS.get(str(loc[-1]), "items")
        return f"expected a list of {noun}"
    if kind == "dict_type":
        return f"expected a mapping of {_DICT_NOUNS.get(name, 'names to values')}"
    if kind in ("model_type", "model_attributes_type"):
        return f"expected a mapping with keys {', '.join(_keys(_model_at(root, loc)))}"
    if kind == "bool_type":
        text = error.get("input")
        hint = ""
        if isinstance(text, str) and text.lower() in _NOT_BOOLEANS:
            hint = " (write true or false; yes/no/on/off are text here, not booleans)"
        return f"expected true or false{hint}"
    if kind == "string_type":
        if loc[-1:] in (("deadline",), ("duration",), ("default",)) or loc[-2:-1] == ("values",):
            return "expected a duration such as '3 working days'"
        value = error.get("input")
        if isinstance(value, (int, float)):  # bools too: `version: 2026.1`, `status: no`...
            return f'expected text (quote it: "{_got(value).split(" ", 1)[1]}")'
        return "expected text"
    if kind == "literal_error":
        return f"expected one of {error['ctx']['expected']}"
    if kind == "too_short":
        return f"expected at least {error['ctx']['min_length']} item"
    if kind == "duration_type":
        return str(error["msg"])
    return str(error["msg"]).replace("Input should be", "expected")


def _keys(model: type[BaseModel] | None) -> list[str]:
    if model is None:
        return []
    return [info.alias or name for name, info in model.model_fields.items()]


def _model_at(root: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The schema model that describes the element at ``loc`` (for listing its keys)."""
    current: list[Any] = [root]
    for part in loc:
        following: list[Any] = []
        for candidate in (c for tp in current for c in _members(tp)):
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                for name, info in candidate.model_fields.items():
                    if part in (name, info.alias):
                        following.append(info.annotation)
            elif get_origin(candidate) is dict:
                following.append(get_args(candidate)[1])
            elif get_origin(candidate) is list and isinstance(part, int):
                following.append(get_args(candidate)[0])
        current = following or current
    for candidate in (c for tp in current for c in _members(tp)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _members(tp: Any) -> list[Any]:
    """A type with ``Annotated`` and unions unwrapped into the plain types it allows."""
    args = get_args(tp)
    if hasattr(tp, "__metadata__"):  # Annotated[X, ...]
        return _members(args[0])
    if args and get_origin(tp) not in (list, dict):
        return [member for arg in args for member in _members(arg)]
    return [tp]


def type_name(value: Any) -> str:
    names = {bool: "boolean", int: "int", float: "float", str: "string", type(None): "null"}
    if isinstance(value, dict):
        return "mapping"
    if isinstance(value, list):
        return "list"
    return names.get(type(value), type(value).__name__)


def _got(value: Any) -> str:
    if isinstance(value, (dict, list)) or value is None:
        return f"a {type_name(value)}" if value is not None else "nothing (null)"
    shown = str(value).lower() if isinstance(value, bool) else repr(value)
    return f"{type_name(value)} {shown[:60]}"


def _context(loc: tuple[Any, ...]) -> tuple[list[str], bool]:
    """Phrases naming the element at ``loc``, innermost first; and if its last part was named."""
    phrases: list[str] = []
    index, named = 0, False
    while index < len(loc):
        part = loc[index]
        following = loc[index + 1] if index + 1 < len(loc) else None
        named = True
        if part in _NAMED and isinstance(following, str):
            phrase = f"{_NAMED[part]} {following!r}"
            index += 2
            if part == "ladders" and index < len(loc) and isinstance(loc[index], int):
                phrase = f"level {loc[index] + 1} of {phrase}"
                index += 1
            phrases.insert(0, phrase)
        elif part in _INDEXED and isinstance(following, int):
            phrases.insert(0, f"{_INDEXED[part]} {following + 1}")
            index += 2
        else:
            index, named = index + 1, False
    return phrases, named


def _in(loc: tuple[Any, ...]) -> str:
    phrases, named = _context(loc)
    if not loc:
        return "at the top level"
    if not named:
        return f"in {loc[-1]!r}" + (f" of {' of '.join(phrases)}" if phrases else "")
    return "in " + " of ".join(phrases)


def _describe(loc: tuple[Any, ...]) -> str:
    phrases, named = _context(loc)
    if named:
        return " of ".join(phrases)
    last = next((str(p) for p in reversed(loc) if isinstance(p, str)), "")
    item = f"item {loc[-1] + 1} of " if loc and isinstance(loc[-1], int) else ""
    return f"{item}key {last!r}" + (f" in {' of '.join(phrases)}" if phrases else "")
