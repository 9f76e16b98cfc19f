"""One client for every runtime: start, signal, status, history and audit of complaint cases.

    from engine.faces.sdk import Client

    client = Client("sqlite:///lapor.db")             # the embedded runtime, wall clock
    started = client.start("sp4n-lapor", {"category": "kesehatan", "region": "ID-JK",
                                          "channel": "web", "description": "..."})
    client.signal(started.case_id, "verify", actor="admin:nasional", data={"tier": "simple"})
    client.status(started.case_id)["status"]          # 'Terdisposisi'

    Client(runtime=TemporalRuntime.connect(TemporalTarget("127.0.0.1:7233")))   # on Temporal

The client is the shell, not the core: it reads the clock and draws tracking numbers
(``LAPOR-2026-7K3QXM2P``, from ``secrets``), then hands plain commands to a runtime
(``engine.runtime.contract.Runtime``: the embedded SQL runtime, or ``workers.runtime``'s Temporal
one). Every call answers the contract's ``Outcome``.

Over the network, ``engine.faces.sdk_http.HttpClient`` (and ``AsyncHttpClient``) make the same
calls against a ``lapor serve`` service API: the same method names, the actor taken from the API
key instead of an argument, typed answers, refusals raised as errors under the same classes
(``UnknownCaseError``, ``KeyReuseError``...), and retries made safe by an ``Idempotency-Key``.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from engine.definitions.project import locate_project
from engine.domain.calendar import zone_for_region
from engine.domain.case import Case
from engine.domain.errors import LaporError
from engine.domain.events import Actor, Signal
from engine.domain.history import AuditReport, audit_case
from engine.domain.machine import allowed_signals
from engine.domain.model import Model
from engine.domain.records import HistoryRecord
from engine.runtime.clock import Clock, WallClock
from engine.runtime.contract import Outcome, Runtime, check_identity_reader, keyed_case_id

__all__ = ["Client", "case_status", "new_case_id"]

_ID_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # no 0/O, 1/I: read over the phone at 1708
_ID_ATTEMPTS = 5


def new_case_id(clock: Clock) -> str:
    """A fresh tracking number, ``LAPOR-<year in WIB>-<8 random characters>``."""
    year = clock.now().astimezone(zone_for_region("ID-JK")).year
    suffix = "".join(secrets.choice(_ID_ALPHABET) for _ in range(8))
    return f"LAPOR-{year}-{suffix}"


def case_status(case: Case, model: Model, now: Any = None) -> dict[str, Any]:
    """What a case's status page shows: no reporter identity, no complaint text.

    Deadlines are shown in the zone of the region their clock counts in; ``overdue`` marks a
    deadline that passed but whose lapse the timer loop has not recorded yet, ``provisional`` one
    counted on a calendar year whose SKB is not confirmed (it may still move).
    """
    clocks = []
    provisional = set(model.calendar.provisional_years)
    for clock in case.clocks:
        zone = zone_for_region(clock.region)
        due = None if clock.due_at is None else clock.due_at.astimezone(zone)
        clocks.append(
            {
                "name": clock.name,
                "running": clock.running,
                "due_at": None if due is None else due.isoformat(),
                "remaining": None if clock.remaining is None else str(clock.remaining),
                "level": clock.level,
                "region": clock.region,
                "overdue": bool(now is not None and due is not None and due < now),
                # A deadline counted on a year whose SKB is not confirmed yet may still move.
                "provisional": due is not None and due.year in provisional,
            }
        )
    zone = zone_for_region(case.region)
    return {
        "case_id": case.id,
        "workflow": case.workflow,
        "model_hash": case.model_hash,
        "state": case.state,
        "status": case.status,
        "agency": case.agency,
        "region": case.region,
        "escalation_level": case.escalation_level,
        "escalated_to": case.escalated_to,
        "outcome": case.outcome,
        "opened_at": case.opened_at.astimezone(zone).isoformat(),
        "closed_at": None
        if case.closed_at is None
        else case.closed_at.astimezone(zone).isoformat(),
        "decisions": case.seq,
        "clocks": clocks,
        "allowed_signals": allowed_signals(model, case),
    }


class Client:
    """Start, signal and inspect cases. ``Client(db_url)`` uses the embedded runtime.

    ``project`` is the folder with workflows/ and policies/ (default: as ``lapor`` finds it,
    ``engine.definitions.project.locate_project``); its workflows are read only when a case is
    started. ``clock`` defaults to the wall clock. ``migrate=True`` brings the database schema up
    to date first (``lapor db upgrade``). ``runtime`` replaces the embedded one (Temporal).
    """

    def __init__(
        self,
        db_url: str = "sqlite:///lapor.db",
        *,
        project: Path | str | None = None,
        clock: Clock | None = None,
        runtime: Runtime | None = None,
        migrate: bool = False,
    ) -> None:
        self.clock: Clock = clock or WallClock()
        self._project = project
        self._registered = False
        if runtime is None:
            from engine.sql.embedded import EmbeddedRuntime
            from engine.sql.store import open_engine

            engine = open_engine(db_url, create=migrate)  # a read never leaves an empty file
            if migrate:
                from engine.sql.migrations import upgrade

                upgrade(db_url, engine=engine)
            runtime = EmbeddedRuntime(engine, {}, self.clock)
        self.runtime: Runtime = runtime

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self.runtime.close()

    def _models(self) -> Mapping[str, Model]:
        from engine.definitions.loader import load_models

        project = locate_project(self._project)
        return load_models(project.workflows, project.policies)

    def start(
        self,
        workflow: str,
        data: Mapping[str, Any],
        *,
        reporter: Mapping[str, Any] | None = None,
        key: str | None = None,
        case_id: str | None = None,
    ) -> Outcome:
        """Open a case. Without ``case_id`` a tracking number is drawn, or, with ``key``, derived
        from the key (``keyed_case_id``), so a retry of the same call returns the first call's
        outcome instead of opening a second case."""
        if not self._registered:
            self.runtime.register(self._models())
            self._registered = True
        if case_id is None and key is not None:
            case_id = keyed_case_id(key)
        for _ in range(_ID_ATTEMPTS):
            chosen = case_id or new_case_id(self.clock)
            result = self.runtime.start(workflow, chosen, data, reporter=reporter, key=key)
            if case_id is not None or result.code != "already_started":
                return result
            # A drawn number collided with an existing case (1 in 32^8 per case): draw again.
        raise LaporError("could not draw an unused case id; is the random source broken?")

    def signal(
        self,
        case_id: str,
        name: str,
        *,
        actor: str | Actor,
        data: Mapping[str, Any] | None = None,
        key: str | None = None,
        reporter_token: str | None = None,
    ) -> Outcome:
        """Send signal ``name`` as ``actor`` (``admin:nasional``, ``agency:kemenkes``...); as
        ``reporter``, with the ``reporter_token`` the case's start answered."""
        who = actor if isinstance(actor, Actor) else Actor.parse(actor)
        signal = Signal(name, who, dict(data or {}), key)
        return self.runtime.signal(case_id, signal, reporter_token=reporter_token)

    def identity(self, case_id: str, *, actor: str | Actor) -> Mapping[str, Any] | None:
        """The identity the reporter gave, for a role allowed to read it (Admin Nasional);
        ``IdentityAccessError`` for any other, ``IdentityErasedError`` once erased."""
        who = actor if isinstance(actor, Actor) else Actor.parse(actor)
        return self.runtime.identity_for(case_id, who)

    def erase_identity(self, case_id: str, *, actor: str | Actor) -> bool:
        """Erase the reporter's identity for good (UU 27/2022), as a role allowed to read it;
        whether there was one to erase."""
        who = actor if isinstance(actor, Actor) else Actor.parse(actor)
        check_identity_reader(who, case_id)
        return self.runtime.erase_reporter(case_id, self.clock.now())

    def case(self, case_id: str) -> Case:
        return self.runtime.case(case_id)

    def status(self, case_id: str) -> dict[str, Any]:
        case = self.runtime.case(case_id)
        return case_status(case, self.runtime.model_of(case_id), self.clock.now())

    def history(self, case_id: str) -> list[HistoryRecord]:
        return self.runtime.history(case_id)

    def audit(self, case_id: str) -> AuditReport:
        """Replay the recorded history under the pinned model; also check the stored case is
        the one the history derives."""
        case = self.runtime.case(case_id)
        current = self.runtime.model_of(case_id)
        records = self.runtime.history(case_id)
        by_hash = getattr(self.runtime, "model_by_hash", None)  # earlier models of a migration

        def models(model_hash: str) -> Model | None:
            if model_hash == current.hash:
                return current
            return by_hash(model_hash) if by_hash is not None else None

        first = models(records[0].model_hash) if records else current
        return audit_case(case, first or current, records, models=models)
