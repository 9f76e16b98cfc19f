"""BPMN ``timeDuration`` text read as an ISO 8601 duration literal, never evaluated.

Camunda and Zeebe accept an expression there (``${duration}``, ``=duration``) and SpiffWorkflow
evaluates the text as Python (hence its quoted dialect, ``"PT1H"``). A BPMN file is untrusted
input, so only a literal is read, by hand: one pair of surrounding quotes is stripped as text,
then ``P[nW][nD][T[nH][nM][nS]]`` in that order, whole numbers of at most 9 digits.

A duration of whole days or weeks stays in calendar days (a deadline "in 3 days" is a date,
whatever the daylight-saving or leap-second arithmetic); as soon as a time part is present the
whole duration is calendar seconds, days counting 86,400 seconds. Months and years are refused:
their length depends on the start date, which a timer cannot know here.
"""

from __future__ import annotations

from typing import Final

__all__ = ["DurationError", "parse_timer_duration"]

MAX_DIGITS: Final = 9  # a billion of any unit is already decades; more is a typo or an attack
_DIGITS: Final = frozenset("0123456789")  # str.isdigit() also accepts "²" and other scripts
_DAYS_PER_UNIT: Final = {"W": 7, "D": 1}
_SECONDS_PER_UNIT: Final = {"H": 3_600, "M": 60, "S": 1}
_NOT_ISO: Final = "not an ISO 8601 duration such as PT2H or P3D"


class DurationError(ValueError):
    """A timer duration that is not read; ``reason`` is one clause for "timer X: <reason>"."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_timer_duration(text: str) -> tuple[int, str]:
    """``(amount, unit)`` for an ISO 8601 duration literal; unit is calendar days or seconds."""
    literal = _unquoted(text.strip()).strip()
    if not literal:
        raise DurationError("the duration is empty")
    if "${" in literal or "#{" in literal or literal.startswith("="):
        raise DurationError("expressions are not evaluated; write a literal duration such as PT2H")
    if "/" in literal:
        if literal[:1] in "Rr":
            raise DurationError("a timeCycle-style repetition is not a duration")
        raise DurationError("a date or interval is not a duration; write one such as PT2H")
    if literal.startswith(("-", "P-", "PT-")):
        raise DurationError("negative durations are not allowed")
    if not literal.startswith("P"):
        raise DurationError(_NOT_ISO)
    return _components(literal)


def _unquoted(text: str) -> str:
    # SpiffWorkflow writes the literal as a Python string; the quotes are dropped as characters.
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def _components(literal: str) -> tuple[int, str]:
    seconds = 0
    days = 0
    in_time = False
    seen_any = False
    seen_time = False
    order = "YMWD"  # Y and M are recognised only to refuse them with the reason
    last = -1
    position = 1
    while position < len(literal):
        if literal[position] == "T":
            if in_time:
                raise DurationError(_NOT_ISO)
            in_time, order, last = True, "HMS", -1
            position += 1
            continue
        end = position
        while end < len(literal) and literal[end] in _DIGITS:
            end += 1
        if end == position:
            if literal[position] == "-":
                raise DurationError("negative durations are not allowed")
            raise DurationError(_NOT_ISO)
        if end < len(literal) and literal[end] in ".,":  # ISO allows a comma as well
            raise DurationError("durations are whole seconds or days")
        if end - position > MAX_DIGITS:
            raise DurationError(f"a component has more than {MAX_DIGITS} digits")
        unit = literal[end : end + 1]
        index = order.find(unit) if unit else -1
        if index <= last:  # unknown designator, a repeated one, or one out of order
            raise DurationError(_NOT_ISO)
        if not in_time and unit in "YM":
            raise DurationError("months and years have no fixed length; use days")
        amount = int(literal[position:end])
        if in_time:
            seconds += amount * _SECONDS_PER_UNIT[unit]
            seen_time = True
        else:
            days += amount * _DAYS_PER_UNIT[unit]
        seen_any = True
        last = index
        position = end + 1
    if not seen_any or (in_time and not seen_time):  # "P", "PT" and "P1DT" say no amount
        raise DurationError(_NOT_ISO)
    if in_time:
        return days * 86_400 + seconds, "calendar_seconds"
    return days, "calendar_days"
