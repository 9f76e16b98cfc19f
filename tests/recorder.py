"""A delivery handler for tests that keeps what it is handed (the real handlers are tested on
their own, against a receiver on 127.0.0.1)."""

from __future__ import annotations

from engine.runtime.delivery import OutboxMessage


class Recorder:
    """Accepts every message and keeps it."""

    name = "recorder"

    def __init__(self) -> None:
        self.messages: list[OutboxMessage] = []

    def accepts(self, message: OutboxMessage) -> bool:
        return True

    def deliver(self, message: OutboxMessage) -> None:
        self.messages.append(message)
