"""Guards: CEL expressions evaluated by the ``common-expression-language`` library, never Python.

A guard sees ``case`` (state, status, region, agency, escalation_level, data), ``data`` (the
signal's fields) and ``actor`` (role, id). Only the variables a guard reads are converted to CEL
values: building the whole context for every guard cost more than evaluating it.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import cel

from engine.domain.case import Case
from engine.domain.events import Actor

__all__ = ["evaluate_guard"]


@lru_cache(maxsize=512)
def _program(source: str) -> tuple[Any, frozenset[str]]:
    """The compiled guard and the variables it reads (only those are converted to CEL values)."""
    program = cel.compile(source)
    return program, frozenset(program.variables())


def evaluate_guard(
    source: str, case: Case, data: Mapping[str, Any], actor: Actor
) -> tuple[bool, str]:
    program, variables = _program(source)
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
