"""Human-readable renderings of cases and histories for the CLI (one place, reused by commands)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from engine.domain.calendar import ZONES, zone_for_region
from engine.domain.case import Case
from engine.domain.events import instant
from engine.domain.records import HistoryRecord

__all__ = ["describe_effect", "describe_event", "history_lines", "local_time", "printable"]

_ZONE_BY_OFFSET = {zone.utcoffset(None): name for name, zone in ZONES.items()}
# C0 and C1 controls but newline and tab, DEL, and the bidirectional overrides: what could move
# the cursor, recolour or clear a terminal, or reorder what an operator reads.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """``text`` safe for a terminal: control characters shown as escapes, never executed."""
    return _CONTROL.sub(lambda m: m.group(0).encode("unicode_escape").decode(), text)


def local_time(moment: datetime | str, region: str | None = None) -> str:
    """``2026-03-25 23:59:59 WIB``: in the region's zone if given, else in the instant's own."""
    if isinstance(moment, str):
        moment = instant(moment)
    if region is not None:
        moment = moment.astimezone(zone_for_region(region))
    offset = moment.utcoffset()
    label = _ZONE_BY_OFFSET.get(offset, moment.strftime("%z"))
    return f"{moment:%Y-%m-%d %H:%M:%S} {label}"


def describe_event(event: Mapping[str, Any]) -> str:
    kind = event.get("kind")
    if kind == "started":
        return f"started by {event['actor']}"
    if kind == "signal":
        fields = ", ".join(f"{k}={v!r}" for k, v in sorted(event["data"].items()))
        return f"signal {event['name']} by {event['actor']}" + (f" ({fields})" if fields else "")
    if kind == "clock_lapsed":
        return f"timer for {event['clock']}"
    if kind == "migrated":
        mapped = ", ".join(f"{a} -> {b}" for a, b in sorted(event["states"].items()))
        return (
            f"migrated by {event['actor']} from model {event['from_model'][:12]} to "
            f"{event['to_model'][:12]}" + (f" ({mapped})" if mapped else "")
        )
    return str(kind)


def describe_effect(effect: Mapping[str, Any]) -> str:
    kind = effect["kind"]
    if kind == "entered":
        return f"entered {effect['state']} ({effect['status']})"
    if kind in ("clock_started", "clock_resumed"):
        verb = "started" if kind == "clock_started" else "resumed"
        return f"clock {effect['clock']} {verb}, due {local_time(effect['due_at'])}"
    if kind == "clock_stopped":
        return f"clock {effect['clock']} stopped"
    if kind == "clock_rescheduled":
        if effect["due_at"] is None:
            return f"clock {effect['clock']} rescheduled: {effect['remaining']} left (paused)"
        return f"clock {effect['clock']} rescheduled, due {local_time(effect['due_at'])}"
    if kind == "clock_paused":
        return f"clock {effect['clock']} paused with {effect['remaining']} left"
    if kind == "lapsed":
        level = f" (escalation level {effect['level']})" if effect["level"] else ""
        return f"clock {effect['clock']} LAPSED: deadline {local_time(effect['due_at'])}{level}"
    if kind == "escalated":
        due = f", due {local_time(effect['due_at'])}" if effect["due_at"] else " (final level)"
        return f"ESCALATED to {effect['to']} (level {effect['level']}){due}"
    if kind == "routed":
        return f"routed to {effect['agency']} (via {effect['via']})"
    if kind == "notify":
        return f"notify {effect['to']}: {effect['template']}"
    if kind == "closed":
        return f"closed: {effect['outcome']}"
    return str(effect)


def history_lines(case: Case, records: Sequence[HistoryRecord]) -> list[str]:
    lines = [f"Case {case.id} · {case.workflow} · model {case.model_hash[:12]}"]
    for record in records:
        lines.append(
            f"#{record.seq:<3} {local_time(record.at, case.region)}  {describe_event(record.event)}"
        )
        lines.extend(f"       → {describe_effect(effect)}" for effect in record.effects)
    lines.append(
        f"Now: {case.state} ({case.status})"
        + (f", agency {case.agency}" if case.agency else "")
        + (
            f", escalation level {case.escalation_level} ({case.escalated_to})"
            if case.escalation_level
            else ""
        )
    )
    for clock in case.clocks:
        if clock.running and clock.due_at is not None:
            lines.append(
                f"  clock {clock.name}: due {local_time(clock.due_at)} (level {clock.level})"
            )
        else:
            lines.append(f"  clock {clock.name}: paused, {clock.remaining} left")
    return lines
