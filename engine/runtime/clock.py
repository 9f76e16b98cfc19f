"""Time for runtimes: the wall clock in production, a virtual clock for demos and policy tests.

The core never reads time; runtimes ask one of these and pass ``now`` in.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol

from engine.domain.machine import LAPSE_MARGIN, wake_at

__all__ = ["LAPSE_MARGIN", "Clock", "VirtualClock", "WallClock", "wake_at"]


class Clock(Protocol):
    def now(self) -> datetime: ...


class WallClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class VirtualClock:
    """A clock that only moves when told to, and never backwards."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("a virtual clock needs an aware start time")
        self._now = start

    def now(self) -> datetime:
        return self._now

    def advance_to(self, moment: datetime) -> None:
        if moment > self._now:
            self._now = moment
