"""A workflow and its policies as a BPMN 2.0 file that opens, laid out, in bpmn.io and Camunda
Modeler, and reads back (``reader``) into the same model.

The drawing follows the reader's mapping: each state a user task in the lane of the role that
acts on it (final states are end events), a join gateway before a state several transitions
enter, an exclusive gateway after a state with a choice of signals (one branch each), each SLA
clock a timer on every state it runs in (interrupting when its lapse fires a transition,
non-interrupting when it climbs a ladder), each ladder a chain of escalation events and rung
deadlines in the engine's lane, and each transition a rung fires an interrupting escalation
boundary. What BPMN cannot say (status labels, fields, CEL guards, working-day durations,
routing) is written in the ``lapor:`` extension, which the reader prefers when present.

The layout is a small layered one: a column per step of the flow from the start event, a band
per lane, the ladders in the engine's band.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from lxml import etree

from engine.definitions.bpmn.reader import BPMN, LAPOR
from engine.definitions.schema import (
    DurationTable,
    EscalationPolicy,
    PolicySpec,
    RoutingPolicy,
    SlaPolicy,
    TransitionSpec,
    WorkflowFile,
)
from engine.domain.calendar import Duration

__all__ = ["write_bpmn"]

BPMNDI = "http://www.omg.org/spec/BPMN/20100524/DI"
DC = "http://www.omg.org/spec/DD/20100524/DC"
DI = "http://www.omg.org/spec/DD/20100524/DI"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
SIGNAL_LANGUAGE = "https://lapor-sla.dev/bpmn/signal"
_NSMAP = {"bpmn": BPMN, "bpmndi": BPMNDI, "dc": DC, "di": DI, "xsi": XSI, "lapor": LAPOR}

TASK = (120, 80)
GATEWAY = (50, 50)
EVENT = (36, 36)
COLUMN = 200
ROW = 130
LANE_LABEL = 30
MARGIN = 40


def _q(ns: str, name: str) -> str:
    return f"{{{ns}}}{name}"


def _iso(duration: Duration) -> str:
    """An ISO 8601 approximation for engines without working time (the lapor: attribute is
    exact): a working day as a day, a working hour as an hour."""
    unit, n = duration.unit, duration.amount
    if unit in ("working_days", "calendar_days"):
        return f"P{n}D"
    if unit == "working_hours":
        return f"PT{n}H"
    return f"PT{n}S"


@dataclass
class _Shape:
    id: str
    kind: str  # task, gateway, event
    lane: str
    column: float
    row: int = 0
    x: float = 0
    y: float = 0

    @property
    def size(self) -> tuple[int, int]:
        return {"task": TASK, "gateway": GATEWAY}.get(self.kind, EVENT)

    @property
    def right(self) -> tuple[float, float]:
        return self.x + self.size[0], self.y + self.size[1] / 2

    @property
    def left(self) -> tuple[float, float]:
        return self.x, self.y + self.size[1] / 2

    @property
    def bottom(self) -> tuple[float, float]:
        return self.x + self.size[0] / 2, self.y + self.size[1]


@dataclass
class _Writer:
    workflow: WorkflowFile
    sla: SlaPolicy | None
    escalation: EscalationPolicy | None
    routing: RoutingPolicy | None
    shapes: dict[str, _Shape] = field(default_factory=dict)
    edges: list[tuple[str, str, str]] = field(default_factory=list)  # flow id, source, target
    boundaries: list[tuple[str, str, int]] = field(default_factory=list)  # id, host, slot
    counts: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.process = etree.Element(_q(BPMN, "process"))
        self.flows: list[etree._Element] = []

    # --- elements -----------------------------------------------------------------------------

    def node(self, kind: str, key: str, name: str | None = None) -> etree._Element:
        element = etree.SubElement(self.process, _q(BPMN, kind), id=key)
        if name:
            element.set("name", name)
        return element

    def flow(self, source: str, target: str, name: str | None = None) -> etree._Element:
        number = self.counts.get("flow", 0) + 1
        self.counts["flow"] = number
        key = f"flow_{number}"
        element = etree.Element(
            _q(BPMN, "sequenceFlow"), id=key, sourceRef=source, targetRef=target
        )
        if name:
            element.set("name", name)
        self.flows.append(element)
        self.edges.append((key, source, target))
        return element

    def lapor(self, element: etree._Element, kind: str, **attributes: str) -> etree._Element:
        extensions = element.find(_q(BPMN, "extensionElements"))
        if extensions is None:
            extensions = etree.Element(_q(BPMN, "extensionElements"))
            documentation = element.find(_q(BPMN, "documentation"))
            element.insert(0 if documentation is None else 1, extensions)
        return etree.SubElement(
            extensions, _q(LAPOR, kind), {k: v for k, v in attributes.items() if v != ""}
        )

    # --- the model ----------------------------------------------------------------------------

    def lane_of(self, state: str) -> str:
        """The role that acts on a state most (ties: the first in the file), else the role of
        the transitions that enter it; the engine's own role only when no other acts."""
        transitions = self.workflow.transitions.values()
        counts = Counter(r for t in transitions if state in t.sources for r in t.roles) or Counter(
            r for t in transitions if t.to == state for r in t.roles
        )
        human = Counter({r: n for r, n in counts.items() if r != "system"}) or counts
        if not human:
            return next(iter(self.workflow.roles), "system")
        order = list(self.workflow.roles)
        return max(human, key=lambda r: (human[r], -order.index(r) if r in order else 0))

    def entry(self, state: str) -> str:
        """Where a flow into ``state`` ends: its join gateway when several flows enter it."""
        return f"{state}__join" if state in self.joins else state

    def write(self) -> etree._Element:
        wf = self.workflow
        self.process.set("id", f"process_{wf.workflow}")
        self.process.set("name", wf.title)
        self.process.set("isExecutable", "true")
        self._extensions()
        columns = self._columns()
        human = {n: t for n, t in wf.transitions.items() if "system" not in t.roles}
        entering: dict[str, int] = {wf.initial: 1}
        for t in wf.transitions.values():
            entering[t.to] = entering.get(t.to, 0) + len(t.sources)
        self.joins = {s for s, n in entering.items() if n > 1}
        self.node("startEvent", "start", "Report received")
        self.place("start", "event", self.lane_of(wf.initial), -1)
        self.flow("start", self.entry(wf.initial))
        for name, state in wf.states.items():
            lane = self.lane_of(name)
            if state.final:
                element = self.node("endEvent", name, state.status)
                self.place(name, "event", lane, columns.get(name, 0))
            else:
                element = self.node("userTask", name, state.status)
                self.place(name, "task", lane, columns.get(name, 0))
            attributes = {"name": name, "status": state.status}
            if state.final:
                attributes["final"] = "true"
                attributes["outcome"] = state.outcome or ""
            if state.description:
                documentation = etree.Element(_q(BPMN, "documentation"))
                documentation.text = state.description
                element.insert(0, documentation)
                attributes["description"] = state.description
            self.lapor(element, "state", **attributes)
            if name in self.joins:
                self.node("exclusiveGateway", f"{name}__join")
                self.place(f"{name}__join", "gateway", lane, columns.get(name, 0) - 0.45)
                self.flow(f"{name}__join", name)
            if state.final:
                continue
            leaving = [(n, t) for n, t in human.items() if name in t.sources]
            if len(leaving) == 1:
                trigger, spec = leaving[0]
                self.transition(self.flow(name, self.entry(spec.to)), trigger, spec)
            elif leaving:
                choice = f"{name}__choose"
                self.node("exclusiveGateway", choice, "signal?")
                self.place(choice, "gateway", lane, columns.get(name, 0) + 0.55)
                self.flow(name, choice)
                for trigger, spec in leaving:
                    branch = self.flow(choice, self.entry(spec.to), trigger)
                    condition = etree.SubElement(
                        branch,
                        _q(BPMN, "conditionExpression"),
                        {_q(XSI, "type"): "bpmn:tFormalExpression", "language": SIGNAL_LANGUAGE},
                    )
                    condition.text = trigger
                    self.transition(branch, trigger, spec)
        self._clocks()
        self._ladders(max(columns.values(), default=0))
        for element in self.flows:
            self.process.append(element)
        self._link_flows()
        return self.process

    def transition(self, flow: etree._Element, trigger: str, spec: TransitionSpec) -> None:
        if spec.description:
            documentation = etree.Element(_q(BPMN, "documentation"))
            documentation.text = spec.description
            flow.insert(0, documentation)
        attributes = {
            "name": trigger,
            "from": " ".join(spec.sources),
            "roles": " ".join(spec.roles),
            "requires": " ".join(spec.requires),
            "accepts": " ".join(spec.accepts),
            "guard": spec.guard or "",
            "guardMessage": spec.guard_message or "",
            "route": "true" if spec.route else "",
            "restart": " ".join(spec.restart),
            "description": spec.description,
        }
        element = self.lapor(flow, "transition", **attributes)
        for note in spec.notify:
            etree.SubElement(element, _q(LAPOR, "notify"), to=note.to, template=note.template)

    def _extensions(self) -> None:
        wf = self.workflow
        workflow = self.lapor(self.process, "workflow", name=wf.workflow, version=wf.version)
        for role, description in wf.roles.items():
            etree.SubElement(workflow, _q(LAPOR, "role"), name=role, description=description)
        intake = self.lapor(
            self.process,
            "intake",
            requires=" ".join(wf.intake.requires),
            accepts=" ".join(wf.intake.accepts),
        )
        for note in wf.intake.notify:
            etree.SubElement(intake, _q(LAPOR, "notify"), to=note.to, template=note.template)
        if self.sla is not None:
            self.lapor(
                self.process,
                "sla",
                policy=self.sla.policy,
                calendar=self.sla.calendar,
                nationalRegion=self.sla.national_region,
                clocks=" ".join(self.sla.clocks),
            )
        if self.escalation is not None:
            self.lapor(
                self.process,
                "escalation",
                policy=self.escalation.policy,
                ladders=" ".join(self.escalation.ladders),
            )
        if self.routing is not None:
            routing = self.lapor(self.process, "routing", policy=self.routing.policy)
            for code, agency in self.routing.agencies.items():
                etree.SubElement(
                    routing, _q(LAPOR, "agency"), code=code, name=agency.name, region=agency.region
                )
            for rule in self.routing.rules:
                etree.SubElement(
                    routing,
                    _q(LAPOR, "rule"),
                    category=rule.category,
                    region=rule.region,
                    agency=rule.agency,
                )

    def _columns(self) -> dict[str, float]:
        """A column per step from the initial state (breadth first), unreached states last."""
        wf = self.workflow
        columns = {wf.initial: 0.0}
        frontier = [wf.initial]
        while frontier:
            following: list[str] = []
            for state in frontier:
                for t in wf.transitions.values():
                    if state in t.sources and t.to not in columns:
                        columns[t.to] = columns[state] + 1
                        following.append(t.to)
            frontier = following
        last = max(columns.values(), default=0)
        for state in wf.states:
            columns.setdefault(state, last + 1)
        return columns

    # --- clocks and ladders -------------------------------------------------------------------

    def _clocks(self) -> None:
        if self.sla is None:
            return
        fired = self._rung_fires()
        for name, clock in self.sla.clocks.items():
            lapse = clock.on_lapse
            for state in clock.runs_in:
                key = f"{name}__{state}"
                boundary = self.node("boundaryEvent", key, name.replace("_", " "))
                boundary.set("attachedToRef", state)
                boundary.set(_q(LAPOR, "clock"), name)
                if lapse is None or lapse.fire is None:
                    boundary.set("cancelActivity", "false")
                definition = etree.SubElement(boundary, _q(BPMN, "timerEventDefinition"))
                self._duration(definition, clock.duration)
                definition.set(_q(LAPOR, "region"), clock.region)
                definition.set(_q(LAPOR, "runsIn"), " ".join(clock.runs_in))
                if clock.pauses_in:
                    definition.set(_q(LAPOR, "pausesIn"), " ".join(clock.pauses_in))
                self.boundaries.append((key, state, self._slot(state)))
                if lapse is not None and lapse.fire is not None:
                    spec = self.workflow.transitions[lapse.fire]
                    target = self.entry(spec.to)
                    self.transition(self.flow(key, target), lapse.fire, spec)
                elif lapse is not None and lapse.escalate is not None:
                    self.flow(key, self.ladder_entry(lapse.escalate))
        for trigger, code in fired.items():
            spec = self.workflow.transitions[trigger]
            for state in spec.sources:
                key = f"{trigger}__{state}"
                boundary = self.node("boundaryEvent", key, code.replace("_", " "))
                boundary.set("attachedToRef", state)
                etree.SubElement(
                    boundary, _q(BPMN, "escalationEventDefinition"), escalationRef=f"esc_{code}"
                )
                self.boundaries.append((key, state, self._slot(state)))
                self.transition(self.flow(key, self.entry(spec.to)), trigger, spec)

    def ladder_entry(self, ladder: str) -> str:
        """A merge gateway when several timers climb the ladder, else its first rung."""
        if self.climbers.get(ladder, 0) > 1:
            return f"{ladder}__ladder"
        assert self.escalation is not None
        return f"{ladder}__1__{self.escalation.ladders[ladder][0].to}"

    @property
    def climbers(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        if self.sla is not None:
            for clock in self.sla.clocks.values():
                if clock.on_lapse is not None and clock.on_lapse.escalate is not None:
                    name = clock.on_lapse.escalate
                    counts[name] = counts.get(name, 0) + len(clock.runs_in)
        return counts

    def _slot(self, state: str) -> int:
        return sum(1 for _, host, _ in self.boundaries if host == state)

    def _rung_fires(self) -> dict[str, str]:
        """Transition -> the escalation code of the final rung that fires it."""
        fires: dict[str, str] = {}
        if self.escalation is not None:
            for levels in self.escalation.ladders.values():
                for level in levels:
                    if level.fire:
                        fires.setdefault(level.fire, level.to)
        return fires

    def _duration(self, definition: etree._Element, duration: str | DurationTable) -> None:
        text = duration.default if isinstance(duration, DurationTable) else duration
        definition.set(_q(LAPOR, "duration"), text)
        if isinstance(duration, DurationTable):
            definition.set(_q(LAPOR, "durationBy"), duration.by)
            extensions = etree.SubElement(definition, _q(BPMN, "extensionElements"))
            for value, choice in duration.values.items():
                etree.SubElement(extensions, _q(LAPOR, "case"), value=value, duration=choice)
        iso = etree.SubElement(
            definition, _q(BPMN, "timeDuration"), {_q(XSI, "type"): "bpmn:tFormalExpression"}
        )
        iso.text = _iso(Duration.parse(text))

    def _ladders(self, last_column: float) -> None:
        if self.escalation is None:
            return
        # Below whatever else sits in the engine's band (final states it moves cases to).
        below = max((s.row for s in self.shapes.values() if s.lane == "system"), default=-1) + 1
        for offset, (name, levels) in enumerate(self.escalation.ladders.items()):
            row = below + offset
            previous: str | None = None
            column = 1.0
            if self.climbers.get(name, 0) > 1:
                previous = f"{name}__ladder"
                gateway = self.node("exclusiveGateway", previous, f"ladder {name}")
                self.lapor(gateway, "ladder", name=name)
                self.place(previous, "gateway", "system", 0, row)
            for number, level in enumerate(levels, start=1):
                key = f"{name}__{number}__{level.to}"
                final = level.final or level.deadline is None
                kind = "endEvent" if final else "intermediateThrowEvent"
                event = self.node(kind, key, level.to.replace("_", " "))
                etree.SubElement(
                    event, _q(BPMN, "escalationEventDefinition"), escalationRef=f"esc_{level.to}"
                )
                self.lapor(
                    event,
                    "rung",
                    notify=level.notify,
                    source=level.source,
                    fire=level.fire or "",
                )
                if previous is None:
                    self.lapor(event, "ladder", name=name)
                self.place(key, "event", "system", column, row)
                if previous is not None:
                    self.flow(previous, key)
                previous, column = key, column + 0.7
                if final:
                    break
                assert level.deadline is not None
                wait = f"{name}__{number}__deadline"
                timer = self.node("intermediateCatchEvent", wait, level.deadline)
                definition = etree.SubElement(timer, _q(BPMN, "timerEventDefinition"))
                self._duration(definition, level.deadline)
                self.place(wait, "event", "system", column, row)
                self.flow(previous, wait)
                previous, column = wait, column + 0.7

    def escalation_codes(self) -> list[str]:
        codes: list[str] = []
        if self.escalation is not None:
            for levels in self.escalation.ladders.values():
                codes.extend(level.to for level in levels if level.to not in codes)
        return codes

    # --- incoming/outgoing children, as modelers write them -----------------------------------

    def _link_flows(self) -> None:
        by_id = {e.get("id"): e for e in self.process if e.get("id")}
        for key, source, target in self.edges:
            for end, tag in ((source, "outgoing"), (target, "incoming")):
                element = by_id[end]
                child = etree.Element(_q(BPMN, tag))
                child.text = key
                # After documentation/extensionElements, before the event definitions.
                position = sum(
                    1
                    for c in element
                    if etree.QName(c).localname
                    in ("documentation", "extensionElements", "incoming", "outgoing")
                )
                element.insert(position, child)

    # --- layout -------------------------------------------------------------------------------

    def place(self, key: str, kind: str, lane: str, column: float, row: int = -1) -> None:
        if row < 0:
            taken = [s.row for s in self.shapes.values() if s.lane == lane and s.column == column]
            row = max(taken, default=-1) + 1
        self.shapes[key] = _Shape(key, kind, lane, column, row)

    def lanes(self) -> list[str]:
        ordered = [r for r in self.workflow.roles if r != "system"]
        used = {s.lane for s in self.shapes.values()}
        return [r for r in ordered if r in used] + (["system"] if "system" in used else [])


def write_bpmn(workflow: WorkflowFile, policies: Sequence[PolicySpec]) -> bytes:
    """The BPMN 2.0 XML (UTF-8) of ``workflow`` with its policies, diagram included."""
    writer = _Writer(
        workflow,
        next((p for p in policies if isinstance(p, SlaPolicy)), None),
        next((p for p in policies if isinstance(p, EscalationPolicy)), None),
        next((p for p in policies if isinstance(p, RoutingPolicy)), None),
    )
    process = writer.write()
    definitions = etree.Element(
        _q(BPMN, "definitions"),
        nsmap=_NSMAP,
        id=f"definitions_{workflow.workflow}",
        targetNamespace=f"https://lapor-sla.dev/workflows/{workflow.workflow}",
        exporter="lapor-sla",
        exporterVersion="1",
    )
    for code in writer.escalation_codes():
        etree.SubElement(
            definitions, _q(BPMN, "escalation"), id=f"esc_{code}", name=code, escalationCode=code
        )
    collaboration = etree.SubElement(definitions, _q(BPMN, "collaboration"), id="collaboration")
    etree.SubElement(
        collaboration,
        _q(BPMN, "participant"),
        id="participant",
        name=workflow.title,
        processRef=process.get("id") or "",
    )
    lane_set = etree.Element(_q(BPMN, "laneSet"), id="lanes")
    lanes = writer.lanes()
    for role in lanes:
        lane = etree.SubElement(
            lane_set, _q(BPMN, "lane"), id=f"lane_{role}", name=workflow.roles.get(role, role)
        )
        for shape in writer.shapes.values():
            if shape.lane == role:
                ref = etree.SubElement(lane, _q(BPMN, "flowNodeRef"))
                ref.text = shape.id
        for key, host, _ in writer.boundaries:
            if writer.shapes[host].lane == role:
                ref = etree.SubElement(lane, _q(BPMN, "flowNodeRef"))
                ref.text = key
    process.insert(1 if process.find(_q(BPMN, "extensionElements")) is not None else 0, lane_set)
    definitions.append(process)
    _diagram(definitions, writer, lanes)
    return etree.tostring(definitions, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def _diagram(definitions: etree._Element, writer: _Writer, lanes: list[str]) -> None:
    heights: dict[str, float] = {}
    for role in lanes:
        rows = max((s.row for s in writer.shapes.values() if s.lane == role), default=0) + 1
        heights[role] = rows * ROW + 40
    min_column = min((s.column for s in writer.shapes.values()), default=0)
    top: float = MARGIN
    lane_top: dict[str, float] = {}
    for role in lanes:
        lane_top[role] = top
        top += heights[role]
    for shape in writer.shapes.values():
        width, height = shape.size
        center_x = MARGIN + LANE_LABEL + 60 + (shape.column - min_column) * COLUMN + TASK[0] / 2
        center_y = lane_top[shape.lane] + 20 + shape.row * ROW + TASK[1] / 2
        shape.x, shape.y = center_x - width / 2, center_y - height / 2
    right = max((s.x + s.size[0] for s in writer.shapes.values()), default=400) + 80
    diagram = etree.SubElement(definitions, _q(BPMNDI, "BPMNDiagram"), id="diagram")
    plane = etree.SubElement(
        diagram, _q(BPMNDI, "BPMNPlane"), id="plane", bpmnElement="collaboration"
    )
    _bounds(plane, "participant", MARGIN, MARGIN, right - MARGIN, top - MARGIN, horizontal=True)
    for role in lanes:
        _bounds(
            plane,
            f"lane_{role}",
            MARGIN + LANE_LABEL,
            lane_top[role],
            right - MARGIN - LANE_LABEL,
            heights[role],
            horizontal=True,
        )
    for shape in writer.shapes.values():
        _bounds(plane, shape.id, shape.x, shape.y, *shape.size)
    boundary_positions: dict[str, tuple[float, float]] = {}
    for key, host, slot in writer.boundaries:
        hosting = writer.shapes[host]
        x = hosting.x + 4 + slot * 40 if hosting.kind == "task" else hosting.x
        y = hosting.y + hosting.size[1] - EVENT[1] / 2
        boundary_positions[key] = (x, y)
        _bounds(plane, key, x, y, *EVENT)
    for key, source, target in writer.edges:
        if source in boundary_positions:
            x, y = boundary_positions[source]
            start = (x + EVENT[0] / 2, y + EVENT[1])
        else:
            start = writer.shapes[source].right
        end = writer.shapes[target].left
        edge = etree.SubElement(plane, _q(BPMNDI, "BPMNEdge"), id=f"{key}_di", bpmnElement=key)
        middle_x = (start[0] + end[0]) / 2 if end[0] > start[0] + 20 else start[0] + 20
        points = [start]
        if source in boundary_positions:
            points.append((start[0], start[1] + 20))
            middle_x = max(middle_x, start[0])
            points.append((middle_x, start[1] + 20))
        else:
            points.append((middle_x, start[1]))
        points += [(middle_x, end[1]), end]
        if end[0] <= start[0] + 20:  # a flow back: around, below
            low = max(start[1], end[1]) + 60
            points = [
                start,
                (start[0] + 20, start[1]),
                (start[0] + 20, low),
                (end[0] - 20, low),
                (end[0] - 20, end[1]),
                end,
            ]
        for px, py in points:
            etree.SubElement(edge, _q(DI, "waypoint"), x=_n(px), y=_n(py))


def _bounds(
    plane: etree._Element,
    element: str,
    x: float,
    y: float,
    width: float,
    height: float,
    *,
    horizontal: bool = False,
) -> None:
    shape = etree.SubElement(
        plane, _q(BPMNDI, "BPMNShape"), id=f"{element}_di", bpmnElement=element
    )
    if horizontal:
        shape.set("isHorizontal", "true")
    etree.SubElement(shape, _q(DC, "Bounds"), x=_n(x), y=_n(y), width=_n(width), height=_n(height))


def _n(value: float) -> str:
    return str(round(value))
