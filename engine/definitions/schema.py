"""The file formats: typed models of workflow files and sla/escalation/routing policy files.

These models are the single description of what a definition file may contain. They validate a
parsed file strictly (unknown keys and wrong types are errors, nothing is coerced: ``"3"`` is not
``3`` and ``yes`` is not ``true``) and they are the source of the JSON Schema that editors use
(``lapor schema``). Cross-references (does this state exist? is that ladder used?) are not
checked here but in ``checks.py``, where every problem can name the valid alternatives.

``Parsed`` pairs a validated model with the text it came from, so any later check can point at the
exact ``file:line:col`` of the element it complains about.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Generic, Literal, TypeVar

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    model_validator,
)
from pydantic.functional_validators import AfterValidator
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from engine.definitions.yamlio import MarkedDict, MarkedList
from engine.domain.calendar import Duration
from engine.domain.errors import CalendarError, Location

__all__ = [
    "DURATION_TABLE_TAG",
    "DURATION_TEXT_TAG",
    "ITEM_NOUNS",
    "AgencySpec",
    "ClockSpec",
    "DurationTable",
    "EscalationPolicy",
    "IntakeSpec",
    "LadderLevel",
    "NotifySpec",
    "OnLapse",
    "Parsed",
    "PolicyFile",
    "PolicySpec",
    "RoutingPolicy",
    "RoutingRuleSpec",
    "SlaPolicy",
    "Source",
    "StateSpec",
    "TransitionSpec",
    "WorkflowFile",
    "json_schema",
]

# What the items of each list-valued key are, so a type error can say "expected a list of state
# names" rather than pydantic's "Input should be a valid list".
ITEM_NOUNS: dict[str, str] = {
    "from": "state names",
    "runs_in": "state names",
    "pauses_in": "state names",
    "roles": "role names",
    "requires": "field names",
    "accepts": "field names",
    "restart": "clock names",
    "notify": "notifications ({to, template})",
    "rules": "routing rules ({category, region, agency})",
}

# Tags of the duration union (a plain string or a table chosen by a field); the loader skips them
# when it maps an error's path back to the file, so they must never collide with a real key.
DURATION_TEXT_TAG = "duration-text"
DURATION_TABLE_TAG = "duration-table"


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def _valid_duration(text: str) -> str:
    try:
        Duration.parse(text)
    except CalendarError as exc:
        # pydantic turns a ValueError into an error entry; the loader shows exc's message as is.
        raise ValueError(exc.message) from None
    return text


def _one_or_many(value: Any) -> Any:
    # "from: submitted" is as natural as "from: [submitted]"; normalise before strict checking.
    return [value] if isinstance(value, str) else value


DurationText = Annotated[
    str,
    AfterValidator(_valid_duration),
    Field(
        description="A whole number and a unit: working days / hari kerja, working hours / jam "
        "kerja, working seconds / detik kerja, or calendar days / hari.",
        examples=["3 working days", "3 hari kerja", "4 jam kerja", "60 calendar days"],
    ),
]
StateNames = Annotated[
    list[str],
    BeforeValidator(_one_or_many, json_schema_input_type=str | list[str]),
]


# --- workflow files -------------------------------------------------------------------------


class StateSpec(_Spec):
    """A step of the process and the status label the public sees while a case is in it."""

    status: str = Field(description="Status label shown to the public, e.g. 'Terdisposisi'.")
    final: bool = Field(False, description="true if a case that enters this state is closed.")
    outcome: str | None = Field(
        None, description="Outcome recorded when a case ends here (final states only)."
    )
    description: str = Field("", description="What this state means, for people.")


class NotifySpec(_Spec):
    """Tell a party about a transition using a message template."""

    to: str = Field(description="Recipient: reporter, agency, admin or another party.")
    template: str = Field(description="Name of the message template.")


class TransitionSpec(_Spec):
    """A signal that moves a case from one of the ``from`` states to the ``to`` state."""

    description: str = Field("", description="What this transition means, for people.")
    sources: StateNames = Field(
        alias="from", description="State name, or list of state names, the signal is allowed in."
    )
    to: str = Field(description="The state the case moves to.")
    roles: list[str] = Field(description="Roles (from `roles`) allowed to send this signal.")
    requires: list[str] = Field(
        default_factory=list, description="Data fields the signal must carry (non-empty)."
    )
    accepts: list[str] = Field(
        default_factory=list, description="Optional data fields; any other field is refused."
    )
    guard: str | None = Field(
        None,
        description="CEL expression over `case`, `data` and `actor` that must be true, "
        "e.g. `data.rating >= 1`.",
    )
    guard_message: str | None = Field(
        None, description="Why the signal is refused if the guard fails."
    )
    route: bool = Field(False, description="true to (re)assign the responsible agency.")
    restart: list[str] = Field(
        default_factory=list, description="Clocks that start afresh when this transition is taken."
    )
    notify: list[NotifySpec] = Field(
        default_factory=list, description="Notifications sent when this transition is taken."
    )


class IntakeSpec(_Spec):
    """What a channel must (requires) and may (accepts) send to open a case."""

    requires: list[str] = Field(
        default_factory=list, description="Fields every new report must carry."
    )
    accepts: list[str] = Field(
        default_factory=list, description="Optional fields a new report may carry."
    )
    notify: list[NotifySpec] = Field(
        default_factory=list, description="Notifications sent when a case opens."
    )


class WorkflowFile(_Spec):
    """A workflow: states, the signals that move a case between them, and who may send them."""

    workflow: str = Field(description="Name of the workflow; policies refer to it by this name.")
    version: str = Field(description='Version label, quoted, e.g. "2026.1".')
    title: str = Field(description="Human-readable title.")
    roles: dict[str, str] = Field(description="Role name to description; `system` is the engine.")
    intake: IntakeSpec = Field(IntakeSpec(), description="Fields to open a case.")
    initial: str = Field(description="The state every case starts in.")
    states: dict[str, StateSpec] = Field(description="State name to state.")
    transitions: dict[str, TransitionSpec] = Field(description="Trigger name to transition.")


# --- sla policies ---------------------------------------------------------------------------


class DurationTable(_Spec):
    """A duration chosen by a case data field, e.g. the completion tier."""

    by: str = Field(description="The case data field whose value picks the duration.")
    values: dict[str, DurationText] = Field(description="Field value to duration.")
    default: DurationText = Field(description="Duration when the field is absent or unlisted.")


def _duration_tag(value: Any) -> str | None:
    if isinstance(value, str):
        return DURATION_TEXT_TAG
    if isinstance(value, dict):
        return DURATION_TABLE_TAG
    return None


ClockDurationSpec = Annotated[
    Annotated[str, AfterValidator(_valid_duration), Tag(DURATION_TEXT_TAG)]
    | Annotated[DurationTable, Tag(DURATION_TABLE_TAG)],
    Discriminator(
        _duration_tag,
        custom_error_type="duration_type",
        custom_error_message="expected a duration such as '3 working days' "
        "or a mapping {by: FIELD, values: {VALUE: DURATION}, default: DURATION}",
    ),
]


class OnLapse(_Spec):
    """What happens when a clock lapses: climb a ladder, or fire a transition as `system`."""

    model_config = ConfigDict(
        json_schema_extra={"oneOf": [{"required": ["escalate"]}, {"required": ["fire"]}]}
    )

    escalate: str | None = Field(None, description="Name of the escalation ladder to climb.")
    fire: str | None = Field(None, description="Trigger fired by the system actor.")

    @model_validator(mode="after")
    def _exactly_one(self) -> OnLapse:
        if (self.escalate is None) == (self.fire is None):
            raise ValueError(
                "on_lapse takes exactly one of escalate (a ladder name) or fire (a trigger), "
                "e.g. {escalate: agency} or {fire: auto_close}"
            )
        return self


class ClockSpec(_Spec):
    """An SLA clock: runs while a case is in `runs_in`, pauses in `pauses_in`, stops elsewhere."""

    duration: ClockDurationSpec = Field(description="How long the case may spend in runs_in.")
    runs_in: StateNames = Field(min_length=1, description="States in which the clock runs.")
    pauses_in: StateNames = Field(
        default_factory=list, description="States in which the clock pauses and keeps its time."
    )
    region: Literal["national", "agency", "case"] = Field(
        "agency",
        description="Whose time zone counts: national_region, the agency's region, or the case's.",
    )
    on_lapse: OnLapse | None = Field(None, description="What happens when the clock lapses.")


class SlaPolicy(_Spec):
    """The SLA clocks of one workflow."""

    policy: str = Field(description="Name of this policy.")
    kind: Literal["sla"] = Field(description="The kind of policy: sla.")
    workflow: str = Field(description="Name of the workflow this policy applies to.")
    calendar: str = Field("id", description="Calendar name: policies/calendars/NAME-YYYY.yaml.")
    national_region: str = Field(
        "ID-JK", description="ISO 3166-2:ID code whose time zone national clocks use."
    )
    clocks: dict[str, ClockSpec] = Field(description="Clock name to clock.")


# --- escalation policies --------------------------------------------------------------------


class LadderLevel(_Spec):
    """One rung of a ladder: who the case escalates to, and their deadline."""

    to: str = Field(description="Who the case escalates to at this level.")
    deadline: DurationText | None = Field(
        None, description="Time before the next level; required unless final."
    )
    final: bool = Field(False, description="true on the last level (and only there).")
    fire: str | None = Field(
        None, description="Trigger the system fires when this level is reached."
    )
    notify: str = Field("escalation", description="Message template sent to `to`.")
    source: str = Field("", description="Where this rung and its deadline come from.")


class EscalationPolicy(_Spec):
    """Escalation ladders a clock climbs when it lapses."""

    policy: str = Field(description="Name of this policy.")
    kind: Literal["escalation"] = Field(description="The kind of policy: escalation.")
    workflow: str = Field(description="Name of the workflow this policy applies to.")
    ladders: dict[str, list[LadderLevel]] = Field(
        description="Ladder name to its levels, in order."
    )


# --- routing policies -----------------------------------------------------------------------


class AgencySpec(_Spec):
    """An agency (K/L/D) reports can be disposed to."""

    name: str = Field(description="Full name of the agency.")
    region: str = Field(description="ISO 3166-2:ID province code of its seat, e.g. ID-JK.")


class RoutingRuleSpec(_Spec):
    """category x region -> agency; '*' matches anything and the most specific rule wins."""

    category: str = Field(description="Report category, or '*'.")
    region: str = Field(description="ISO 3166-2:ID province code, or '*'.")
    agency: str = Field(description="Code of an agency under `agencies`.")


class RoutingPolicy(_Spec):
    """Which agency a report is proposed to, by category and region."""

    policy: str = Field(description="Name of this policy.")
    kind: Literal["routing"] = Field(description="The kind of policy: routing.")
    workflow: str = Field(description="Name of the workflow this policy applies to.")
    agencies: dict[str, AgencySpec] = Field(description="Agency code to agency.")
    rules: list[RoutingRuleSpec] = Field(default_factory=list, description="Routing rules.")


PolicySpec = SlaPolicy | EscalationPolicy | RoutingPolicy
PolicyFile = Annotated[PolicySpec, Field(discriminator="kind")]

SpecT = TypeVar("SpecT", bound=BaseModel)


class Source:
    """A file's text and marked data, for pointing at any element of it by its key path."""

    __slots__ = ("_root", "file", "raw", "text")

    def __init__(self, file: str, text: str, raw: MarkedDict) -> None:
        self.file = file
        self.text = text
        self.raw = raw
        self._root: Node | None = None

    def where(self, path: Sequence[str | int], *, key: bool = False) -> Location:
        """Where the value at ``path`` starts (its key, if ``key``); parts not found are skipped.

        Skipping lets pydantic's union tags pass through, and a path into a missing key lands on
        the nearest enclosing element, which is where the user has to add it.
        """
        return _walk(self.file, self._compose(), path, key) or self.raw.where()

    def _compose(self) -> Node | None:
        # The mark-keeping dicts record key positions only; scalar values need the node tree.
        # Composing (no constructing) is safe: this text already passed the strict reader.
        if self._root is None:
            try:
                self._root = yaml.compose(self.text, Loader=yaml.SafeLoader)
            except yaml.YAMLError:
                return None
        return self._root


