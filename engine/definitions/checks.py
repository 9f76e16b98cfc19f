"""Semantic checks: the mistakes a schema cannot see, each reported where it was made.

The schema has already vouched for every key and type; here we check what the names mean: that
every state, role, clock, ladder, transition and agency a file mentions exists, that the graph can
run (every state reachable, none a dead end, a final state within reach), that every SLA has a
lapse action that is actually possible where its clock runs, and that guards are CEL over the
three names the core provides. Each problem is a ``DefinitionError`` at the offending element,
naming the valid alternatives and, when one is close, the likely intended name.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Sequence
from difflib import get_close_matches
from typing import Any, TypeVar, cast

import cel
from pydantic import BaseModel

from engine.definitions.schema import (
    EscalationPolicy,
    Parsed,
    RoutingPolicy,
    SlaPolicy,
    WorkflowFile,
)
from engine.domain.calendar import REGION_ZONES
from engine.domain.errors import DefinitionError, Location
from engine.domain.guards import guard_cost_problem

__all__ = ["GUARD_FUNCTIONS", "GUARD_VARIABLES", "check_definitions", "check_guard", "unknown"]

# What core.py binds when it evaluates a guard; anything else would fail at run time, per case.
GUARD_VARIABLES = ("case", "data", "actor")
# The Rust CEL runtime's own library (core.py registers no Python functions, on purpose). Operators
# are reported by the compiler under internal names such as '_&&_' and '@in'; they are all allowed.
GUARD_FUNCTIONS = (
    "size", "int", "uint", "double", "string", "bytes", "timestamp", "duration", "dyn", "type",
    "contains", "startsWith", "endsWith", "matches", "getFullYear", "getMonth", "getDayOfYear",
    "getDayOfMonth", "getDate", "getDayOfWeek", "getHours", "getMinutes", "getSeconds",
    "getMilliseconds",
)  # fmt: skip
# The compiler lists type names (int(x) == int) and macro-bound names (xs.all(x, ...)) as variables.
# Recognising the latter by pattern is loose (the name is then allowed anywhere in the guard), but
# harmless: CEL cannot reach Python, and an unbound name only makes the guard fail at run time.
_TYPE_NAMES = frozenset({"int", "uint", "double", "bool", "string", "bytes", "list", "map", "type"})
_MACRO_BOUND = re.compile(r"\.\s*(?:all|exists|exists_one|map|filter)\s*\(\s*([A-Za-z_]\w*)\s*,")
_CEL_ERROR = re.compile(r"<input>:(\d+):(\d+): ([^\n]*)")
# Internal names of operators: _&&_, _==_, _[_], _?_:_, !_, -_, @in, @not_strictly_false.
_OPERATOR = re.compile(r"_[^\w\s]+_|_\[_\]|_\?_:_|!_|-_|@\w+")

S = TypeVar("S", bound=BaseModel)
KeyPath = tuple[str | int, ...]


def unknown(
    kind: str, name: object, context: str, choices: Iterable[str], *, plural: str = ""
) -> str:
    """``unknown state 'verifed' in transition 'verify'; states are: ...; did you mean ...?``"""
    options = list(choices)
    listed = ", ".join(options) if options else "(none defined)"
    where = f" in {context}" if context else ""
    message = f"unknown {kind} {name!r}{where}; {plural or kind + 's'} are: {listed}"
    close = get_close_matches(str(name), options, n=1) if options else []
    return f"{message}; did you mean {close[0]!r}?" if close else message


def check_guard(source: str) -> str | None:
    """Why ``source`` is not an acceptable guard, or ``None`` if it is."""
    costly = guard_cost_problem(source)
    if costly is not None:
        return costly
    try:
        program = cel.compile(source)
    except Exception as exc:  # the compiler signals ValueError; nothing it raises may escape
        found = _CEL_ERROR.search(str(exc))
        if found is None:
            return f"is not a valid CEL expression: {str(exc).splitlines()[0][:200]}"
        problem = re.sub(r" expecting \{[^}]*\}", "", found.group(3))
        return (
            f"is not a valid CEL expression: {problem} "
            f"(line {found.group(1)}, column {found.group(2)} of the expression)"
        )
    bound = set(_MACRO_BOUND.findall(source)) | _TYPE_NAMES
    for name in program.variables():
        if name not in GUARD_VARIABLES and name not in bound:
            return (
                f"uses unknown name {name!r}; a guard can only read "
                f"{', '.join(GUARD_VARIABLES)} (e.g. data.rating, case.agency, actor.role)"
            )
    for name in program.functions():
        if not _OPERATOR.fullmatch(name) and name not in GUARD_FUNCTIONS:
            close = get_close_matches(name, GUARD_FUNCTIONS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            return (
                f"calls unknown function {name!r}; guards may call only CEL's standard "
                f"functions: {', '.join(GUARD_FUNCTIONS)}{hint}"
            )
    return None


class _Report:
    def __init__(self) -> None:
        self.errors: list[DefinitionError] = []

    def add(self, message: str, location: Location) -> None:
        self.errors.append(DefinitionError(message, location=location))


def _select(policies: Sequence[Parsed[Any]], kind: type[S]) -> list[Parsed[S]]:
    return [cast(Parsed[S], p) for p in policies if isinstance(p.spec, kind)]


def _at(names: Sequence[str], path: KeyPath) -> Iterable[tuple[str, KeyPath]]:
    """Each name of a list-valued key with the path of its item."""
    for index, name in enumerate(names):
        yield name, (*path, index)


def check_definitions(
    workflow: Parsed[WorkflowFile] | None,
    policies: Sequence[Parsed[Any]],
    *,
    complete: bool = True,
) -> list[DefinitionError]:
    """Every semantic problem of one workflow and its policies.

    Either side may be missing when a subset of files is validated. ``complete`` says that the
    workflow and all its policies are here and valid, so references across files can be checked:
    a clock may not name a ladder no file defines, a transition may not restart a clock no file
    defines, and a ladder no clock climbs is dead weight. Without it those checks would report
    the files that were left out (or failed to load) as mistakes.
    """
    report = _Report()
    if workflow is not None:
        _check_workflow(report, workflow)
    slas = _select(policies, SlaPolicy)
    ladders = _select(policies, EscalationPolicy)
    routings = _select(policies, RoutingPolicy)
    for sla in slas[1:]:
        report.add(_second("sla", sla, slas[0]), sla.where(("policy",)))
    for routing in routings[1:]:
        report.add(_second("routing", routing, routings[0]), routing.where(("policy",)))
    for sla in slas:
        _check_sla(report, sla, workflow, ladders, complete)
    _check_ladders(report, ladders, workflow, slas, complete)
    for routing in routings:
        _check_routing(report, routing)
    if workflow is not None and complete:
        _check_restarts(report, workflow, slas)
    return report.errors


def _check_restarts(
    report: _Report, workflow: Parsed[WorkflowFile], slas: Sequence[Parsed[SlaPolicy]]
) -> None:
    clocks = [name for sla in slas for name in sla.spec.clocks]
    for name, transition in workflow.spec.transitions.items():
        for clock, path in _at(transition.restart, ("transitions", name, "restart")):
            if clock in clocks:
                continue
            message = unknown("clock", clock, f"restart of transition {name!r}", clocks)
            if not slas:
                message += f" (workflow {workflow.spec.workflow!r} has no sla policy)"
            report.add(message, workflow.where(path))


def _second(kind: str, extra: Parsed[Any], first: Parsed[Any]) -> str:
    return (
        f"a second {kind} policy for workflow {extra.spec.workflow!r}; the first is "
        f"{first.where(('policy',))}; keep one {kind} policy per workflow"
    )


# --- the workflow graph -----------------------------------------------------------------------


def _check_workflow(report: _Report, wf: Parsed[WorkflowFile]) -> None:
    spec = wf.spec
    states = list(spec.states)
    if spec.initial not in spec.states:
        report.add(unknown("state", spec.initial, "initial", states), wf.where(("initial",)))
    if not any(state.final for state in spec.states.values()):
        report.add(
            "no final state: mark at least one state `final: true` so a case can close",
            wf.where(("states",), key=True),
        )
    for name, state in spec.states.items():
        if state.outcome is not None and not state.final:
            report.add(
                f"state {name!r} has an outcome but is not final; outcomes are recorded when a "
                "case closes, so add `final: true` or remove the outcome",
                wf.where(("states", name, "outcome"), key=True),
            )
    edges: dict[str, set[str]] = {name: set() for name in states}
    dangling = False  # a transition naming an unknown state
    for trigger, t in spec.transitions.items():
        base: KeyPath = ("transitions", trigger)
        context = f"transition {trigger!r}"
        if not t.sources:
            report.add(f"transition {trigger!r} has no source state", wf.where((*base, "from")))
        for source, path in _at(t.sources, (*base, "from")):
            if source not in spec.states:
                report.add(unknown("state", source, context, states), wf.where(path))
                dangling = True
            elif spec.states[source].final:
                report.add(
                    f"transition {trigger!r} leaves final state {source!r}; a case in a final "
                    "state is closed, so remove it from `from` or make the state not final",
                    wf.where(path),
                )
            elif t.to in spec.states:
                edges[source].add(t.to)
        if t.to not in spec.states:
            report.add(unknown("state", t.to, context, states), wf.where((*base, "to")))
            dangling = True
        if not t.roles:
            report.add(f"transition {trigger!r} allows no role", wf.where((*base, "roles")))
        for role, path in _at(t.roles, (*base, "roles")):
            if role not in spec.roles:
                report.add(unknown("role", role, context, spec.roles), wf.where(path))
        if t.guard is not None:
            problem = check_guard(t.guard)
            if problem is not None:
                report.add(f"guard of transition {trigger!r} {problem}", wf.where((*base, "guard")))
    # With a misspelt state the graph misses an edge, and "unreachable" or "dead end" reports
    # about its neighbours would only echo the misspelling; fix names first, then judge the graph.
    if spec.initial in spec.states and not dangling:
        _check_graph(report, wf, edges)


def _reach(start: Iterable[str], edges: dict[str, set[str]]) -> set[str]:
    seen = set(start)
    todo = list(seen)
    while todo:
        for nxt in edges.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def _check_graph(report: _Report, wf: Parsed[WorkflowFile], edges: dict[str, set[str]]) -> None:
    spec = wf.spec
    reachable = _reach([spec.initial], edges)
    backwards: dict[str, set[str]] = {name: set() for name in edges}
    for source, targets in edges.items():
        for target in targets:
            backwards[target].add(source)
    can_finish = _reach([n for n, s in spec.states.items() if s.final], backwards)
    for name, state in spec.states.items():
        where = wf.where(("states", name), key=True)
        if name not in reachable:
            report.add(
                f"state {name!r} is unreachable from the initial state {spec.initial!r}: no "
                "chain of transitions leads to it; add a transition to it or remove it",
                where,
            )
        elif not state.final and not edges[name]:
            report.add(
                f"state {name!r} is a dead end: it is not final and no transition leaves it; "
                "add a transition from it or mark it `final: true`",
                where,
            )
        elif not state.final and can_finish and name not in can_finish:
            report.add(
                f"no final state can be reached from state {name!r}: every path from it loops "
                f"among {', '.join(sorted(_reach([name], edges)))}",
                where,
            )


# --- sla clocks -------------------------------------------------------------------------------


def _check_sla(
    report: _Report,
    sla: Parsed[SlaPolicy],
    workflow: Parsed[WorkflowFile] | None,
    ladder_files: Sequence[Parsed[EscalationPolicy]],
    complete: bool,
) -> None:
    spec = sla.spec
    if spec.national_region not in REGION_ZONES:
        report.add(
            unknown("region", spec.national_region, "national_region", REGION_ZONES),
            sla.where(("national_region",)),
        )
    ladders = [name for f in ladder_files for name in f.spec.ladders]
    wf = workflow.spec if workflow is not None else None
    for name, clock in spec.clocks.items():
        base: KeyPath = ("clocks", name)
        context = f"clock {name!r}"
        if wf is not None:
            for key in ("runs_in", "pauses_in"):
                for state, path in _at(getattr(clock, key), (*base, key)):
                    if state not in wf.states:
                        report.add(
                            unknown("state", state, f"{key} of {context}", wf.states),
                            sla.where(path),
                        )
        for state, path in _at(clock.pauses_in, (*base, "pauses_in")):
            if state in clock.runs_in:
                report.add(
                    f"state {state!r} is in both runs_in and pauses_in of {context}; "
                    "a clock either runs or pauses in a state",
                    sla.where(path),
                )
        if not isinstance(clock.duration, str) and wf is not None:
            fields = set(wf.intake.requires) | set(wf.intake.accepts)
            for t in wf.transitions.values():
                fields |= set(t.requires) | set(t.accepts)
            if clock.duration.by not in fields:
                report.add(
                    unknown("field", clock.duration.by, f"duration of {context}", sorted(fields))
                    + " (a duration is chosen by a field of the intake or of a transition)",
                    sla.where((*base, "duration", "by")),
                )
        lapse = clock.on_lapse
        if lapse is None:
            report.add(
                f"{context} has no lapse action: an SLA must say what happens when it lapses; "
                "add `on_lapse: {escalate: LADDER}` or `on_lapse: {fire: TRIGGER}`",
                sla.where(base, key=True),
            )
        elif lapse.escalate is not None:
            if complete and lapse.escalate not in ladders:
                message = unknown("ladder", lapse.escalate, f"on_lapse of {context}", ladders)
                if not ladder_files:
                    message += f" (workflow {spec.workflow!r} has no escalation policy)"
                report.add(message, sla.where((*base, "on_lapse", "escalate")))
        elif lapse.fire is not None and workflow is not None:
            problem = _fire_problem(
                workflow.spec, lapse.fire, clock.runs_in, f"on_lapse of {context}"
            )
            if problem is not None:
                report.add(problem, sla.where((*base, "on_lapse", "fire")))
            elif workflow.spec.transitions[lapse.fire].to in clock.runs_in:
                report.add(
                    f"on_lapse of {context} fires {lapse.fire!r}, whose target "
                    f"{workflow.spec.transitions[lapse.fire].to!r} is in the clock's runs_in, "
                    "so the clock would run again forever",
                    sla.where((*base, "on_lapse", "fire")),
                )


def _fire_problem(
    wf: WorkflowFile, trigger: str, states: Collection[str], context: str
) -> str | None:
    """Why the system cannot fire ``trigger`` in every one of ``states``, or ``None``."""
    if trigger not in wf.transitions:
        return unknown("transition", trigger, context, wf.transitions)
    t = wf.transitions[trigger]
    missing = [s for s in states if s not in t.sources]
    if missing:
        # The lapse can happen in any state the clock runs in; a fire refused there would leave
        # the case stuck with a lapsed clock and nothing to do.
        return (
            f"{context} fires transition {trigger!r}, which is not allowed from "
            f"{', '.join(map(repr, missing))} where the clock runs (its from: "
            f"{', '.join(t.sources)}); add those states to its from"
        )
    if "system" not in t.roles:
        return (
            f"{context} fires transition {trigger!r}, which the system role may not send "
            f"(roles: {', '.join(t.roles)}); add system to its roles"
        )
    return None


# --- escalation ladders -----------------------------------------------------------------------


def _check_ladders(
    report: _Report,
    files: Sequence[Parsed[EscalationPolicy]],
    workflow: Parsed[WorkflowFile] | None,
    slas: Sequence[Parsed[SlaPolicy]],
    complete: bool,
) -> None:
    first_seen: dict[str, Location] = {}
    for f in files:
        for name in f.spec.ladders:
            where = f.where(("ladders", name), key=True)
            if name in first_seen:
                report.add(f"ladder {name!r} is defined twice (first at {first_seen[name]})", where)
                continue
            first_seen[name] = where
            _check_levels(report, f, name, workflow, slas)
            if complete and not any(
                c.on_lapse is not None and c.on_lapse.escalate == name
                for s in slas
                for c in s.spec.clocks.values()
            ):
                report.add(f"ladder {name!r} is not used by any clock", where)


def _check_levels(
    report: _Report,
    f: Parsed[EscalationPolicy],
    name: str,
    workflow: Parsed[WorkflowFile] | None,
    slas: Sequence[Parsed[SlaPolicy]],
) -> None:
    levels = f.spec.ladders[name]
    context = f"ladder {name!r}"
    if not levels:
        message = f"{context} has no levels; give it at least one, the last `final: true`"
        report.add(message, f.where(("ladders", name)))
        return
    # The states in which a clock climbing this ladder can lapse, so a fire must be possible there.
    running = sorted(
        {
            state
            for s in slas
            for c in s.spec.clocks.values()
            if c.on_lapse is not None and c.on_lapse.escalate == name
            for state in c.runs_in
        }
    )
    for index, level in enumerate(levels):
        base: KeyPath = ("ladders", name, index)
        here = f"level {index + 1} of {context}"
        last = index == len(levels) - 1
        if level.final and not last:
            report.add(
                f"{here} is final but is not the last level, so the levels after it are never "
                "reached; only the last level is `final: true`",
                f.where((*base, "final")),
            )
        if not level.final and level.deadline is None and not last:
            report.add(
                f"{here} has no deadline: a level that is not final needs one, e.g. "
                "`deadline: 2 working days`",
                f.where(base),
            )
        if last and not level.final:
            report.add(
                f"{context} never reaches a final level: mark its last level `final: true`",
                f.where(base),
            )
        if level.fire is not None and workflow is not None:
            problem = _fire_problem(workflow.spec, level.fire, running, here)
            if problem is not None:
                report.add(problem, f.where((*base, "fire")))


# --- routing --------------------------------------------------------------------------------


def _check_routing(report: _Report, routing: Parsed[RoutingPolicy]) -> None:
    spec = routing.spec
    for code, agency in spec.agencies.items():
        if agency.region not in REGION_ZONES:
            report.add(
                unknown("region", agency.region, f"agency {code!r}", REGION_ZONES),
                routing.where(("agencies", code, "region")),
            )
    seen: dict[tuple[str, str], int] = {}
    for index, rule in enumerate(spec.rules):
        base: KeyPath = ("rules", index)
        context = f"routing rule {index + 1}"
        if rule.region != "*" and rule.region not in REGION_ZONES:
            report.add(
                unknown("region", rule.region, context, ["*", *REGION_ZONES]),
                routing.where((*base, "region")),
            )
        if rule.agency not in spec.agencies:
            report.add(
                unknown("agency", rule.agency, context, spec.agencies, plural="agencies"),
                routing.where((*base, "agency")),
            )
        key = (rule.category, rule.region)
        if key in seen:
            report.add(
                f"{context} repeats category {rule.category!r} and region {rule.region!r} of "
                f"rule {seen[key] + 1}, so which agency wins would be arbitrary",
                routing.where(base),
            )
        seen.setdefault(key, index)
