"""The runtime contract: what every runtime does, and the one result type it answers with.

A runtime stores cases, wakes them when a clock is due and delivers what they decided; the rules
are the core's (``engine.domain.machine.decide``). The in-memory runtime (``memory``), the SQL
runtime (``engine.sql.embedded``) and the Temporal runtime (``workers.runtime``) implement
``Runtime``, and one contract suite (``tests/contract/``) holds them to the same behaviour:

- ``execute`` decides commands in order and answers one ``Outcome`` each. A rejection changes
  nothing and is not recorded. A command for a case that does not exist raises
  ``UnknownCaseError``; a start under a workflow the runtime does not know raises
  ``UnknownWorkflowError``.
- **Idempotency keys.** A command with a key is recorded with the key and a fingerprint of the
  request (``request_fingerprint``). The same key with the same request answers the first
  outcome again (``replayed``), recording nothing; the same key with another request raises
  ``KeyReuseError``. A keyed start without a case id takes its id from the key
  (``keyed_case_id``), so a retry meets the first start on every runtime.
- **Time.** An event never goes back before its case's last decision: one that reaches a
  runtime "earlier" (another client's clock) is decided at that decision's instant
  (``decision_instant``). On a virtual clock ``execute(at=...)`` and ``advance_to`` first fire
  every clock due up to that instant, each at its own wake instant; on the wall clock
  ``fire_due(now)`` fires what is due now.
- **Delivery.** Every world-facing effect (``engine.domain.events.WORLD_EFFECTS``) reaches the
  runtime's delivery handlers once, as an ``OutboxMessage`` with the idempotency key
  ``case:seq:index``; ``deliver`` hands over what is due and says what happened.
- **The reporter's identity** given at start is kept apart from the case: never in its history,
  its effects or a delivery; stored only sealed under the runtime's key ring
  (``engine.runtime.identity``). ``reporter(case_id)`` opens it for the engine's own
  reporter-facing work; a caller gets it through ``identity_for`` only in a role allowed to read
  it (``IDENTITY_READERS``). ``erase_reporter`` erases it for good.
- **Who may act as the reporter.** An accepted start answers a ``reporter_token``; a signal in
  the role ``reporter`` is refused (``not_the_reporter``) unless it carries that case's token.
  The token never enters a history. Other roles are asserted by the caller, who is trusted to
  (the HTTP API authenticates them); ``system`` is never accepted from outside (the core).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from engine.domain.canonical import canonical_json
from engine.domain.case import Case
from engine.domain.events import (
    SYSTEM,
    Actor,
    Effect,
    Migrated,
    Rejection,
    Signal,
    check_case_id,
)
from engine.domain.machine import Decision
from engine.domain.model import Model
from engine.domain.records import HistoryRecord
from engine.runtime.delivery import DeliveryReport
from engine.runtime.errors import IdentityAccessError, KeyReuseError, UnknownWorkflowError
from engine.runtime.identity import KeyRing

__all__ = [
    "IDENTITY_READERS",
    "Command",
    "MigrateCommand",
    "Outcome",
    "Runtime",
    "SignalCommand",
    "StartCommand",
    "check_identity_reader",
    "check_key_reuse",
    "decision_instant",
    "keyed_case_id",
    "model_for_workflow",
    "reporter_refusal",
    "request_fingerprint",
    "with_reporter_token",
]

IDENTITY_READERS = ("admin",)
"""The roles that may read a reporter's identity: Admin Nasional, who verifies the report and
may need to contact the reporter. Never an agency (``anonymous``), never the public."""


@dataclass(frozen=True, slots=True)
class StartCommand:
    """Open case ``case_id`` under ``workflow`` with the intake fields ``data``.

    ``reporter`` is the reporter's identity (kept apart, see the module docstring)."""

    workflow: str
    case_id: str
    data: Mapping[str, Any]
    reporter: Mapping[str, Any] = field(default_factory=dict)
    actor: Actor = SYSTEM
    key: str | None = None

    def __post_init__(self) -> None:
        check_case_id(self.case_id)


@dataclass(frozen=True, slots=True)
class SignalCommand:
    """Send ``signal`` to case ``case_id``; in the role ``reporter``, with the case's
    ``reporter_token`` (checked by the runtime, never recorded)."""

    case_id: str
    signal: Signal
    reporter_token: str | None = field(default=None, repr=False)

    @property
    def key(self) -> str | None:
        return self.signal.key


