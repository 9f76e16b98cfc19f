"""Activities: the effects of a decision that touch the world, run outside the workflow.

``decide`` already recorded what happened; an activity only tells the world (here: a structured log
line per effect; a real deployment swaps in the notification/webhook delivery of
``engine.runtime.handlers``). Activities are retried by Temporal (``DELIVERY_RETRY``), so delivery
must be idempotent: ``(case_id, seq, index)`` identifies one effect of one decision.

Only agency-safe fields are logged: effects carry roles and template names, never a reporter's
identity, and the logger (``engine.logs``) masks identity keys on top of that.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from temporalio import activity
from temporalio.common import RetryPolicy

from engine.logs import case_logger

__all__ = ["DELIVERY_RETRY", "DELIVERY_TIMEOUT", "WORLD_EFFECTS", "EffectBatch", "deliver_effects"]

#: Effect kinds (``effect_to_json(...)["kind"]``) that someone outside the case must hear about.
WORLD_EFFECTS = frozenset({"notify", "routed", "escalated"})

DELIVERY_TIMEOUT = timedelta(seconds=30)
DELIVERY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=5),
    maximum_attempts=20,
)


@dataclass
class EffectBatch:
    case_id: str
    seq: int  # the history record's sequence number (1-based): one batch per decision
    effects: list[dict[str, Any]] = field(default_factory=list)


def world_effects(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The effects of one history record (its JSON) that must be delivered."""
    return [dict(e) for e in record.get("effects", []) if e.get("kind") in WORLD_EFFECTS]


_SAFE_KEYS = ("kind", "to", "template", "agency", "via", "clock", "level", "due_at")


@activity.defn
async def deliver_effects(batch: EffectBatch) -> int:
    """Deliver (log) each effect of one decision; returns how many were delivered."""
    log = case_logger(batch.case_id).bind(seq=batch.seq, attempt=activity.info().attempt)
    for index, effect in enumerate(batch.effects):
        fields = {k: effect[k] for k in _SAFE_KEYS if k in effect}
        log.info("effect_delivered", index=index, **fields)
    return len(batch.effects)
