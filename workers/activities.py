"""Activities: the effects of a decision that touch the world, delivered outside the workflow.

``decide`` already recorded what happened; the delivery activity only tells the world, through
the same delivery handlers as the embedded runtime's outbox (``engine.runtime.handlers``: log,
signed webhook, plug-ins by entry point). Each world-facing effect becomes the same
``OutboxMessage`` the outbox would hold (``engine.runtime.delivery``), with the same idempotency
key ``case:seq:index``, so a receiver gets the same signed bodies from either runtime.

A handler that looks something up at delivery (``reporter-gateway``: the reporter's contact) does
so from the worker process: ``lapor worker`` gives it a client that queries the case workflow's
sealed identity and opens it with the worker's key ring; the contact never enters a Temporal
history, an activity input or an error.

Temporal retries the activity (``DELIVERY_RETRY``): delivery is at least once, and receivers
deduplicate by the key. An attempt heartbeats after each message it delivered, so a retry starts
after the last one that got through. A handler's permanent ``DeliveryError`` ends the retries.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from temporalio import activity
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

from engine.domain.events import world_effects
from engine.runtime.delivery import (
    DeliveryError,
    DeliveryHandler,
    OutboxMessage,
    Undeliverable,
    handler_for,
    outbox_message,
)
from engine.runtime.logs import case_logger

__all__ = [
    "DELIVERY_RETRY",
    "DELIVERY_TIMEOUT",
    "Deliveries",
    "EffectBatch",
    "batch_for",
]

DELIVERY_TIMEOUT = timedelta(seconds=30)
DELIVERY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=5),
    maximum_attempts=20,
)


@dataclass
class EffectBatch:
    """What one decision owes the world. ``indices`` are the effects' places in the record and
    ``case`` the agency-safe view of the case after it (both absent in batches recorded before
    deliveries went through the handlers: then the effects are only logged)."""

    case_id: str
    seq: int  # the history record's sequence number (1-based): one batch per decision
    effects: list[dict[str, Any]] = field(default_factory=list)
    indices: list[int] | None = None
    case: dict[str, Any] | None = None


def batch_for(
    case_id: str, seq: int, record_effects: Sequence[dict[str, Any]], case: dict[str, Any]
) -> EffectBatch | None:
    """The batch of a recorded decision (``case`` its agency view), or ``None`` if it owes
    nothing to anyone."""
    found = world_effects(record_effects)
    if not found:
        return None
    return EffectBatch(
        case_id,
        seq,
        [dict(effect) for _, effect, _ in found],
        [index for index, _, _ in found],
        case,
    )


def _messages(batch: EffectBatch, attempt: int) -> list[OutboxMessage]:
    assert batch.indices is not None and batch.case is not None
    return [
        outbox_message(batch.case_id, batch.seq, index, effect, batch.case, attempts=attempt)
        for index, effect in zip(batch.indices, batch.effects, strict=True)
    ]


_SAFE_KEYS = ("kind", "to", "template", "agency", "via", "clock", "level", "due_at")


class Deliveries:
    """The ``deliver_effects`` activity, bound to the worker's delivery handlers."""

    def __init__(self, handlers: Sequence[DeliveryHandler]) -> None:
        self.handlers = list(handlers)

    @activity.defn(name="deliver_effects")
    async def deliver_effects(self, batch: EffectBatch) -> int:
        """Deliver each message of one decision; returns how many were delivered."""
        info = activity.info()
        log = case_logger(batch.case_id).bind(seq=batch.seq, attempt=info.attempt)
        if batch.indices is None or batch.case is None:
            # Recorded before deliveries went through the handlers: what it was then, a log line.
            for index, effect in enumerate(batch.effects):
                fields = {k: effect[k] for k in _SAFE_KEYS if k in effect}
                log.info("effect_delivered", index=index, **fields)
            return len(batch.effects)
        details = info.heartbeat_details
        done = int(details[0]) if details else 0  # delivered by an earlier attempt
        messages = _messages(batch, info.attempt)
        for number, message in enumerate(messages[done:], start=done):
            handler = handler_for(self.handlers, message)
            if handler is None:
                raise ApplicationError(
                    f"no delivery handler for kind={message.kind!r} target={message.target!r}",
                    type="unhandled",
                )
            try:
                # In a thread: handlers block (HTTP), and one that looks up the reporter's
                # contact queries this very workflow, which needs the worker's loop free.
                await asyncio.to_thread(handler.deliver, message)
            except Undeliverable as exc:
                # Nobody to reach (a reporter without a contact): settled, not retried. The
                # reason never quotes an identity.
                log.info(
                    "undeliverable",
                    idempotency_key=message.idempotency_key,
                    handler=handler.name,
                    reason=exc.message,
                )
                activity.heartbeat(number + 1)
                continue
            except DeliveryError as exc:
                raise ApplicationError(
                    f"{handler.name}: {exc.message}",
                    type="delivery_failed",
                    non_retryable=exc.permanent,
                ) from None
            except Exception as exc:  # any handler failure is retried, never the worker's
                raise ApplicationError(
                    f"{handler.name}: {type(exc).__name__}: {exc}", type="delivery_failed"
                ) from None
            log.debug("delivered", idempotency_key=message.idempotency_key, handler=handler.name)
            activity.heartbeat(number + 1)
        return len(messages)