@dataclass(frozen=True, slots=True)
class MigrateCommand:
    """Move open case ``case_id`` onto ``model`` (another model of its workflow), mapping states
    the new model lacks by ``states``; recorded as a ``Migrated`` event by ``actor``."""

    case_id: str
    model: Model
    actor: Actor
    states: Mapping[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str | None:
        return None  # a migration is named by its target model: a retry is refused, not replayed

    def event(self, source: Model, case: Case) -> Migrated:
        applied = {s: t for s, t in self.states.items() if s == case.state}
        return Migrated(case.model_hash, self.model.hash, self.actor, applied, source)


Command = StartCommand | SignalCommand | MigrateCommand


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one command did: the core's decision, and whether it is a replay.

    ``replayed``: the command's idempotency key was used before with the same request; this is
    that first call's outcome again and nothing new was recorded. ``reporter_token``: on an
    accepted start, what the reporter acts with (``None`` when the runtime has no key ring).
    """

    case_id: str
    decision: Decision
    replayed: bool = False
    reporter_token: str | None = field(default=None, repr=False)

    @property
    def accepted(self) -> bool:
        return self.decision.accepted

    @property
    def case(self) -> Case | None:
        return self.decision.case

    @property
    def record(self) -> HistoryRecord | None:
        return self.decision.record

    @property
    def effects(self) -> tuple[Effect, ...]:
        return self.decision.effects

    @property
    def rejection(self) -> Rejection | None:
        return self.decision.rejection

    @property
    def state(self) -> str | None:
        return None if self.decision.case is None else self.decision.case.state

    @property
    def status(self) -> str | None:
        return None if self.decision.case is None else self.decision.case.status

    @property
    def code(self) -> str | None:
        """The rejection's stable code (``wrong_state``, ``already_started``...), if rejected."""
        return None if self.decision.rejection is None else self.decision.rejection.code

    @property
    def reason(self) -> str | None:
        return None if self.decision.rejection is None else self.decision.rejection.reason

    @property
    def seq(self) -> int | None:
        return None if self.decision.record is None else self.decision.record.seq


def request_fingerprint(command: Command) -> str:
    """SHA-256 over what a command asks for, stored beside its idempotency key.

    Everything the caller chose is in it (the case id, the workflow or signal, the actor, the
    fields, for a start the reporter's identity), so a reused key is recognised as the same
    request or refused as another one. The identity enters only through this hash.
    """
    if isinstance(command, StartCommand):
        request: dict[str, Any] = {
            "start": command.workflow,
            "case_id": command.case_id,
            "actor": str(command.actor),
            "data": dict(command.data),
            "reporter": dict(command.reporter),
        }
    elif isinstance(command, MigrateCommand):
        request = {"migrate": command.model.hash, "case_id": command.case_id,
                   "actor": str(command.actor), "states": dict(command.states)}  # fmt: skip
    else:
        signal = command.signal
        request = {
            "signal": signal.name,
            "case_id": command.case_id,
            "actor": str(signal.actor),
            "data": dict(signal.data),
        }
    return hashlib.sha256(canonical_json(request).encode()).hexdigest()


def check_key_reuse(key: str, stored: str | None, command: Command, case_id: str) -> None:
    """Raise ``KeyReuseError`` unless ``command`` is the request that first used ``key`` (for
    case ``case_id``, with fingerprint ``stored``; ``None``: a key recorded before fingerprints
    existed, compared by case id alone)."""
    same = case_id == command.case_id if stored is None else stored == request_fingerprint(command)
    if not same:
        raise KeyReuseError(key, case_id)


def reporter_refusal(keyring: KeyRing | None, command: SignalCommand) -> Rejection | None:
    """Why a signal in the role ``reporter`` may not act on its case, or ``None``."""
    if command.signal.actor.role != "reporter":
        return None
    if not command.reporter_token:
        return Rejection(
            "not_the_reporter",
            "the reporter acts with the reporter token handed out when the case was started",
        )
    if keyring is None or not keyring.is_reporter_token(command.case_id, command.reporter_token):
        return Rejection(
            "not_the_reporter", f"that reporter token is not the one of case {command.case_id}"
        )
    return None


def with_reporter_token(keyring: KeyRing | None, outcome: Outcome) -> Outcome:
    """``outcome`` of a start, with the reporter's token when it opened (or replayed) a case."""
    if keyring is None or not outcome.accepted:
        return outcome
    return Outcome(
        outcome.case_id,
        outcome.decision,
        outcome.replayed,
        keyring.reporter_token(outcome.case_id),
    )


def check_identity_reader(actor: Actor, case_id: str) -> None:
    """Raise ``IdentityAccessError`` unless ``actor``'s role may read a reporter's identity."""
    if actor.role not in IDENTITY_READERS:
        raise IdentityAccessError(case_id, actor, IDENTITY_READERS)


def decision_instant(case: Case, now: datetime) -> datetime:
    """When a runtime decides an event that reaches ``case`` at ``now``: ``now``, or the case's
    last decision if ``now`` is before it (and the record says so).

    A case's time never runs backwards (``decide`` refuses it), but wall clocks do differ: two
    clients a second apart, or a case whose lapses were recorded ahead of the wall clock. Such an
    event is decided at the later instant instead of failing every later call to the case.
    """
    return now if now >= case.last_at else case.last_at


def keyed_case_id(key: str) -> str:
    """The case id of a keyed start that names none: derived from the key, so a retry of the
    start reaches the same case (on Temporal, the same workflow id) instead of opening a twin."""
    digest = hashlib.sha256(key.encode()).digest()
    return "LAPOR-K-" + base64.b32encode(digest).decode()[:12]


def model_for_workflow(models: Mapping[str, Model], workflow: str) -> Model:
    """The model new cases of ``workflow`` start under, or ``UnknownWorkflowError``."""
    model = models.get(workflow)
    if model is None:
        raise UnknownWorkflowError(workflow, sorted(models))
    return model


class Runtime(Protocol):
    """What a runtime does. ``start`` and ``signal`` are ``execute`` of one command."""

    def execute(self, commands: Sequence[Command], at: datetime | None = None) -> list[Outcome]:
        """Decide ``commands`` in order at ``at`` (default: the runtime clock's now)."""
        ...

    def start(
        self,
        workflow: str,
        case_id: str,
        data: Mapping[str, Any],
        *,
        reporter: Mapping[str, Any] | None = None,
        actor: Actor = SYSTEM,
        key: str | None = None,
        at: datetime | None = None,
    ) -> Outcome:
        command = StartCommand(workflow, case_id, dict(data), dict(reporter or {}), actor, key)
        return self.execute([command], at)[0]

    def signal(
        self,
        case_id: str,
        signal: Signal,
        *,
        at: datetime | None = None,
        reporter_token: str | None = None,
    ) -> Outcome:
        return self.execute([SignalCommand(case_id, signal, reporter_token)], at)[0]

    def migrate(
        self,
        case_id: str,
        model: Model,
        actor: Actor,
        states: Mapping[str, str] | None = None,
        at: datetime | None = None,
    ) -> Outcome:
        """Move an open case onto ``model`` (``MigrateCommand``); its clocks are recomputed under
        the new rules and the history records the move."""
        return self.execute([MigrateCommand(case_id, model, actor, dict(states or {}))], at)[0]

    def register(self, models: Mapping[str, Model]) -> None:
        """Make ``models`` the ones new cases of their workflows start under (cases already
        started keep the model they pinned)."""
        ...

    def case(self, case_id: str) -> Case:
        """The case as it stands (``UnknownCaseError`` if there is none)."""
        ...

    def model_of(self, case_id: str) -> Model:
        """The model the case pinned at start."""
        ...

    def history(self, case_id: str) -> list[HistoryRecord]:
        """Every recorded decision of the case, in order."""
        ...

    def reporter(self, case_id: str) -> Mapping[str, Any] | None:
        """The identity the reporter gave at start (``None``: none given; erased:
        ``IdentityErasedError``), opened for the engine's reporter-facing work; callers go
        through ``identity_for``."""
        ...

    def identity_for(self, case_id: str, actor: Actor) -> Mapping[str, Any] | None:
        """The reporter's identity for ``actor``, if its role may read it (``IDENTITY_READERS``;
        otherwise ``IdentityAccessError``). Raises ``IdentityErasedError`` once erased."""
        check_identity_reader(actor, case_id)
        self.case(case_id)  # an unknown case is UnknownCaseError, not "no identity"
        return self.reporter(case_id)

    def erase_reporter(self, case_id: str, at: datetime | None = None) -> bool:
        """Erase the reporter's identity for good (UU 27/2022); whether there was one."""
        ...

    def advance_to(self, moment: datetime) -> None:
        """Virtual clock: fire every clock due up to ``moment``, each at its own wake instant."""
        ...

    def fire_due(self, now: datetime, limit: int = 1000) -> int:
        """Fire up to ``limit`` cases' clocks due by ``now``; how many cases were handled."""
        ...

    def deliver(self, now: datetime | None = None) -> DeliveryReport:
        """Hand every due message to the delivery handlers; what happened."""
        ...

    def close(self) -> None:
        """Release what the runtime holds (connections, workers, threads)."""
        ...
