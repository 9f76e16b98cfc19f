"""One client for every runtime: start, signal, status, history and audit of complaint cases.

    from engine.sdk import Client

    client = Client("sqlite:///lapor.db")             # the embedded runtime, wall clock
    started = client.start("sp4n-lapor", {"category": "kesehatan", "region": "ID-JK",
                                          "channel": "web", "description": "..."})
    client.signal(started.case_id, "verify", actor="admin:nasional", data={"tier": "simple"})
    client.status(started.case_id)["status"]          # 'Terdisposisi'

The client is the shell, not the core: it reads the clock and makes tracking numbers
(``LAPOR-2026-7K3QXM2P``, from ``secrets``), then hands plain values to a backend. The embedded
backend (SQLAlchemy: SQLite or PostgreSQL) is the only one today; a Temporal backend implements
the same ``Backend`` protocol.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from engine.calendar import zone_for_region
from engine.case import Case
from engine.core import Decision, allowed_signals
from engine.errors import LaporError
from engine.events import Actor, Signal
from engine.history import AuditReport, replay
from engine.model import Model
from engine.records import HistoryRecord
from engine.runtime.clock import Clock, WallClock

__all__ = [
    "Backend",
    "CallResult",
    "Client",
    "EmbeddedBackend",
    "SignalResult",
    "StartResult",
    "case_status",
    "default_project_root",
    "new_case_id",
]

_ID_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # no 0/O, 1/I: read over the phone at 1708
_ID_ATTEMPTS = 5
_PACKAGE_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True, slots=True)
class CallResult:
    """The outcome of a start or a signal: ``accepted``, or refused with a stable ``code`` and a
    ``reason`` (a refusal changes nothing and is not recorded).

    ``replayed``: the idempotency key was used before; this is that call's outcome again.
    """

    case_id: str
    accepted: bool
    state: str | None = None
    status: str | None = None
    code: str | None = None
    reason: str | None = None
    seq: int | None = None
    replayed: bool = False


StartResult = CallResult
SignalResult = CallResult


class Backend(Protocol):
    """What a runtime offers the client. Ids and time are the client's business, not this."""

    def start(
        self,
        workflow: str,
        case_id: str,
        data: Mapping[str, Any],
        *,
        reporter: Mapping[str, Any] | None,
        key: str | None,
    ) -> StartResult: ...

    def signal(self, case_id: str, signal: Signal) -> SignalResult: ...

    def case(self, case_id: str) -> tuple[Case, Model]: ...

    def history(self, case_id: str) -> list[HistoryRecord]: ...

    def close(self) -> None: ...


def new_case_id(clock: Clock) -> str:
    """A fresh tracking number, ``LAPOR-<year in WIB>-<8 random characters>``."""
    year = clock.now().astimezone(zone_for_region("ID-JK")).year
    suffix = "".join(secrets.choice(_ID_ALPHABET) for _ in range(8))
    return f"LAPOR-{year}-{suffix}"


def default_project_root() -> Path:
    """The folder with workflows/ and policies/ above the cwd, else this checkout's own."""
    from engine.scenario import find_project_root

    try:
        return find_project_root(Path.cwd().resolve())
    except LaporError:
        return _PACKAGE_ROOT


def case_status(case: Case, model: Model, now: Any = None) -> dict[str, Any]:
    """What a case's status page shows: no reporter identity, no complaint text.

    Deadlines are shown in the zone of the region their clock counts in; ``overdue`` marks a
    deadline that passed but whose lapse the timer loop has not recorded yet.
    """
    clocks = []
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


class EmbeddedBackend:
    """The embedded runtime as a backend. Workflows load lazily: reading needs none of them."""

    def __init__(
        self,
        db_url: str,
        clock: Clock,
        load_models: Callable[[], Mapping[str, Model]],
        *,
        migrate: bool = False,
    ) -> None:
        from engine.runtime.embedded import EmbeddedRuntime
        from engine.runtime.store import open_engine

        self.engine = open_engine(db_url)
        if migrate:
            from engine.migrations import upgrade

            upgrade(db_url, engine=self.engine)
        self.runtime = EmbeddedRuntime(self.engine, {}, clock)
        self._load_models = load_models
        self._loaded = False

    def start(
        self,
        workflow: str,
        case_id: str,
        data: Mapping[str, Any],
        *,
        reporter: Mapping[str, Any] | None,
        key: str | None,
    ) -> StartResult:
        from engine.runtime.embedded import StartCommand

        if not self._loaded:
            self.runtime.register(self._load_models())
            self._loaded = True
        command = StartCommand(workflow, case_id, dict(data), dict(reporter or {}), key=key)
        outcome = self.runtime.execute([command])[0]
        decision = outcome.decision
        return StartResult(
            case_id if decision.case is None else decision.case.id,
            decision.accepted,
            *_shape(decision),
            replayed=outcome.replayed,
        )

    def signal(self, case_id: str, signal: Signal) -> SignalResult:
        from engine.runtime.embedded import SignalCommand

        outcome = self.runtime.execute([SignalCommand(case_id, signal)])[0]
        decision = outcome.decision
        if decision.case is None:
            raise LaporError(f"unknown case {case_id!r}")
        return SignalResult(
            case_id, decision.accepted, *_shape(decision), replayed=outcome.replayed
        )

    def case(self, case_id: str) -> tuple[Case, Model]:
        return self.runtime.case(case_id), self.runtime.model_of(case_id)

    def history(self, case_id: str) -> list[HistoryRecord]:
        return self.runtime.history(case_id)

    def close(self) -> None:
        self.engine.dispose()


