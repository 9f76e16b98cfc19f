"""What a delivery handler sees and does, whichever runtime decided the effect.

A world-facing effect (``engine.domain.events.WORLD_EFFECTS``) becomes one ``OutboxMessage``: in
the embedded runtime a row of the outbox table, on Temporal the input of a delivery activity.
Both hand it to the same handlers (``engine.runtime.handlers``: log, signed webhook, plug-ins), so
a receiver gets the same bytes, with the same idempotency key, from either runtime.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from engine.domain.case import Case, agency_view
from engine.domain.errors import LaporError
from engine.domain.events import WORLD_EFFECTS, world_effects
from engine.domain.records import HistoryRecord

__all__ = [
    "DeliveryError",
    "DeliveryHandler",
    "DeliveryReport",
    "OutboxMessage",
    "Undeliverable",
    "delivery_key",
    "handler_for",
    "messages_for",
    "outbox_message",
]


class DeliveryError(LaporError):
    """A handler could not deliver a message. ``permanent``: retrying cannot help, dead-letter it.

    Handlers may raise any exception; this one lets them say why in words, and whether to retry.
    """

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class Undeliverable(DeliveryError):
    """The message has nobody to reach: a reporter who left no contact (anonymous, or none
    given), or whose identity was erased. Not a failure to retry, nor a dead letter for an
    operator: the outbox settles it as ``undeliverable`` with this reason, which never quotes an
    identity."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, permanent=True)


@dataclass(frozen=True)
class OutboxMessage:
    """One outbox row as a handler sees it.

    ``attempts`` is the number of this attempt, 1 for the first; ``payload`` is the parsed JSON
    (``case_id``, ``seq``, ``effect``, ``case``: an agency-safe view without the reporter).
    """

    id: int
    case_id: str
    seq: int
    idempotency_key: str
    kind: str
    target: str
    payload: Mapping[str, Any]
    attempts: int


@runtime_checkable
class DeliveryHandler(Protocol):
    """Delivers messages somewhere: a log, a webhook, an SMS gateway (plug-ins, see handlers)."""

    name: str

    def accepts(self, message: OutboxMessage) -> bool:
        """Whether this handler is the one for ``message`` (the first that accepts gets it)."""
        ...

    def deliver(self, message: OutboxMessage) -> None:
        """Deliver, or raise. Returning means delivered: the row is then marked so."""
        ...


@dataclass(frozen=True)
class DeliveryReport:
    """What one ``deliver_due`` call did.

    ``failed`` will be retried; ``dead`` will not; ``unhandled`` had no accepting handler here
    and were put back without spending an attempt; ``undeliverable`` had nobody to reach (see
    ``Undeliverable``); ``held`` waited for an earlier message of their case that must go first
    (put back, no attempt spent); ``pending_after`` is ``backlog`` afterwards.
    """

    delivered: int
    failed: int
    dead: int
    pending_after: int
    unhandled: int = 0
    undeliverable: int = 0
    held: int = 0


def delivery_key(case_id: str, seq: int, index: int) -> str:
    """The idempotency key of effect ``index`` of record ``seq``: stable across every retry and
    the same on every runtime, so receivers deduplicate by it."""
    return f"{case_id}:{seq}:{index}"


def outbox_message(
    case_id: str,
    seq: int,
    index: int,
    effect: Mapping[str, Any],
    view: Mapping[str, Any],
    *,
    attempts: int = 1,
) -> OutboxMessage:
    """The message for effect ``index`` (a world-facing one) of record ``seq``; ``view`` is the
    agency-safe view of the case after the decision (``agency_view``)."""
    kind = str(effect["kind"])
    return OutboxMessage(
        id=0,
        case_id=case_id,
        seq=seq,
        idempotency_key=delivery_key(case_id, seq, index),
        kind=kind,
        target=str(effect[WORLD_EFFECTS[kind]]),
        payload={"case_id": case_id, "seq": seq, "effect": dict(effect), "case": dict(view)},
        attempts=attempts,
    )


def messages_for(case: Case, record: HistoryRecord, *, attempts: int = 1) -> list[OutboxMessage]:
    """The messages one decision owes the world: one per world-facing effect of ``record``."""
    found = world_effects(record.effects)
    if not found:
        return []
    view = agency_view(case)
    return [
        outbox_message(case.id, record.seq, index, effect, view, attempts=attempts)
        for index, effect, _ in found
    ]


def handler_for(
    handlers: Sequence[DeliveryHandler], message: OutboxMessage
) -> DeliveryHandler | None:
    """The handler that gets ``message``: the first that accepts it (``None``: nobody here)."""
    return next((handler for handler in handlers if handler.accepts(message)), None)
