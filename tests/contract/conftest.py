"""Every runtime behind one fixture: the contract suite runs each test on all four.

``runtime_factory(models, start, handlers=())`` builds a runtime on a virtual clock standing at
``start``: the in-memory reference, the SQL runtime on an SQLite file and on a throwaway
PostgreSQL database, and the production Temporal adapter (``workers.runtime.TemporalRuntime``) on
the time-skipping test server with a worker of its own. A new runtime is one more entry here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from engine.domain.model import Model
from engine.runtime.clock import VirtualClock
from engine.runtime.contract import Runtime
from engine.runtime.delivery import DeliveryHandler
from engine.runtime.identity import KeyRing
from engine.runtime.memory import MemoryRuntime
from engine.sql.embedded import EmbeddedRuntime
from engine.sql.migrations import upgrade
from engine.sql.store import open_engine
from tests.runtime.postgres import pg_server, pg_url

__all__ = ["pg_server", "pg_url"]

RUNTIMES = ["memory", "sqlite", "postgresql", "temporal"]

#: The key ring of the contract runs (tests only; production reads $LAPOR_KEY_FILE).
KEYRING = KeyRing({"contract": b"contract-tests-only-identity-key"}, "contract")

Factory = Callable[..., Runtime]


@pytest.fixture(scope="session")
def harness(temporal_servers: object) -> Iterator[Any]:
    """One time-skipping server for the session; each runtime gets its own worker and queue."""
    from workers.testing import TimeSkippingHarness

    with TimeSkippingHarness(keyring=KEYRING) as running:
        yield running


@pytest.fixture(params=RUNTIMES)
def runtime_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def runtime_factory(
    runtime_kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Factory]:
    """``factory(models, start, handlers=())`` for the runtime under test."""
    if runtime_kind == "temporal":
        harness = request.getfixturevalue("harness")

        def temporal(
            models: Mapping[str, Model],
            start: datetime,
            handlers: Sequence[DeliveryHandler] | None = None,
        ) -> Runtime:
            return harness.factory(models, start, handlers=handlers)  # type: ignore[no-any-return]

        yield temporal
        return
    if runtime_kind == "memory":

        def memory(
            models: Mapping[str, Model],
            start: datetime,
            handlers: Sequence[DeliveryHandler] = (),
        ) -> Runtime:
            return MemoryRuntime(models, VirtualClock(start), handlers=handlers, keyring=KEYRING)

        yield memory
        return
    if runtime_kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'lapor.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    upgrade(url)
    engine = open_engine(url)

    def embedded(
        models: Mapping[str, Model],
        start: datetime,
        handlers: Sequence[DeliveryHandler] = (),
    ) -> Runtime:
        return EmbeddedRuntime(
            engine, models, VirtualClock(start), handlers=handlers, keyring=KEYRING
        )

    yield embedded
    engine.dispose()
