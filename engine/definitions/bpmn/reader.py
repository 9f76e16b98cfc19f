"""BPMN 2.0 -> the documents of a workflow and its policies, as the YAML reader produces them.

The result is the same marked data a YAML file gives (``MarkedDict``: every value knows where it
came from, here the line of its BPMN element), so the schema, the semantic checks and the
compiler run unchanged and report ``file:line:col`` in the ``.bpmn`` file. Nothing of the file
is ever evaluated: conditions are translated from the plain-comparison subset of FEEL/JUEL
(``conditions``), timer texts are read as ISO 8601 literals (``durations``), and everything that
would run code (scripts, listeners, connectors) is refused.

The mapping, for a case that is in one state at a time:

* tasks (user, manual, service, receive, send, abstract), event-based gateways and intermediate
  message, signal or timer catch events are **states**; end events are final states; lanes are
  **roles** (a file without lanes has one role, ``user``);
* completing a task is a signal named after the task (or, through an exclusive gateway, one
  signal per outgoing branch, named after the flow, guarded by its condition; the default flow
  is guarded by the negation of the others); a message or signal catch (boundary, intermediate,
  or after an event-based gateway) is a signal named after the message or signal;
* a timer (boundary, intermediate, or after an event-based gateway) is an **SLA clock** running
  in the states it watches: interrupting, its lapse fires the flow; non-interrupting, its lapse
  climbs the **escalation ladder** drawn after it (escalation throw events, each rung's deadline
  as an intermediate timer, an escalation end event as the final rung, whose escalation an
  interrupting escalation boundary turns into the transition it fires);
* an embedded subprocess is a **span** of states: a timer on it is a clock across its states,
  a message boundary on it leaves from any of them;
* an intermediate escalation throw on a path notifies the escalation's code;
* parallel, inclusive and complex gateways, multi-instance and loops, timeCycle and timeDate,
  script and business-rule tasks, call activities, event subprocesses, transactions and every
  script hidden in extension elements are refused, each naming the element and its line.

The ``lapor:`` extension (namespace ``LAPOR``) carries what BPMN cannot say (status labels,
fields, guards in CEL, working-day durations, routing): ``lapor export`` writes it, so a
workflow survives YAML -> BPMN -> YAML with the same model hash.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from engine.definitions.bpmn.conditions import ConditionError, translate_condition
from engine.definitions.bpmn.durations import DurationError, parse_timer_duration
from engine.definitions.bpmn.xml import BpmnXml
from engine.definitions.yamlio import MarkedDict, MarkedList
from engine.domain.errors import DefinitionError, Location

__all__ = ["BPMN", "LAPOR", "BpmnDocuments", "read_documents"]

BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"
LAPOR = "https://lapor-sla.dev/bpmn/1.0"
DEFAULT_ROLE = "user"

_TASKS = frozenset({"task", "userTask", "manualTask", "serviceTask", "receiveTask", "sendTask"})
_NODES = _TASKS | {
    "startEvent",
    "endEvent",
    "intermediateCatchEvent",
    "intermediateThrowEvent",
    "boundaryEvent",
    "exclusiveGateway",
    "eventBasedGateway",
    "subProcess",
}
_REFUSED = {
    "scriptTask": "a script task runs code from the file, which the engine never does",
    "businessRuleTask": "a business rule (DMN) task decides outside the case model",
    "callActivity": "a call activity starts another process; a case is one process",
    "parallelGateway": "a parallel gateway runs paths at once; a case is in one state at a time",
    "inclusiveGateway": "an inclusive gateway can run several paths at once; a case is in one "
    "state at a time",
    "complexGateway": "a complex gateway joins or splits paths by a rule the case model lacks",
    "transaction": "a transaction (with compensation) is not expressible in a case model",
    "adHocSubProcess": "an ad-hoc subprocess has no order of states",
    "chorography": "a choreography is not a process",
}
# Elements of a process that draw or document and decide nothing.
_IGNORED = frozenset(
    {
        "laneSet",
        "extensionElements",
        "documentation",
        "textAnnotation",
        "association",
        "dataObject",
        "dataObjectReference",
        "dataStoreReference",
        "dataInputAssociation",
        "dataOutputAssociation",
        "ioSpecification",
        "property",
        "group",
        "incoming",
        "outgoing",
    }
)
_SCRIPT_ELEMENTS = frozenset({"script", "preScript", "postScript", "scriptTask"})
_LISTENERS = frozenset({"executionListener", "taskListener"})
_SCRIPT_LANGUAGES = ("groovy", "javascript", "js", "python", "jython", "ruby", "juel-script")


@dataclass(eq=False)
class _Flow:
    element: etree._Element
    id: str
    source: _Node
    target: _Node
    name: str
    default: bool = False


@dataclass(eq=False)
class _Node:
    element: etree._Element
    id: str
    kind: str
    name: str
    scope: _Node | None
    lane: str | None = None
    event: str | None = None  # timer, message, signal, escalation, error... or None
    event_element: etree._Element | None = None
    incoming: list[_Flow] = field(default_factory=list)
    outgoing: list[_Flow] = field(default_factory=list)
    boundaries: list[_Node] = field(default_factory=list)
    attached: _Node | None = None
    children: list[_Node] = field(default_factory=list)

    @property
    def interrupting(self) -> bool:
        if self.kind == "boundaryEvent":
            return self.element.get("cancelActivity", "true") != "false"
        return True


@dataclass
class BpmnDocuments:
    """What a BPMN file says: a workflow document and its policy documents, each marked with
    the BPMN lines it came from, or the problems that kept them from being made."""

    path: str
    workflow: MarkedDict | None = None
    policies: list[MarkedDict] = field(default_factory=list)
    problems: list[DefinitionError] = field(default_factory=list)


def read_documents(xml: BpmnXml) -> BpmnDocuments:
    """The documents of the one process in ``xml`` (every problem found, all at once)."""
    return _Reader(xml).read()


# --- helpers --------------------------------------------------------------------------------


def _local(element: etree._Element) -> str:
    tag = element.tag
    return etree.QName(tag).localname if isinstance(tag, str) else ""


def _ns(element: etree._Element) -> str:
    tag = element.tag
    return etree.QName(tag).namespace or "" if isinstance(tag, str) else ""


def snake(text: str) -> str:
    """A name for a state, signal or clock from an element id or name: ``ReviewExpense`` ->
    ``review_expense``, ``Task 1`` -> ``task_1``."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", text.strip())
    name = re.sub(r"[^0-9A-Za-z]+", "_", spaced).strip("_").lower()
    if not name:
        return "unnamed"
    return name if name[0].isalpha() else f"n_{name}"