def _shape(decision: Decision) -> tuple[str | None, str | None, str | None, str | None, int | None]:
    """(state, status, code, reason, seq) of a decision, for the result classes."""
    case, rejection = decision.case, decision.rejection
    return (
        None if case is None else case.state,
        None if case is None else case.status,
        None if rejection is None else rejection.code,
        None if rejection is None else rejection.reason,
        None if decision.record is None else decision.record.seq,
    )


class Client:
    """Start, signal and inspect cases. ``Client(db_url)`` uses the embedded runtime.

    ``workflows_dir``/``policies_dir`` default to the project folder above the cwd (as ``lapor``
    finds it); they are read only when a case is started. ``clock`` defaults to the wall clock.
    ``migrate=True`` brings the database schema up to date first (``lapor db upgrade``).
    """

    def __init__(
        self,
        db_url: str = "sqlite:///lapor.db",
        workflows_dir: Path | str | None = None,
        policies_dir: Path | str | None = None,
        *,
        clock: Clock | None = None,
        backend: Backend | None = None,
        migrate: bool = False,
    ) -> None:
        self.clock: Clock = clock or WallClock()
        if backend is None:
            root = default_project_root()
            workflows = Path(workflows_dir) if workflows_dir else root / "workflows"
            policies = Path(policies_dir) if policies_dir else root / "policies"

            def load() -> Mapping[str, Model]:
                from engine.definitions.loader import load_models

                return load_models(workflows, policies)

            backend = EmbeddedBackend(db_url, self.clock, load, migrate=migrate)
        self.backend = backend

    @classmethod
    def embedded(
        cls,
        db_url: str = "sqlite:///lapor.db",
        workflows_dir: Path | str | None = None,
        policies_dir: Path | str | None = None,
        *,
        clock: Clock | None = None,
        migrate: bool = False,
    ) -> Client:
        return cls(db_url, workflows_dir, policies_dir, clock=clock, migrate=migrate)

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
        self.backend.close()

    def start(
        self,
        workflow: str,
        data: Mapping[str, Any],
        *,
        reporter: Mapping[str, Any] | None = None,
        key: str | None = None,
        case_id: str | None = None,
    ) -> StartResult:
        """Open a case. Without ``case_id`` a tracking number is generated; with ``key``, a
        retry of the same call returns the first call's outcome instead of a second case."""
        for _ in range(_ID_ATTEMPTS):
            chosen = case_id or new_case_id(self.clock)
            result = self.backend.start(workflow, chosen, data, reporter=reporter, key=key)
            if case_id is not None or result.code != "already_started":
                return result
            # A generated number collided with an existing case (1 in 32^8 per case): draw again.
        raise LaporError("could not draw an unused case id; is the random source broken?")

    def signal(
        self,
        case_id: str,
        name: str,
        *,
        actor: str | Actor,
        data: Mapping[str, Any] | None = None,
        key: str | None = None,
    ) -> SignalResult:
        """Send signal ``name`` as ``actor`` (``admin:nasional``, ``agency:kemenkes``...)."""
        who = actor if isinstance(actor, Actor) else Actor.parse(actor)
        return self.backend.signal(case_id, Signal(name, who, dict(data or {}), key))

    def status(self, case_id: str) -> dict[str, Any]:
        case, model = self.backend.case(case_id)
        return case_status(case, model, self.clock.now())

    def history(self, case_id: str) -> list[HistoryRecord]:
        return self.backend.history(case_id)

    def audit(self, case_id: str) -> AuditReport:
        """Replay the recorded history under the pinned model; also check the stored case row
        is the one the history derives."""
        case, model = self.backend.case(case_id)
        records = self.backend.history(case_id)
        report = replay(model, records)
        problems = list(report.problems)
        if report.ok and report.case != case:
            problems.append("the stored case differs from the one its history derives")
        return AuditReport(report.records, tuple(problems), report.case)