class MarkedSource(Source):
    """A document that was never YAML text (a BPMN file's): every place comes from the marks
    its reader put on each mapping and list."""

    __slots__ = ()

    def __init__(self, file: str, raw: MarkedDict) -> None:
        super().__init__(file, "", raw)

    def where(self, path: Sequence[str | int], *, key: bool = False) -> Location:
        node: Any = self.raw
        found = self.raw.where()
        for part in path:
            into_dict = isinstance(node, MarkedDict) and isinstance(part, str) and part in node
            into_list = isinstance(node, MarkedList) and isinstance(part, int) and part < len(node)
            if into_dict or into_list:
                found = node.where(part)
                node = node[part]
        return found


class Parsed(Generic[SpecT]):
    """A validated file: its model plus its source, so checks can point at its elements."""

    __slots__ = ("source", "spec")

    def __init__(self, source: Source, spec: SpecT) -> None:
        self.source = source
        self.spec = spec

    @property
    def file(self) -> str:
        return self.source.file

    def where(self, path: Sequence[str | int], *, key: bool = False) -> Location:
        return self.source.where(path, key=key)


def _walk(file: str, node: Node | None, path: Sequence[str | int], key: bool) -> Location | None:
    if node is None:
        return None
    mark = node.start_mark
    last = len(path) - 1
    for index, part in enumerate(path):
        if isinstance(node, MappingNode) and isinstance(part, str):
            for key_node, value_node in node.value:
                if isinstance(key_node, ScalarNode) and key_node.value == part:
                    mark = key_node.start_mark if key and index == last else value_node.start_mark
                    node = value_node
                    break
        elif isinstance(node, SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            mark = node.start_mark
    return Location(file, mark.line + 1, mark.column + 1)


def json_schema() -> dict[str, Any]:
    """One JSON Schema (draft 2020-12) for workflow files and every kind of policy file."""
    adapter: TypeAdapter[Any] = TypeAdapter(WorkflowFile | PolicyFile)
    generated = adapter.json_schema(mode="validation", ref_template="#/$defs/{model}")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://lapor-sla.example/schema/definition.json",
        "title": "lapor-sla definition file",
        "description": "A workflow file (top-level key `workflow`) or a policy file (top-level "
        "key `policy`, with `kind` sla, escalation or routing).",
        "oneOf": [
            {"$ref": "#/$defs/WorkflowFile"},
            {
                "oneOf": [
                    {"$ref": "#/$defs/SlaPolicy"},
                    {"$ref": "#/$defs/EscalationPolicy"},
                    {"$ref": "#/$defs/RoutingPolicy"},
                ],
                "discriminator": {
                    "propertyName": "kind",
                    "mapping": {
                        "sla": "#/$defs/SlaPolicy",
                        "escalation": "#/$defs/EscalationPolicy",
                        "routing": "#/$defs/RoutingPolicy",
                    },
                },
            },
        ],
        "$defs": generated.get("$defs", {}),
    }
