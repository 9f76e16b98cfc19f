"""Compiling validated definition files into the immutable model (IR) the core runs on.

Only called on files that passed the schema and the semantic checks, so it can trust every name.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import MappingProxyType

from engine.definitions.schema import (
    DurationTable,
    EscalationPolicy,
    PolicySpec,
    RoutingPolicy,
    SlaPolicy,
    TransitionSpec,
    WorkflowFile,
)
from engine.domain.calendar import Duration, WorkingCalendar
from engine.domain.model import (
    Agency,
    Clock,
    ClockDuration,
    EscalationLadder,
    EscalationLevel,
    Model,
    Notification,
    RoutingRule,
    RoutingTable,
    State,
    Transition,
)

__all__ = ["compile_model"]


def _duration(text: str | None) -> Duration | None:
    return None if text is None else Duration.parse(text)


def compile_model(
    wf: WorkflowFile, policies: Sequence[PolicySpec], calendar: WorkingCalendar
) -> Model:
    """The immutable ``Model`` of a workflow and its policies, which must have passed the checks.

    Every mapping becomes a ``MappingProxyType`` and every list a tuple, so nothing downstream
    can change a model whose hash a case has pinned.
    """
    slas = [p for p in policies if isinstance(p, SlaPolicy)]
    routing = next((p for p in policies if isinstance(p, RoutingPolicy)), None)
    clocks: list[Clock] = []
    for sla in slas:
        for name, c in sla.clocks.items():
            if isinstance(c.duration, DurationTable):
                values = tuple((v, Duration.parse(d)) for v, d in c.duration.values.items())
                duration = ClockDuration(_duration(c.duration.default), c.duration.by, values)
            else:
                duration = ClockDuration(_duration(c.duration))
            lapse = c.on_lapse
            clocks.append(
                Clock(
                    name=name,
                    duration=duration,
                    runs_in=tuple(c.runs_in),
                    pauses_in=tuple(c.pauses_in),
                    escalate=lapse.escalate if lapse else None,
                    fire=lapse.fire if lapse else None,
                    region=c.region,
                )
            )
    ladders = {
        name: EscalationLadder(
            name,
            tuple(
                EscalationLevel(
                    level=number,
                    to=level.to,
                    deadline=_duration(level.deadline),
                    final=level.final,
                    fire=level.fire,
                    notify=level.notify,
                    source=level.source,
                )
                for number, level in enumerate(levels, start=1)
            ),
        )
        for p in policies
        if isinstance(p, EscalationPolicy)
        for name, levels in p.ladders.items()
    }
    table = RoutingTable()
    if routing is not None:
        table = RoutingTable(
            agencies=MappingProxyType(
                {code: Agency(code, a.name, a.region) for code, a in routing.agencies.items()}
            ),
            rules=tuple(RoutingRule(r.category, r.region, r.agency) for r in routing.rules),
        )
    return Model(
        name=wf.workflow,
        version=wf.version,
        title=wf.title,
        roles=MappingProxyType(dict(wf.roles)),
        initial=wf.initial,
        states=MappingProxyType(
            {n: State(n, s.status, s.final, s.outcome, s.description) for n, s in wf.states.items()}
        ),
        transitions=MappingProxyType({n: _transition(n, t) for n, t in wf.transitions.items()}),
        intake_requires=tuple(wf.intake.requires),
        intake_accepts=tuple(wf.intake.accepts),
        intake_notify=tuple(Notification(n.to, n.template) for n in wf.intake.notify),
        clocks=tuple(clocks),
        ladders=MappingProxyType(ladders),
        routing=table,
        calendar=calendar,
        national_region=slas[0].national_region if slas else "ID-JK",
    )


def _transition(trigger: str, t: TransitionSpec) -> Transition:
    return Transition(
        trigger=trigger,
        sources=tuple(t.sources),
        target=t.to,
        roles=tuple(t.roles),
        requires=tuple(t.requires),
        accepts=tuple(t.accepts),
        guard=t.guard,
        guard_message=t.guard_message,
        route=t.route,
        restart=tuple(t.restart),
        notify=tuple(Notification(n.to, n.template) for n in t.notify),
        description=t.description,
    )
