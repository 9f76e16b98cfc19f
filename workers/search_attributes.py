"""The custom search attributes of a case workflow: defined once, used by the workflow, the servers
and ``lapor temporal search-attributes``.

They make cases findable in the Temporal Web UI and through ``list_workflows``, e.g.
``LaporAgency = "kemenkes" AND LaporStatus = "Terdisposisi"`` or
``LaporNextDue < "2026-04-01T00:00:00Z"``, and they are the whole row of the service API's case
list on Temporal (``workers.caselist``). Only public facts about a case are indexed: never the
reporter's identity, never the complaint text (visibility stores are readable by every operator
of the namespace).

Two generations: ``INDEXED`` (status, state, agency, region, level, next due) since
``SEARCH_ATTRIBUTES_PATCH``, and ``LISTED`` (workflow, opened at, outcome) added for the case
list under ``CASE_LIST_PATCH`` (``workers.workflow``): a run recorded before it upserts the first
six only, or its replay would meet commands its history does not hold.

A server must know an attribute before a workflow may set it: the dev server takes
``--search-attribute NAME=Type`` at start, the time-skipping test server and real clusters take
``OperatorService.AddSearchAttributes`` (``register``).

This module is imported inside the workflow sandbox: keep it pure (no I/O at import time, no
clock); the operator-service code runs only when ``register`` is called, outside workflows.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC
from typing import TYPE_CHECKING, Any

from temporalio.common import (
    SearchAttributeIndexedValueType,
    SearchAttributeKey,
    SearchAttributeUpdate,
    TypedSearchAttributes,
)

if TYPE_CHECKING:
    from temporalio.client import Client

    from engine.domain.case import Case

__all__ = [
    "AGENCY",
    "ALL",
    "ESCALATION_LEVEL",
    "INDEXED",
    "LISTED",
    "NEXT_DUE",
    "OPENED_AT",
    "OUTCOME",
    "REGION",
    "STATE",
    "STATUS",
    "WORKFLOW",
    "dev_server_args",
    "register",
    "type_name",
    "updates",
    "values",
]

STATUS = SearchAttributeKey.for_keyword("LaporStatus")  # the public status label
STATE = SearchAttributeKey.for_keyword("LaporState")
AGENCY = SearchAttributeKey.for_keyword("LaporAgency")  # unset until the case is disposed
REGION = SearchAttributeKey.for_keyword("LaporRegion")
ESCALATION_LEVEL = SearchAttributeKey.for_int("LaporEscalationLevel")
NEXT_DUE = SearchAttributeKey.for_datetime("LaporNextDue")  # unset while no clock runs
WORKFLOW = SearchAttributeKey.for_keyword("LaporWorkflow")  # the definition's name (sp4n-lapor)
OPENED_AT = SearchAttributeKey.for_datetime("LaporOpenedAt")  # the case's own start time
OUTCOME = SearchAttributeKey.for_keyword("LaporOutcome")  # unset while the case is open

#: The first generation (``SEARCH_ATTRIBUTES_PATCH``).
INDEXED: tuple[SearchAttributeKey[Any], ...] = (
    STATUS,
    STATE,
    AGENCY,
    REGION,
    ESCALATION_LEVEL,
    NEXT_DUE,
)
#: What the case list needs beyond them (``CASE_LIST_PATCH``). The workflow's run start time is
#: no substitute for ``OPENED_AT``: a continued run starts later than its case opened.
LISTED: tuple[SearchAttributeKey[Any], ...] = (WORKFLOW, OPENED_AT, OUTCOME)
#: Every attribute a server must know (registered together).
ALL: tuple[SearchAttributeKey[Any], ...] = INDEXED + LISTED


_TYPE_NAMES = {
    SearchAttributeIndexedValueType.KEYWORD: "Keyword",
    SearchAttributeIndexedValueType.INT: "Int",
    SearchAttributeIndexedValueType.DATETIME: "Datetime",
}


def type_name(key: SearchAttributeKey[Any]) -> str:
    """The type as the Temporal CLI spells it (``Keyword``, ``Int``, ``Datetime``)."""
    return _TYPE_NAMES[key.indexed_value_type]


def dev_server_args() -> list[str]:
    """``--search-attribute NAME=Type`` for each attribute, for ``temporal server start-dev``."""
    args: list[str] = []
    for key in ALL:
        args += ["--search-attribute", f"{key.name}={type_name(key)}"]
    return args


def values(case: Case) -> dict[str, Any]:
    """The value of every attribute for ``case`` by name; ``None`` means unset."""
    due = case.next_due
    # UTC, so the value shown in the UI and compared in queries does not depend on the zone
    # of the region the clock counts in.
    return {
        STATUS.name: case.status,
        STATE.name: case.state,
        AGENCY.name: case.agency or None,
        REGION.name: case.region,
        ESCALATION_LEVEL.name: case.escalation_level,
        NEXT_DUE.name: None if due is None else due.astimezone(UTC),
        WORKFLOW.name: case.workflow,
        OPENED_AT.name: case.opened_at.astimezone(UTC),
        OUTCOME.name: case.outcome,
    }


def updates(
    case: Case,
    current: TypedSearchAttributes,
    keys: Sequence[SearchAttributeKey[Any]] = ALL,
) -> list[SearchAttributeUpdate[Any]]:
    """The upserts that bring ``current`` (the workflow's attributes now) to ``case``'s values,
    for ``keys`` only (a run recorded before ``LISTED`` existed passes ``INDEXED``).

    Empty when nothing changed: most decisions move a case along without touching, say, its
    agency or region, and an upsert is a command in the workflow's history.
    """
    out: list[SearchAttributeUpdate[Any]] = []
    wanted = values(case)
    for key in keys:
        value = wanted[key.name]
        have = current.get(key)
        if value == have:
            continue
        out.append(key.value_unset() if value is None else key.value_set(value))
    return out


async def register(
    client: Client, namespace: str, keys: Sequence[SearchAttributeKey[Any]] = ALL
) -> list[str]:
    """Make the server know ``keys`` in ``namespace``; returns the names added (idempotent).

    Where the server can list its attributes (real clusters, the dev server), an attribute that
    exists with another type is an error: a workflow would fail every task trying to set it.
    The Java time-skipping server cannot list them; there each is added on its own and
    "already exists" counts as done.
    """
    from temporalio.api.enums.v1 import IndexedValueType
    from temporalio.api.operatorservice.v1 import (
        AddSearchAttributesRequest,
        ListSearchAttributesRequest,
    )
    from temporalio.service import RPCError, RPCStatusCode

    from engine.domain.errors import LaporError

    wanted = {key.name: IndexedValueType.ValueType(int(key.indexed_value_type)) for key in keys}
    operator = client.operator_service
    try:
        listing = await operator.list_search_attributes(
            ListSearchAttributesRequest(namespace=namespace)
        )
    except RPCError as exc:
        if exc.status != RPCStatusCode.UNIMPLEMENTED:
            raise
        added: list[str] = []
        for name, kind in wanted.items():
            try:
                await operator.add_search_attributes(
                    AddSearchAttributesRequest(namespace=namespace, search_attributes={name: kind})
                )
            except RPCError as add_error:
                if add_error.status != RPCStatusCode.ALREADY_EXISTS:
                    raise
            else:
                added.append(name)
        return added
    existing = dict(listing.custom_attributes)
    clashes = [
        f"{name} is {IndexedValueType.Name(existing[name])}, expected {IndexedValueType.Name(kind)}"
        for name, kind in wanted.items()
        if name in existing and existing[name] != kind
    ]
    if clashes:
        raise LaporError(
            f"namespace {namespace}: search attributes with another type: " + "; ".join(clashes)
        )
    missing = {name: kind for name, kind in wanted.items() if name not in existing}
    if missing:
        try:
            await operator.add_search_attributes(
                AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
            )
        except RPCError as exc:  # another process registered them between list and add
            if exc.status != RPCStatusCode.ALREADY_EXISTS:
                raise
    return sorted(missing)