def _words(text: str | None) -> list[str]:
    return (text or "").split()


def _marked(location: Location, items: Iterable[tuple[str, Any, Location]]) -> MarkedDict:
    out = MarkedDict()
    out.location = location
    out.key_locations = {}
    for key, value, where in items:
        out[key] = value
        out.key_locations[key] = where
    return out


def _listed(location: Location, items: Iterable[tuple[Any, Location]]) -> MarkedList:
    out = MarkedList()
    out.location = location
    out.item_locations = []
    for value, where in items:
        out.append(value)
        out.item_locations.append(where)
    return out


def _strings(location: Location, values: Iterable[str]) -> MarkedList:
    return _listed(location, ((v, location) for v in values))


@dataclass
class _Transition:
    """A transition being assembled: the signal, where it leaves from and goes to, and whatever
    the file said about it, each with the place it said it."""

    name: str
    where: Location
    sources: list[str]
    target: str
    roles: list[str]
    guard: str | None = None
    guard_message: str | None = None
    requires: list[str] = field(default_factory=list)
    lapor: etree._Element | None = None
    notify: list[tuple[str, str, Location]] = field(default_factory=list)


@dataclass
class _Branch:
    """Where a path from a state's exit ends: a state, with the conditions and notices met."""

    target: str
    conditions: list[tuple[str, tuple[str, ...], str]]  # (cel, fields, original text)
    notify: list[tuple[str, str, Location]]
    lapor: etree._Element | None
    flow: _Flow | None


