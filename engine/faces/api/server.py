"""``lapor serve``'s application: the service API over the embedded runtime (``--db``) or
Temporal (``--temporal``), built from ``ServeSettings``.

Uvicorn's worker processes (``--workers N``) import the app by name, so the settings travel in
the environment (``SETTINGS_ENV``, JSON without secrets: a database URL's password is read from
the URL the operator gave, as every ``lapor`` command does). The key store is always the
database of ``--db``: with ``--temporal`` it holds the API keys only.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from fastapi import FastAPI
from sqlalchemy import Engine, create_engine, select

from engine.domain.errors import LaporError
from engine.domain.model import Model
from engine.faces.api.app import DEFAULT_BODY_LIMIT, DEFAULT_RATE, DEFAULT_TIMEOUT, create_app
from engine.faces.api.service import CaseLister
from engine.runtime.clock import WallClock
from engine.runtime.contract import Runtime
from engine.runtime.identity import KeyRing
from engine.sql import store
from engine.sql.apikeys import ApiKeyStore
from engine.sql.caselist import CaseFilter, CaseSummary, list_cases
from engine.sql.tables import api_keys

__all__ = ["SETTINGS_ENV", "ServeSettings", "app_from_env", "build_app", "openapi_app"]

SETTINGS_ENV = "LAPOR_SERVE_SETTINGS"


@dataclass(frozen=True)
class ServeSettings:
    db: str
    temporal: str | None = None
    project: str | None = None
    rate: str = DEFAULT_RATE
    body_limit: int = DEFAULT_BODY_LIMIT
    timeout: float = DEFAULT_TIMEOUT
    log_json: bool | None = None

    def to_env(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls) -> ServeSettings:
        text = os.environ.get(SETTINGS_ENV)
        if not text:
            raise LaporError(f"${SETTINGS_ENV} is not set; start the API with `lapor serve`")
        return cls(**json.loads(text))


def _models(project: str | None) -> Mapping[str, Model]:
    from engine.definitions.loader import load_models
    from engine.definitions.project import locate_project

    found = locate_project(Path(project) if project else None)
    return load_models(found.workflows, found.policies)


def _ready(engine: Engine) -> Callable[[], None]:
    def check() -> None:
        query = select(api_keys.c.id).limit(1)
        store.read(engine, lambda conn: conn.execute(query).all(), action="check the database")

    return check


def _lister(engine: Engine) -> CaseLister:
    def page(found: CaseFilter, now: datetime, offset: int, limit: int) -> list[CaseSummary]:
        return list_cases(engine, found, now, offset=offset, limit=limit)

    return page


def _temporal_factory(address: str, models: Mapping[str, Model]) -> Callable[[], Runtime]:
    """One Temporal runtime for every thread: it runs its own event loop thread, which every
    call hands its coroutine to, so it is shared rather than made per thread."""
    lock = threading.Lock()
    made: list[Runtime] = []

    def runtime() -> Runtime:
        with lock:
            if not made:
                from workers.connection import TemporalTarget
                from workers.runtime import TemporalRuntime

                target = TemporalTarget.from_env(address)
                made.append(TemporalRuntime.connect(target, models=models))
            return made[0]

    return runtime


def _temporal_lister(runtime: Callable[[], Runtime]) -> CaseLister:
    """The case list from Temporal's visibility store (``workers.caselist``), on the shared
    runtime's client and event loop; made on first use, as the runtime is."""

    def page(found: CaseFilter, now: datetime, offset: int, limit: int) -> list[CaseSummary]:
        from workers.caselist import TemporalCaseList
        from workers.runtime import TemporalRuntime

        backend = runtime()
        assert isinstance(backend, TemporalRuntime)  # all _temporal_factory makes
        return TemporalCaseList(backend)(found, now, offset, limit)

    return page


def build_app(settings: ServeSettings) -> FastAPI:
    """The app ``lapor serve`` runs; raises ``SchemaMissingError`` when ``--db`` is not
    migrated (``lapor db upgrade``)."""
    models = _models(settings.project)
    # No ping before each pooled connection's use: a request after a database restart is
    # answered 503 once and retried, rather than every request paying a round trip.
    engine = store.open_engine(settings.db, create=False, ping=False)
    ready = _ready(engine)
    ready()  # fail at start, with the fix in the message, rather than on every request
    keyring = KeyRing.from_env()
    factory: Callable[[], Runtime]
    lister: CaseLister
    if settings.temporal is not None:
        factory = _temporal_factory(settings.temporal, models)
        lister = _temporal_lister(factory)
    else:
        from engine.sql.embedded import EmbeddedRuntime

        def factory() -> Runtime:
            return EmbeddedRuntime(engine, models, WallClock(), keyring=keyring)

        lister = _lister(engine)
    return create_app(
        factory,
        keys=ApiKeyStore(engine),
        models=models,
        keyring=keyring,
        case_lister=lister,
        ready=ready,
        rate=settings.rate,
        body_limit=settings.body_limit,
        timeout=settings.timeout,
        # The embedded runtime commits a list of commands in one transaction; Temporal decides
        # each case in its own workflow, where a queue would only serialise them.
        group_commit=settings.temporal is None,
        # A local file: reading a case is cheaper than handing it to a thread. PostgreSQL and
        # Temporal answer over the network, which the event loop must not wait for.
        inline_point_reads=settings.temporal is None and not store.is_postgres(engine),
    )


def app_from_env() -> FastAPI:
    """Uvicorn's app factory in each worker process (``--workers``)."""
    from engine.faces.api.profiling import profile_if_asked
    from engine.runtime.logs import configure_logging

    profile_if_asked()
    settings = ServeSettings.from_env()
    configure_logging(json=settings.log_json)
    return build_app(settings)


def openapi_app() -> FastAPI:
    """The app as far as its OpenAPI document goes: no database is opened, no runtime made."""

    def no_runtime() -> Runtime:
        raise LaporError("this app only describes the API; `lapor serve` runs it")

    return create_app(no_runtime, keys=ApiKeyStore(create_engine("sqlite://")), models={})
