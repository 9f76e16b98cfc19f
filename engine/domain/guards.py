"""Guards: CEL expressions evaluated by the ``common-expression-language`` library, never Python.

A guard sees ``case`` (state, status, region, agency, escalation_level, data), ``data`` (the
signal's fields) and ``actor`` (role, id). Only the variables a guard reads are converted to CEL
values: building the whole context for every guard cost more than evaluating it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import cel

from engine.domain.case import Case
from engine.domain.events import Actor

__all__ = ["MAX_GUARD_LENGTH", "MAX_MACROS", "evaluate_guard", "guard_cost_problem"]

MAX_GUARD_LENGTH = 1000
MAX_MACROS = 4
_MACRO_CALL = re.compile(r"\.\s*(?:all|exists_one|exists|map|filter)\s*\(")
_STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'')


def guard_cost_problem(source: str) -> str | None:
    """Why evaluating ``source`` could cost without bound, or ``None``.

    A comprehension macro (``all``, ``exists``, ``exists_one``, ``map``, ``filter``) inside
    another one multiplies: over two lists of 500 entries (the most a data field holds) one
    evaluation took 7 s, and deeper nesting took minutes while the case's write lock was held.
    One level of macros, a few of them, and a bounded length keep every guard cheap.
    """
    if len(source) > MAX_GUARD_LENGTH:
        return f"is {len(source)} characters long; at most {MAX_GUARD_LENGTH}"
    text = _STRING.sub('""', source)
    depth, macros = 0, 0
    opened: list[int] = []  # the paren depth at which each open macro began
    position = 0
    while position < len(text):
        call = _MACRO_CALL.match(text, position)
        if call is not None:
            depth += 1
            macros += 1
            if opened:
                return (
                    "nests a comprehension macro inside another (all/exists/map/filter); its "
                    "cost would multiply with the data: give each its own condition"
                )
            opened.append(depth)
            position = call.end()
            continue
        char = text[position]
        if char == "(":
            depth += 1
        elif char == ")":
            if opened and opened[-1] == depth:
                opened.pop()
            depth -= 1
        position += 1
    if macros > MAX_MACROS:
        return f"uses {macros} comprehension macros; at most {MAX_MACROS}"
    return None


@lru_cache(maxsize=512)
def _program(source: str) -> tuple[Any, frozenset[str]]:
    """The compiled guard and the variables it reads (only those are converted to CEL values)."""
    problem = guard_cost_problem(source)
    if problem is not None:  # a model stored before the rule: refused here, per evaluation
        raise ValueError(f"the guard {problem}")
    program = cel.compile(source)
    return program, frozenset(program.variables())


def evaluate_guard(
    source: str, case: Case, data: Mapping[str, Any], actor: Actor
) -> tuple[bool, str]:
    try:
        program, variables = _program(source)
    except ValueError as exc:
        return False, f" (not evaluated: {exc})"
    context: dict[str, Any] = {}
    if "case" in variables:
        case_view: dict[str, Any] = {
            "state": case.state,
            "status": case.status,
            "region": case.region,
            "escalation_level": case.escalation_level,
            "data": dict(case.data),
        }
        if case.agency is not None:
            case_view["agency"] = case.agency
        context["case"] = case_view
    if "data" in variables:
        context["data"] = dict(data)
    if "actor" in variables:
        context["actor"] = {"role": actor.role, "id": actor.id}
    try:
        result = program.execute(context)
    except (ArithmeticError, KeyError, TypeError, ValueError, RuntimeError) as exc:
        # Data the guard cannot work with (a division by a field that is 0, a missing key):
        # the guard does not hold, and the reason says why; never the caller's traceback.
        return False, f" (could not evaluate: {type(exc).__name__}: {exc})"
    if not isinstance(result, bool):
        return False, f" (guard gave {type(result).__name__}, not true/false)"
    return result, ""