class _Reader:
    def __init__(self, xml: BpmnXml) -> None:
        self.xml = xml
        self.path = xml.path
        self.problems: list[DefinitionError] = []
        self.nodes: dict[str, _Node] = {}
        self.flows: list[_Flow] = []
        self.messages: dict[str, str] = {}
        self.signals: dict[str, str] = {}
        self.escalations: dict[str, str] = {}
        self.states: dict[str, _Node] = {}  # state name -> node
        self.state_of: dict[int, str] = {}  # id(node) -> state name
        self.transitions: dict[str, _Transition] = {}
        self.clocks: list[tuple[str, MarkedDict]] = []
        self.ladders: dict[str, MarkedList] = {}
        self.roles: dict[str, str] = {}
        self.intake_notify: list[tuple[str, str, Location]] = []
        self.ladder_nodes: set[int] = set()
        self.fired_by_escalation: dict[str, str] = {}  # escalation code -> transition name
        self.refused_ids: set[str] = set()
        # Nodes that lost a flow to a refused element: their shape follows from that refusal,
        # so it is not reported again.
        self.tainted: set[str] = set()

    # --- reporting ----------------------------------------------------------------------------

    def where(self, element: etree._Element) -> Location:
        return self.xml.where(element)

    def problem(self, element: etree._Element, message: str) -> None:
        self.problems.append(DefinitionError(message, location=self.where(element)))

    def refuse(self, node: _Node, why: str) -> None:
        self.problem(node.element, f"{node.kind} {node.id!r}: {why}")

    def malformed(self, node: _Node, why: str) -> None:
        """A problem with the flows around ``node``, unless a refusal nearby explains it."""
        if node.id not in self.tainted:
            self.refuse(node, why)

    # --- reading ------------------------------------------------------------------------------

    def read(self) -> BpmnDocuments:
        result = BpmnDocuments(self.path)
        root = self.xml.root
        if _local(root) != "definitions" or _ns(root) != BPMN:
            self.problem(root, "not a BPMN 2.0 file: the root element is not bpmn:definitions")
            result.problems = self.problems
            return result
        self._read_definitions(root)
        processes = [p for p in root if _local(p) == "process" and _ns(p) == BPMN]
        with_nodes = [p for p in processes if any(_local(e) in _NODES for e in p)]
        if not with_nodes:
            self.problem(root, "the file has no process with a start event and tasks")
            result.problems = self.problems
            return result
        for extra in with_nodes[1:]:
            self.problem(
                extra,
                f"process {extra.get('id')!r}: one workflow per file, and "
                f"{with_nodes[0].get('id')!r} is already one; split the file",
            )
        process = with_nodes[0]
        self._check_scripts(root)
        self._collect(process, None)
        self._read_lanes(process)
        self._link_boundaries()
        workflow = self._workflow(process)
        result.workflow = workflow
        result.policies = self._policies(process, workflow)
        result.problems = self.problems
        return result

    def _read_definitions(self, root: etree._Element) -> None:
        for element in root:
            kind, key = _local(element), element.get("id")
            if key is None:
                continue
            if kind == "message":
                self.messages[key] = element.get("name") or key
            elif kind == "signal":
                self.signals[key] = element.get("name") or key
            elif kind == "escalation":
                self.escalations[key] = element.get("escalationCode") or element.get("name") or key

    def _check_scripts(self, root: etree._Element) -> None:
        """Refuse every piece of code a file carries, wherever a modeler put it, at the element
        that carries it."""
        for element in root.iter():
            if not isinstance(element.tag, str) or _ns(element) == BPMN:
                continue  # conditions are translated or refused with their flow, scripts with
                # their scriptTask
            kind = _local(element)
            listener = kind in _LISTENERS
            script = kind in _SCRIPT_ELEMENTS and not self._inside_listener(element)
            if not (listener or script):
                continue
            carrier = self._carrier(element)
            inner = next((e for e in element.iter() if _local(e) in _SCRIPT_ELEMENTS), None)
            code = inner if inner is not None else element
            language = code.get("scriptFormat") or code.get("language") or ""
            what = f"a {element.prefix or _ns(element)}:{kind} (line {element.sourceline})"
            if inner is not None and inner is not element:
                what += f" with a {language or 'script'} script (line {inner.sourceline})"
            elif language:
                what += f" in {language}"
            reason = (
                "which runs code when the element is reached" if listener else "which is a script"
            )
            self.problems.append(
                DefinitionError(
                    f"element {carrier.get('id')!r} carries {what}, {reason}; the engine never "
                    "runs a file's code",
                    location=self.where(carrier),
                )
            )

    def _inside_listener(self, element: etree._Element) -> bool:
        return any(_local(a) in _LISTENERS for a in element.iterancestors())

    def _carrier(self, element: etree._Element) -> etree._Element:
        for ancestor in element.iterancestors():
            if _ns(ancestor) == BPMN and ancestor.get("id"):
                return ancestor
        return self.xml.root

    def _collect(self, container: etree._Element, scope: _Node | None) -> None:
        pending: list[etree._Element] = []
        for element in container:
            if not isinstance(element.tag, str):
                continue
            kind = _local(element)
            if _ns(element) != BPMN:
                continue  # another vendor's extension outside extensionElements: ignore
            if kind == "sequenceFlow":
                pending.append(element)
                continue
            if kind in _IGNORED:
                continue
            key = element.get("id")
            if kind in _REFUSED or kind not in _NODES:
                why = _REFUSED.get(kind, "not expressible in a case workflow")
                self.problem(element, f"{kind} {key!r}: {why}")
                self.refused_ids.add(key or "")
                continue
            if not key:
                self.problem(element, f"a {kind} without an id cannot be connected; give it one")
                continue
            node = _Node(element, key, kind, element.get("name") or "", scope)
            self._read_event(node)
            self._check_loop(node)
            if key in self.nodes:
                self.problem(element, f"id {key!r} is used twice")
                continue
            self.nodes[key] = node
            if scope is not None:
                scope.children.append(node)
            if kind == "subProcess":
                if element.get("triggeredByEvent") == "true":
                    self.refuse(
                        node,
                        "an event subprocess interrupts from the side; not "
                        "expressible as a span of states",
                    )
                self._collect(element, node)
        for element in pending:
            self._read_flow(element)

    def _read_event(self, node: _Node) -> None:
        definitions = [
            e for e in node.element if _local(e).endswith("EventDefinition") and _ns(e) == BPMN
        ]
        if len(definitions) > 1:
            self.refuse(node, "an event with several definitions (multiple) is not supported")
        if definitions:
            node.event = _local(definitions[0]).removesuffix("EventDefinition")
            node.event_element = definitions[0]

    def _check_loop(self, node: _Node) -> None:
        for child in node.element:
            kind = _local(child)
            if kind == "multiInstanceLoopCharacteristics":
                self.refuse(
                    node,
                    "a multi-instance activity runs many instances at once; a "
                    "case is in one state at a time",
                )
            elif kind == "standardLoopCharacteristics":
                self.refuse(
                    node,
                    "a looping activity repeats by a condition the engine would "
                    "have to evaluate; draw the loop with a gateway instead",
                )

    def _read_flow(self, element: etree._Element) -> None:
        source = self.nodes.get(element.get("sourceRef") or "")
        target = self.nodes.get(element.get("targetRef") or "")
        # BPMN's id on a flow is optional (and SpiffWorkflow drops flows without one): keep it.
        key = element.get("id") or f"flow_line_{element.sourceline}"
        ends = (element.get("sourceRef") or "", element.get("targetRef") or "")
        if any(end in self.refused_ids for end in ends):
            self.tainted.update(ends)
            return
        if source is None or target is None:
            missing = "sourceRef" if source is None else "targetRef"
            value = element.get(missing)
            self.problem(
                element,
                f"sequenceFlow {key!r}: its {missing} {value!r} names no element of the process"
                if value
                else f"sequenceFlow {key!r} has no {missing}",
            )
            return
        flow = _Flow(element, key, source, target, element.get("name") or "")
        self.flows.append(flow)
        source.outgoing.append(flow)
        target.incoming.append(flow)

    def _read_lanes(self, process: etree._Element) -> None:
        for lane in process.iter(f"{{{BPMN}}}lane"):
            if lane.find(f"{{{BPMN}}}childLaneSet") is not None:
                continue  # the innermost lane names the role
            role = snake(lane.get("name") or lane.get("id") or "lane")
            self.roles.setdefault(role, lane.get("name") or role)
            for ref in lane.iter(f"{{{BPMN}}}flowNodeRef"):
                node = self.nodes.get((ref.text or "").strip())
                if node is not None:
                    node.lane = role

    def _link_boundaries(self) -> None:
        for node in self.nodes.values():
            if node.kind != "boundaryEvent":
                continue
            host = self.nodes.get(node.element.get("attachedToRef") or "")
            if host is None:
                self.refuse(
                    node, "a boundary event attached to nothing (attachedToRef names no activity)"
                )
                continue
            node.attached = host
            host.boundaries.append(node)
            if node.lane is None:
                node.lane = host.lane
        for host in self.nodes.values():
            catch_all = [
                b
                for b in host.boundaries
                if b.event == "escalation"
                and b.event_element is not None
                and not b.event_element.get("escalationRef")
            ]
            for extra in catch_all[1:]:
                self.refuse(
                    extra,
                    f"a second escalation boundary on {host.id!r} that catches "
                    "every escalation: which one fires is ambiguous",
                )

    # --- states -------------------------------------------------------------------------------

    def _is_state(self, node: _Node) -> bool:
        if id(node) in self.ladder_nodes:
            return False
        if node.kind in _TASKS or node.kind == "eventBasedGateway":
            return True
        if node.kind == "intermediateCatchEvent":
            return not any(f.source.kind == "eventBasedGateway" for f in node.incoming)
        return node.kind == "endEvent" and node.scope is None

    def _state_name(self, node: _Node) -> str:
        """The file's own name (``lapor:state``), else the element's name when no other state
        has it (ids are often generated: ``_ec59e164-...``), else its id."""
        lapor = self._lapor(node.element, "state")
        if lapor is not None and lapor.get("name"):
            return str(lapor.get("name"))
        if node.name:
            named = [n for n in self.nodes.values() if n.name == node.name and self._is_state(n)]
            if len(named) == 1:
                return snake(node.name)
        return snake(node.id)

    def _workflow(self, process: etree._Element) -> MarkedDict:
        where = self.where(process)
        starts = [n for n in self.nodes.values() if n.kind == "startEvent" and n.scope is None]
        self._mark_ladders()
        for node in self.nodes.values():
            if self._is_state(node):
                name = self._state_name(node)
                if name in self.states:
                    self.refuse(node, f"two elements become state {name!r}; rename one id")
                    continue
                self.states[name] = node
                self.state_of[id(node)] = name
        initial = ""
        if len(starts) != 1:
            self.problem(
                process,
                "a workflow needs exactly one start event at the top of the process, found "
                f"{len(starts)}",
            )
        else:
            initial = self._initial(starts[0])
        self._read_exits()
        lapor = self._lapor(process, "workflow")
        name = (lapor.get("name") if lapor is not None else None) or snake(
            process.get("id") or "workflow"
        )
        roles = self._roles(process)
        states = _marked(where, (self._state(n, s) for n, s in self.states.items()))
        transitions = _marked(where, (self._transition(t) for t in self.transitions.values()))
        items: list[tuple[str, Any, Location]] = [
            ("workflow", name, where),
            ("version", (lapor.get("version") if lapor is not None else None) or "1", where),
            ("title", process.get("name") or name, where),
            ("roles", roles, where),
            ("intake", self._intake(process), where),
            ("initial", initial, self.where(starts[0].element) if starts else where),
            ("states", states, where),
            ("transitions", transitions, where),
        ]
        return _marked(where, items)

    def _initial(self, start: _Node) -> str:
        if start.event not in (None, "message"):
            self.refuse(
                start,
                f"a {start.event} start event: a case starts when a channel "
                "files it (a plain or message start event)",
            )
        if len(start.outgoing) != 1:
            self.malformed(start, "the start event needs exactly one outgoing flow")
            return ""
        branches = self._follow(start.outgoing[0], set())
        if len(branches) != 1 or branches[0].conditions:
            self.refuse(start, "the start event must lead to one state, with no decision first")
            return ""
        self.intake_notify.extend(branches[0].notify)
        return branches[0].target

    def _state(self, name: str, node: _Node) -> tuple[str, MarkedDict, Location]:
        where = self.where(node.element)
        lapor = self._lapor(node.element, "state")
        final = node.kind == "endEvent"
        status = (lapor.get("status") if lapor is not None else None) or node.name or node.id
        items: list[tuple[str, Any, Location]] = [("status", status, where)]
        if final:
            items.append(("final", True, where))
            outcome = (lapor.get("outcome") if lapor is not None else None) or name
            items.append(("outcome", outcome, where))
        description = self._documentation(node.element)
        if lapor is not None and lapor.get("description") is not None:
            description = str(lapor.get("description"))  # exact, where documentation is prose
        if description:
            items.append(("description", description, where))
        return name, _marked(where, items), where

    def _documentation(self, element: etree._Element) -> str:
        found = element.find(f"{{{BPMN}}}documentation")
        return " ".join((found.text or "").split()) if found is not None else ""

    def _roles(self, process: etree._Element) -> MarkedDict:
        where = self.where(process)
        lapor = self._lapor(process, "workflow")
        declared = [] if lapor is None else [e for e in lapor if _local(e) == "role"]
        if declared:
            return _marked(
                where,
                ((str(e.get("name")), e.get("description") or "", self.where(e)) for e in declared),
            )
        used = {r for t in self.transitions.values() for r in t.roles}
        roles = {r: d for r, d in self.roles.items() if r in used}
        if DEFAULT_ROLE in used:
            roles[DEFAULT_ROLE] = (
                "Anyone the caller vouches for (no lane of the BPMN file says who)"
            )
        if "system" in used:
            roles["system"] = "The engine itself (timers, escalations)"
        return _marked(where, ((r, d, where) for r, d in roles.items()))

    def _intake(self, process: etree._Element) -> MarkedDict:
        where = self.where(process)
        lapor = self._lapor(process, "intake")
        requires = _words(lapor.get("requires")) if lapor is not None else ["region"]
        accepts = _words(lapor.get("accepts")) if lapor is not None else []
        items: list[tuple[str, Any, Location]] = [
            ("requires", _strings(where, requires), where),
            ("accepts", _strings(where, accepts), where),
        ]
        if lapor is not None:
            self.intake_notify = [
                *self._notifications(lapor),
                *self.intake_notify,
            ]
        if self.intake_notify:
            items.append(("notify", self._notify_list(where, self.intake_notify), where))
        return _marked(where, items)

    # --- exits: what moves a case out of each state --------------------------------------------

    def _span(self, node: _Node) -> list[str]:
        """The states an activity stands for: itself, or every state inside a subprocess."""
        if node.kind != "subProcess":
            name = self.state_of.get(id(node))
            return [name] if name else []
        inside: list[str] = []
        for child in node.children:
            if child.kind == "subProcess":
                inside.extend(self._span(child))
            elif id(child) in self.state_of:
                inside.append(self.state_of[id(child)])
        return inside

    def _read_exits(self) -> None:
        hosts = [n for n in self.nodes.values() if n.kind in _TASKS or n.kind == "subProcess"]
        # Escalation boundaries first: a ladder's final rung names the transition one fires.
        for host in hosts:
            for boundary in host.boundaries:
                if boundary.event == "escalation":
                    self._boundary(host, boundary)
        for node in list(self.nodes.values()):
            if id(node) in self.ladder_nodes:
                continue
            if self._is_state(node) and node.kind != "endEvent":
                self._state_exits(node)
        for host in hosts:
            for boundary in host.boundaries:
                if boundary.event != "escalation":
                    self._boundary(host, boundary)

    def _state_exits(self, node: _Node) -> None:
        state = self.state_of[id(node)]
        role = node.lane or DEFAULT_ROLE
        if node.kind == "eventBasedGateway":
            for flow in node.outgoing:
                self._race(node, state, flow)
            return
        if node.kind == "intermediateCatchEvent":
            self._catch(node, [state], node.outgoing, role)
            return
        if not node.outgoing:
            if not node.boundaries:
                self.malformed(node, "nothing leaves this task: add a flow to what follows")
            return
        if len(node.outgoing) > 1:
            self.refuse(
                node,
                "several flows leave this task without a gateway (an implicit "
                "parallel or conditional split); draw an exclusive gateway",
            )
            return
        flow = node.outgoing[0]
        if self._condition(flow) is not None:
            self.problem(
                flow.element,
                f"sequenceFlow {flow.id!r}: a condition on a flow out of "
                "a task; put it on a branch of an exclusive gateway",
            )
        branches = self._follow(flow, set())
        named = len(branches) == 1
        for branch in branches:
            if named:
                default = snake(node.name) if node.name else snake(node.id)
            else:
                assert branch.flow is not None
                default = snake(branch.flow.name or branch.flow.id)
            self._add(default, branch, [state], [role], branch.flow or flow)

    def _race(self, gateway: _Node, state: str, flow: _Flow) -> None:
        event = flow.target
        role = gateway.lane or DEFAULT_ROLE
        if event.kind == "receiveTask":
            message = self._message_of(event)
            for branch in self._follow_out(event):
                self._add(message or snake(event.id), branch, [state], [role], flow)
            return
        if event.kind != "intermediateCatchEvent":
            self.problem(
                flow.element,
                f"eventBasedGateway {gateway.id!r}: a branch must lead to "
                "an intermediate catch event or a receive task",
            )
            return
        self._catch(event, [state], event.outgoing, role)

    def _catch(self, event: _Node, states: list[str], outgoing: list[_Flow], role: str) -> None:
        """A message, signal or timer that ends a wait in ``states``."""
        if len(outgoing) != 1:
            self.malformed(event, "the event needs exactly one outgoing flow")
            return
        if event.event in ("message", "signal"):
            signal = self._message_of(event) or snake(event.id)
            for branch in self._follow(outgoing[0], set()):
                self._add(signal, branch, states, [role], outgoing[0])
        elif event.event == "timer":
            self._clock(event, states, interrupting=True)
        else:
            self.refuse(
                event,
                f"a {event.event or 'plain'} catch event cannot end a wait; "
                "use a message, signal or timer",
            )

    def _boundary(self, host: _Node, boundary: _Node) -> None:
        states = self._span(host)
        if not states:
            if host.kind == "subProcess":
                self.refuse(
                    host,
                    f"its {boundary.kind} {boundary.id!r} watches a subprocess "
                    "with no task inside: a span needs at least one state",
                )
            return
        role = host.lane or DEFAULT_ROLE
        if boundary.event in ("message", "signal"):
            if not boundary.interrupting:
                self.refuse(
                    boundary,
                    "a non-interrupting message boundary starts a second path "
                    "beside the task; a case is in one state at a time",
                )
                return
            self._catch(boundary, states, boundary.outgoing, role)
        elif boundary.event == "timer":
            self._clock(boundary, states, interrupting=boundary.interrupting)
        elif boundary.event == "escalation":
            if not boundary.interrupting:
                self.refuse(
                    boundary,
                    "a non-interrupting escalation boundary runs a second path "
                    "beside its activity; a case is in one state at a time",
                )
                return
            self._escalation_boundary(boundary, states)
        else:
            self.refuse(
                boundary,
                f"a {boundary.event or 'plain'} boundary event is not "
                "expressible (messages, signals, timers and escalations are)",
            )

    def _escalation_boundary(self, boundary: _Node, states: list[str]) -> None:
        assert boundary.event_element is not None
        code = self._escalation_code(boundary.event_element) or "*"
        if len(boundary.outgoing) != 1:
            self.malformed(boundary, "the escalation boundary needs exactly one outgoing flow")
            return
        name = snake(boundary.id)
        for branch in self._follow(boundary.outgoing[0], set()):
            name = self._add(name, branch, states, ["system"], boundary.outgoing[0])
        self.fired_by_escalation.setdefault(code, name)

    def _message_of(self, event: _Node) -> str | None:
        holder = event.event_element if event.event_element is not None else event.element
        ref = holder.get("messageRef") or holder.get("signalRef")
        if ref is None:
            return None
        table = self.signals if holder.get("signalRef") else self.messages
        if ref not in table:
            self.refuse(event, f"it refers to {ref!r}, which the file does not define")
            return None
        return snake(table[ref])

    # --- paths --------------------------------------------------------------------------------

    def _follow_out(self, node: _Node) -> list[_Branch]:
        if len(node.outgoing) != 1:
            self.malformed(node, "needs exactly one outgoing flow")
            return []
        return self._follow(node.outgoing[0], set())

    def _follow(self, flow: _Flow, seen: set[int]) -> list[_Branch]:
        """Every state a path starting with ``flow`` can reach before the next wait, through
        gateways, throw events and subprocess boundaries."""
        node = flow.target
        lapor = self._lapor(flow.element, "transition")
        if id(node) in seen:
            self.problem(flow.element, f"sequenceFlow {flow.id!r}: a loop that never waits")
            return []
        if id(node) in self.state_of:
            return [_Branch(self.state_of[id(node)], [], [], lapor, flow)]
        seen = seen | {id(node)}
        if node.kind == "subProcess":
            starts = [c for c in node.children if c.kind == "startEvent"]
            if len(starts) != 1 or len(starts[0].outgoing) != 1:
                self.refuse(node, "an embedded subprocess needs one start event with one flow")
                return []
            return self._prefixed(lapor, flow, self._follow(starts[0].outgoing[0], seen))
        if node.kind == "endEvent" and node.scope is not None:
            notes = self._throw_notice(node)
            after = self._follow_many(node.scope.outgoing, node.scope, seen)
            return self._prefixed(lapor, flow, after, notes)
        if node.kind == "intermediateThrowEvent":
            notes = self._throw_notice(node)
            return self._prefixed(lapor, flow, self._follow_many(node.outgoing, node, seen), notes)
        if node.kind == "exclusiveGateway":
            if len(node.outgoing) == 1:
                return self._prefixed(lapor, flow, self._follow(node.outgoing[0], seen))
            return self._prefixed(lapor, flow, self._split(node, seen))
        self.problem(
            flow.element,
            f"sequenceFlow {flow.id!r} leads to {node.kind} {node.id!r}, "
            "which this path cannot pass",
        )
        return []

    def _follow_many(self, flows: list[_Flow], node: _Node, seen: set[int]) -> list[_Branch]:
        if len(flows) != 1:
            self.malformed(node, "needs exactly one outgoing flow here")
            return []
        return self._follow(flows[0], seen)

    def _prefixed(
        self,
        lapor: etree._Element | None,
        flow: _Flow,
        branches: list[_Branch],
        notes: list[tuple[str, str, Location]] | None = None,
    ) -> list[_Branch]:
        for branch in branches:
            branch.notify = [*(notes or []), *branch.notify]
            if branch.lapor is None:
                branch.lapor = lapor
            if branch.flow is None:
                branch.flow = flow
        return branches

    def _split(self, gateway: _Node, seen: set[int]) -> list[_Branch]:
        translated: list[tuple[_Flow, str, tuple[str, ...], str] | None] = []
        default_id = gateway.element.get("default")
        defaults = [f for f in gateway.outgoing if f.id == default_id]
        for flow in gateway.outgoing:
            if flow.id == default_id:
                continue
            condition = self._condition(flow)
            if condition is None:
                if self._lapor(flow.element, "transition") is None:
                    self.problem(
                        flow.element,
                        f"sequenceFlow {flow.id!r}: a branch of "
                        f"exclusiveGateway {gateway.id!r} without a condition (and it "
                        "is not the default flow)",
                    )
                translated.append((flow, "", (), ""))
                continue
            translated.append(condition)
        branches: list[_Branch] = []
        for item in translated:
            if item is None:
                continue
            flow, cel, fields, text = item
            for branch in self._follow(flow, seen):
                if cel:
                    branch.conditions.insert(0, (cel, fields, text))
                branch.flow = flow  # the branch is named after the gateway's flow
                branches.append(branch)
        for flow in defaults:
            others = [t for t in translated if t is not None and t[1]]
            if len(others) != len([t for t in translated if t is not None]) or None in translated:
                continue  # a sibling could not be translated: reported there
            cel = " && ".join(f"!({t[1]})" for t in others) or "true"
            fields = tuple(sorted({f for t in others for f in t[2]}))
            for branch in self._follow(flow, seen):
                branch.conditions.insert(0, (cel, fields, f"default flow of {gateway.id}"))
                branch.flow = flow
                branches.append(branch)
        return branches

    def _condition(self, flow: _Flow) -> tuple[_Flow, str, tuple[str, ...], str] | None:
        expression = flow.element.find(f"{{{BPMN}}}conditionExpression")
        if expression is None:
            return None
        text = "".join(str(t) for t in expression.itertext()).strip()
        language = expression.get("language") or self.xml.root.get("expressionLanguage")
        if self._lapor(flow.element, "transition") is not None:
            return (flow, "", (), text)  # our own export: the lapor:transition says it exactly
        try:
            guard = translate_condition(text, language)
        except ConditionError as exc:
            self.problem(flow.element, f"sequenceFlow {flow.id!r}: {exc.reason}")
            return None
        return (flow, guard.cel, guard.fields, text)

    def _throw_notice(self, node: _Node) -> list[tuple[str, str, Location]]:
        where = self.where(node.element)
        lapor = self._lapor(node.element, "notify")
        if node.event == "escalation" and node.event_element is not None:
            code = self._escalation_code(node.event_element) or "escalation"
            template = (lapor.get("template") if lapor is not None else None) or "escalation"
            return [(code, template, where)]
        if node.event is None:
            return []
        self.refuse(node, f"a {node.event} throw event is not expressible (escalations are)")
        return []

    def _escalation_code(self, definition: etree._Element) -> str | None:
        ref = definition.get("escalationRef")
        if ref is None:
            return None
        return self.escalations.get(ref, ref)

    # --- transitions --------------------------------------------------------------------------

    def _add(
        self,
        default: str,
        branch: _Branch,
        sources: list[str],
        roles: list[str],
        flow: _Flow,
    ) -> str:
        lapor = branch.lapor
        name = (lapor.get("name") if lapor is not None else None) or default
        where = self.where(flow.element)
        guard = (
            " && ".join(
                f"({c[0]})" if len(branch.conditions) > 1 else c[0] for c in branch.conditions
            )
            or None
        )
        fields = sorted({f for c in branch.conditions for f in c[1]})
        message = "; ".join(f"the condition {c[2]!r} does not hold" for c in branch.conditions)
        existing = self.transitions.get(name)
        if existing is not None:
            if existing.target != branch.target or existing.guard != guard:
                if lapor is None:
                    name = f"{name}_{sources[0]}" if sources else name
                    if name in self.transitions:
                        self.problem(flow.element, f"two paths make transition {name!r}")
                        return name
                else:
                    self.problem(
                        flow.element,
                        f"transition {name!r} is drawn twice with different targets or guards",
                    )
                    return name
            else:
                existing.sources.extend(s for s in sources if s not in existing.sources)
                return name
        self.transitions[name] = _Transition(
            name=name,
            where=where,
            sources=list(sources),
            target=branch.target,
            roles=list(roles),
            guard=guard,
            guard_message=message or None,
            requires=fields,
            lapor=lapor,
            notify=list(branch.notify),
        )
        return name

    def _transition(self, t: _Transition) -> tuple[str, MarkedDict, Location]:
        where = t.where
        lapor = t.lapor
        if lapor is not None:
            sources = _words(lapor.get("from")) or t.sources
            roles = _words(lapor.get("roles")) or t.roles
        else:
            sources, roles = t.sources, t.roles
        items: list[tuple[str, Any, Location]] = []
        description = self._documentation(lapor) if lapor is not None else ""
        if lapor is not None and lapor.get("description"):
            description = str(lapor.get("description"))
        if description:
            items.append(("description", description, where))
        items += [
            ("from", _strings(where, sources), where),
            ("to", t.target, where),
            ("roles", _strings(where, roles), where),
        ]
        requires = _words(lapor.get("requires")) if lapor is not None else t.requires
        accepts = _words(lapor.get("accepts")) if lapor is not None else []
        guard = lapor.get("guard") if lapor is not None else t.guard
        guard_message = lapor.get("guardMessage") if lapor is not None else t.guard_message
        if requires:
            items.append(("requires", _strings(where, requires), where))
        if accepts:
            items.append(("accepts", _strings(where, accepts), where))
        if guard:
            items.append(("guard", guard, where))
        if guard_message:
            items.append(("guard_message", guard_message, where))
        if lapor is not None and lapor.get("route") == "true":
            items.append(("route", True, where))
        restart = _words(lapor.get("restart")) if lapor is not None else []
        if restart:
            items.append(("restart", _strings(where, restart), where))
        notes = [*t.notify, *(self._notifications(lapor) if lapor is not None else [])]
        if lapor is not None and lapor.find(f"{{{LAPOR}}}notify") is not None:
            notes = self._notifications(lapor)  # the exporter lists them all, in order
        if notes:
            items.append(("notify", self._notify_list(where, notes), where))
        return t.name, _marked(where, items), where

    def _notifications(self, lapor: etree._Element) -> list[tuple[str, str, Location]]:
        return [
            (str(e.get("to")), str(e.get("template")), self.where(e))
            for e in lapor
            if _local(e) == "notify"
        ]

    def _notify_list(self, where: Location, notes: list[tuple[str, str, Location]]) -> MarkedList:
        return _listed(
            where,
            (
                (_marked(w, [("to", to, w), ("template", template, w)]), w)
                for to, template, w in notes
            ),
        )

    # --- clocks and ladders -------------------------------------------------------------------

    def _mark_ladders(self) -> None:
        """The nodes a non-interrupting timer's path runs through are its ladder, not states."""
        for node in self.nodes.values():
            if node.kind == "boundaryEvent" and node.event == "timer" and not node.interrupting:
                for next_node in self._ladder_walk(node):
                    self.ladder_nodes.add(id(next_node))

    def _ladder_walk(self, timer: _Node) -> Iterator[_Node]:
        node = timer
        for _ in range(200):
            if len(node.outgoing) != 1:
                return
            node = node.outgoing[0].target
            if node.kind not in (
                "intermediateThrowEvent",
                "intermediateCatchEvent",
                "exclusiveGateway",
                "endEvent",
            ):
                return
            yield node
            if node.kind == "endEvent":
                return

    def _clock(self, timer: _Node, states: list[str], *, interrupting: bool) -> None:
        where = self.where(timer.element)
        lapor = (
            self._lapor(timer.event_element, "clock") if timer.event_element is not None else None
        )
        name = (
            timer.element.get(f"{{{LAPOR}}}clock")
            or (lapor.get("name") if lapor is not None else None)
            or snake(timer.id)
        )
        duration = self._duration(timer)
        if duration is None:
            return
        existing = next((c for n, c in self.clocks if n == name), None)
        if existing is not None:
            runs = existing["runs_in"]
            for state in states:
                if state not in runs:
                    runs.append(state)
                    runs.item_locations.append(where)
            return
        definition = timer.event_element
        region = (
            definition.get(f"{{{LAPOR}}}region") if definition is not None else None
        ) or "case"
        pauses = _words(definition.get(f"{{{LAPOR}}}pausesIn")) if definition is not None else []
        runs_in = _words(definition.get(f"{{{LAPOR}}}runsIn")) if definition is not None else []
        items: list[tuple[str, Any, Location]] = [
            ("duration", duration, where),
            ("runs_in", _strings(where, runs_in or states), where),
        ]
        if pauses:
            items.append(("pauses_in", _strings(where, pauses), where))
        items.append(("region", region, where))
        if interrupting:
            fired = self._fired(timer, name, states)
            if fired is not None:
                items.append(("on_lapse", _marked(where, [("fire", fired, where)]), where))
        else:
            ladder = self._ladder(timer)
            if ladder is not None:
                items.append(("on_lapse", _marked(where, [("escalate", ladder, where)]), where))
        self.clocks.append((name, _marked(where, items)))

    def _fired(self, timer: _Node, clock: str, states: list[str]) -> str | None:
        if len(timer.outgoing) != 1:
            self.malformed(timer, "the timer needs exactly one outgoing flow")
            return None
        name: str | None = None
        for branch in self._follow(timer.outgoing[0], set()):
            name = self._add(clock, branch, states, ["system"], timer.outgoing[0])
        return name

    def _duration(self, timer: _Node) -> Any:
        definition = timer.event_element
        assert definition is not None
        for attribute, unit in (
            ("duration", None),
            ("workingDays", "working days"),
            ("workingHours", "working hours"),
        ):
            value = definition.get(f"{{{LAPOR}}}{attribute}")
            if value is not None:
                if unit is not None:
                    return f"{value.strip()} {unit}"
                table = self._duration_table(definition, value)
                return table if table is not None else value
        if definition.find(f"{{{BPMN}}}timeCycle") is not None:
            self.refuse(
                timer,
                "a timeCycle repeats without end; an SLA clock lapses once "
                "(use a non-interrupting timer and a ladder for reminders)",
            )
            return None
        if definition.find(f"{{{BPMN}}}timeDate") is not None:
            self.refuse(
                timer,
                "a timeDate is a fixed instant, not a deadline counted from when the case arrives",
            )
            return None
        text_element = definition.find(f"{{{BPMN}}}timeDuration")
        if text_element is None:
            self.refuse(timer, "a timer without a timeDuration")
            return None
        text = "".join(str(t) for t in text_element.itertext()).strip()
        try:
            amount, unit = parse_timer_duration(text)
        except DurationError as exc:
            self.refuse(timer, f"timeDuration {text!r}: {exc.reason}")
            return None
        return f"{amount} {unit.replace('_', ' ')}"

    def _duration_table(self, definition: etree._Element, default: str) -> MarkedDict | None:
        by = definition.get(f"{{{LAPOR}}}durationBy")
        if by is None:
            return None
        where = self.where(definition)
        values = _marked(
            where,
            (
                (str(e.get("value")), str(e.get("duration")), self.where(e))
                for e in definition.iter(f"{{{LAPOR}}}case")
            ),
        )
        return _marked(
            where, [("by", by, where), ("values", values, where), ("default", default, where)]
        )

    def _ladder(self, timer: _Node) -> str | None:
        nodes = list(self._ladder_walk(timer))
        if not nodes or nodes[-1].kind != "endEvent":
            self.refuse(
                timer,
                "a non-interrupting timer must lead, through escalation events "
                "and timers, to an end event: that path is its escalation ladder",
            )
            return None
        entry = timer.outgoing[0].target
        lapor = self._lapor(entry.element, "ladder")
        name = (lapor.get("name") if lapor is not None else None) or snake(entry.id)
        if name in self.ladders:
            return name
        where = self.where(entry.element)
        rungs: list[tuple[MarkedDict, Location]] = []
        current: list[tuple[str, Any, Location]] | None = None
        for node in nodes:
            node_where = self.where(node.element)
            if node.event == "escalation" and node.event_element is not None:
                if current is not None:
                    self.refuse(
                        node,
                        "two escalations with no timer between them: the earlier "
                        "rung needs a deadline",
                    )
                code = self._escalation_code(node.event_element) or snake(node.id)
                note = self._lapor(node.element, "rung")
                current = [("to", code, node_where)]
                if note is not None and note.get("notify"):
                    current.append(("notify", note.get("notify"), node_where))
                if note is not None and note.get("source"):
                    current.append(("source", note.get("source"), node_where))
                if node.kind == "endEvent":
                    current.append(("final", True, node_where))
                    fired = self.fired_by_escalation.get(code) or self.fired_by_escalation.get("*")
                    if note is not None and note.get("fire"):
                        fired = note.get("fire")
                    if fired:
                        current.append(("fire", fired, node_where))
                    rungs.append((_marked(node_where, current), node_where))
                    current = None
            elif node.kind == "intermediateCatchEvent" and node.event == "timer":
                if current is None:
                    self.refuse(node, "a timer in an escalation ladder must follow an escalation")
                    continue
                deadline = self._duration(node)
                current.append(("deadline", deadline, node_where))
                rungs.append((_marked(node_where, current), node_where))
                current = None
            elif node.kind == "endEvent":
                if current is not None:
                    current.append(("final", True, node_where))
                    rungs.append((_marked(node_where, current), node_where))
                    current = None
                elif rungs:
                    rungs[-1][0]["final"] = True
                    rungs[-1][0].key_locations["final"] = node_where
                    rungs[-1][0].pop("deadline", None)
            elif node.kind == "intermediateThrowEvent" and node.event is None:
                continue
            elif node.kind != "exclusiveGateway":
                self.refuse(node, "an escalation ladder holds escalation events and timers only")
        if current is not None:
            rungs.append((_marked(where, current), where))
        if not rungs:
            self.refuse(timer, "its path throws no escalation: whom would it escalate to?")
            return None
        self.ladders[name] = _listed(where, rungs)
        return name

    # --- policies -----------------------------------------------------------------------------

    def _policies(self, process: etree._Element, workflow: MarkedDict) -> list[MarkedDict]:
        where = self.where(process)
        name = workflow["workflow"]
        out: list[MarkedDict] = []
        sla = self._lapor(process, "sla")
        if self.clocks:
            order = _words(sla.get("clocks")) if sla is not None else []
            ranked = sorted(
                self.clocks,
                key=lambda c: order.index(c[0]) if c[0] in order else len(order),
            )
            items: list[tuple[str, Any, Location]] = [
                (
                    "policy",
                    (sla.get("policy") if sla is not None else None) or f"{name}-sla",
                    where,
                ),
                ("kind", "sla", where),
                ("workflow", name, where),
            ]
            if sla is not None and sla.get("calendar"):
                items.append(("calendar", sla.get("calendar"), where))
            if sla is not None and sla.get("nationalRegion"):
                items.append(("national_region", sla.get("nationalRegion"), where))
            items.append(("clocks", _marked(where, ((n, c, c.location) for n, c in ranked)), where))
            out.append(_marked(where, items))
        if self.ladders:
            escalation = self._lapor(process, "escalation")
            policy = (escalation.get("policy") if escalation is not None else None) or (
                f"{name}-escalation"
            )
            order = _words(escalation.get("ladders")) if escalation is not None else []
            ladders = sorted(
                self.ladders.items(),
                key=lambda item: order.index(item[0]) if item[0] in order else len(order),
            )
            out.append(
                _marked(
                    where,
                    [
                        ("policy", policy, where),
                        ("kind", "escalation", where),
                        ("workflow", name, where),
                        (
                            "ladders",
                            _marked(where, ((n, r, r.location) for n, r in ladders)),
                            where,
                        ),
                    ],
                )
            )
        routing = self._lapor(process, "routing")
        if routing is not None:
            out.append(self._routing(routing, name))
        return out

    def _routing(self, routing: etree._Element, workflow: str) -> MarkedDict:
        where = self.where(routing)
        agencies = _marked(
            where,
            (
                (
                    str(e.get("code")),
                    _marked(
                        self.where(e),
                        [
                            ("name", e.get("name") or "", self.where(e)),
                            ("region", e.get("region") or "", self.where(e)),
                        ],
                    ),
                    self.where(e),
                )
                for e in routing
                if _local(e) == "agency"
            ),
        )
        rules = _listed(
            where,
            (
                (
                    _marked(
                        self.where(e),
                        [
                            ("category", e.get("category") or "", self.where(e)),
                            ("region", e.get("region") or "", self.where(e)),
                            ("agency", e.get("agency") or "", self.where(e)),
                        ],
                    ),
                    self.where(e),
                )
                for e in routing
                if _local(e) == "rule"
            ),
        )
        return _marked(
            where,
            [
                ("policy", routing.get("policy") or f"{workflow}-routing", where),
                ("kind", "routing", where),
                ("workflow", workflow, where),
                ("agencies", agencies, where),
                ("rules", rules, where),
            ],
        )

    # --- the lapor: extension -----------------------------------------------------------------

    def _lapor(self, element: etree._Element | None, kind: str) -> etree._Element | None:
        """``<lapor:KIND>`` in the element's extensionElements, if the file has one."""
        if element is None:
            return None
        extensions = element.find(f"{{{BPMN}}}extensionElements")
        if extensions is None:
            return None
        return extensions.find(f"{{{LAPOR}}}{kind}")
