"""Tamper evidence on SQLite, PostgreSQL and a Temporal history: each kind of forgery an auditor
must catch is named with its case and sequence number by ``lapor audit verify``.

The forger here has write access and recomputes every hash after the record they change (the
chain alone then passes): only re-deriving each decision under the pinned model, the Merkle log
and a kept checkpoint can tell. On the embedded runtime the forgery is written into the database
and the CLI verifies it; on Temporal, whose event history the server keeps immutable, the
forgery is applied to the history as read from the server, and the same verification reads it.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from engine.domain.canonical import canonical_json
from engine.domain.case import GENESIS
from engine.domain.events import Actor, Signal, instant
from engine.domain.history import replay
from engine.domain.model import Model
from engine.domain.records import HistoryRecord
from engine.faces.cli.main import app
from engine.runtime.contract import Runtime
from engine.runtime.histories import EVERY_CASE, CaseHistory, Selection, named
from engine.runtime.verification import VerifyTally, verify_histories
from engine.sql.store import open_engine
from tests.contract.conftest import Factory

WORKFLOW = "sp4n-lapor"
T0 = instant("2026-03-02T10:00:00+07:00")  # a Monday
INTAKE = {"category": "kesehatan", "region": "ID-JK", "channel": "web", "description": "x"}
ADMIN = Actor.parse("admin:nasional")
AGENCY = Actor.parse("agency:kemenkes")
ANSWERED = "answered"  # verified, disposed, followed up: three records and more
UNTOUCHED = "untouched"  # nobody acts: its verification deadline lapses and escalates
LATER = T0 + timedelta(days=8)  # past the untouched case's first lapse, before its next rung
OTHER_MODEL = hashlib.sha256(b"another policy").hexdigest()

Records = list[HistoryRecord]


def reseal(records: Records, start: int = 0) -> Records:
    """Recompute every hash from ``start`` on, as a forger with write access would."""
    out = list(records[:start])
    prev = out[-1].hash if out else GENESIS
    for record in records[start:]:
        sealed = HistoryRecord.seal(
            seq=record.seq,
            at=record.at,
            actor=record.actor,
            model_hash=record.model_hash,
            event=record.event,
            effects=[dict(e) for e in record.effects],
            prev_hash=prev,
        )
        out.append(sealed)
        prev = sealed.hash
    return out


def modified_in_place(records: Records) -> Records:  # the hash left as it was
    changed = dict(records[1].event, data={"agency": "kemensos"})
    return [*records[:1], replace(records[1], event=changed), *records[2:]]


def modified_and_resealed(records: Records) -> Records:
    changed = dict(records[1].event, data={"agency": "kemensos"})
    return reseal([*records[:1], replace(records[1], event=changed), *records[2:]], 1)


def deleted(records: Records) -> Records:
    return reseal([records[0], *records[2:]], 1)


def reordered(records: Records) -> Records:
    swapped = [records[0], records[2], records[1], *records[3:]]
    return reseal([replace(r, seq=n) for n, r in enumerate(swapped, 1)], 1)


def under_another_model(records: Records) -> Records:
    return reseal([*records[:1], replace(records[1], model_hash=OTHER_MODEL), *records[2:]], 1)


def escalation_not_called_for(records: Records) -> Records:
    forged = {"kind": "escalated", "clock": "verification", "level": 1, "to": "admin_supervisor",
              "due_at": None}  # fmt: skip
    changed = replace(records[1], effects=(*records[1].effects, forged))
    return reseal([*records[:1], changed, *records[2:]], 1)


def lapse_not_escalated(records: Records) -> Records:
    """The untouched case's lapse record with its escalation taken out."""
    lapse = next(r for r in records if r.event.get("kind") == "clock_lapsed")
    kept = tuple(e for e in lapse.effects if e.get("kind") not in ("escalated", "notify"))
    index = records.index(lapse)
    return reseal([*records[:index], replace(lapse, effects=kept), *records[index + 1 :]], index)


def lapse_never_recorded(records: Records) -> Records:
    """The untouched case with its lapse record dropped: as if the deadline passed unnoticed."""
    index = next(i for i, r in enumerate(records) if r.event.get("kind") == "clock_lapsed")
    return records[:index]


# (forgery, case, what the verification must say)
FORGERIES: dict[str, tuple[Callable[[Records], Records], str, str]] = {
    "modified": (modified_in_place, ANSWERED, "record 2: hash does not match its contents"),
    "modified-resealed": (modified_and_resealed, ANSWERED, "record 2: effect"),
    "deleted": (deleted, ANSWERED, "record 3: expected sequence number 2"),
    "reordered": (reordered, ANSWERED, "record 2: "),
    "another-model": (
        under_another_model,
        ANSWERED,
        f"record 2: decided under model {OTHER_MODEL[:12]}, but the case is pinned to",
    ),
    "escalation-not-called-for": (
        escalation_not_called_for,
        ANSWERED,
        "record 2: records an escalation of clock verification to admin_supervisor (level 1) that "
        "the policy did not call for",
    ),
    "lapse-not-escalated": (
        lapse_not_escalated,
        UNTOUCHED,
        "record 2: the policy calls for an escalation of clock verification to admin_supervisor "
        "(level 1) here; it was not recorded",
    ),
    "lapse-never-recorded": (
        lapse_never_recorded,
        UNTOUCHED,
        "record 2: clock verification lapsed at 2026-03-05T23:59:59+07:00 and should have "
        "escalated; nothing was recorded by",
    ),
}


@pytest.fixture(params=["sqlite", "postgresql", "temporal"])
def runtime_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def recorded(
    runtime_factory: Factory, models: Mapping[str, Model]
) -> Iterator[tuple[Runtime, dict[str, str]]]:
    """The runtime with the two cases, and their ids (unique: Temporal's server outlives a test)."""
    runtime = runtime_factory(models, T0)
    ids = {role: f"LAPOR-T-{role.upper()}-{uuid.uuid4().hex[:8]}" for role in (ANSWERED, UNTOUCHED)}
    for case_id in ids.values():
        assert runtime.start(WORKFLOW, case_id, INTAKE, at=T0).accepted
    verify = Signal("verify", ADMIN, {"agency": "kemenkes"})
    follow_up = Signal("follow_up", AGENCY, {"response": "Sedang ditangani"})
    assert runtime.signal(ids[ANSWERED], verify, at=T0 + timedelta(hours=1)).accepted
    assert runtime.signal(ids[ANSWERED], follow_up, at=T0 + timedelta(days=1)).accepted
    runtime.advance_to(LATER)
    assert len(runtime.history(ids[ANSWERED])) >= 3
    assert any(r.event.get("kind") == "clock_lapsed" for r in runtime.history(ids[UNTOUCHED]))
    yield runtime, ids
    runtime.close()


class Forged:
    """A history source that hands out one case's history as the forger left it."""

    def __init__(self, runtime: Runtime, case_id: str, records: Records) -> None:
        model = runtime.model_of(case_id)
        derived = replay(model, records).case
        self.history = CaseHistory(case_id, tuple(records), model, derived)

    def count(self, selection: Selection = EVERY_CASE) -> int | None:
        return 1

    def histories(self, selection: Selection = EVERY_CASE) -> Iterator[CaseHistory]:
        yield self.history


def forge_in_database(url: str, runtime: Runtime, case_id: str, records: Records) -> None:
    """Write the forged chain over the case's rows, and the case it derives over the case row,
    so nothing but re-derivation and the log tells."""
    derived = replay(runtime.model_of(case_id), records).case
    engine = open_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM history WHERE case_id = :c"), {"c": case_id})
        for r in records:
            conn.execute(
                text(
                    "INSERT INTO history (case_id, seq, format, at, actor, model_hash, event, "
                    "effects, prev_hash, hash) VALUES (:case_id, :seq, :format, :at, :actor, "
                    ":model_hash, :event, :effects, :prev_hash, :hash)"
                ),
                row(case_id, r),
            )
        if derived is not None:
            conn.execute(
                text("UPDATE cases SET body = :body WHERE id = :c"),
                {"body": canonical_json(derived.to_json()), "c": case_id},
            )
    engine.dispose()


def row(case_id: str, record: HistoryRecord) -> dict[str, Any]:
    data = record.to_json()
    return {
        "case_id": case_id,
        **{k: data[k] for k in ("seq", "format", "at", "actor", "model_hash", "prev_hash")},
        "hash": record.hash,
        "event": canonical_json(data["event"]),
        "effects": canonical_json(data["effects"]),
    }


def database_url(runtime: Runtime) -> str:
    engine = runtime.engine  # type: ignore[attr-defined]
    return str(engine.url.render_as_string(hide_password=False))


def verify_problems(runtime_kind: str, runtime: Runtime, case_id: str, forged: Records) -> str:
    if runtime_kind == "temporal":
        lines = verify_histories(Forged(runtime, case_id, forged), as_of=LATER + timedelta(days=1))
        return "\n".join(str(p) for p in lines)
    url = database_url(runtime)
    before = CliRunner().invoke(app, ["audit", "checkpoint", "--db", url])
    assert before.exit_code == 0, before.output
    forge_in_database(url, runtime, case_id, forged)
    result = CliRunner().invoke(app, ["audit", "verify", "--db", url])
    assert result.exit_code == 1, result.output
    return result.output


def test_an_untouched_store_verifies(
    runtime_kind: str, recorded: tuple[Runtime, dict[str, str]]
) -> None:
    runtime, ids = recorded
    if runtime_kind == "temporal":
        from workers.histories import TemporalHistories

        source = TemporalHistories(runtime)  # type: ignore[arg-type]
        tally = VerifyTally()
        selection = Selection(named(list(ids.values())))
        assert list(verify_histories(source, selection, as_of=LATER, tally=tally)) == []
        assert (tally.cases, tally.failed) == (2, 0) and tally.records >= 5
        return
    result = CliRunner().invoke(app, ["audit", "verify", "--db", database_url(runtime)])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("forgery", FORGERIES, ids=list(FORGERIES))
def test_each_forgery_is_named_with_case_and_sequence_number(
    runtime_kind: str, recorded: tuple[Runtime, dict[str, str]], forgery: str
) -> None:
    runtime, ids = recorded
    forge, role, expected = FORGERIES[forgery]
    case_id = ids[role]
    forged = forge(runtime.history(case_id))

    problems = verify_problems(runtime_kind, runtime, case_id, forged)

    assert f"{case_id}: {expected}" in problems, problems


def test_a_forged_chain_is_also_caught_by_the_log(
    runtime_kind: str, recorded: tuple[Runtime, dict[str, str]]
) -> None:
    if runtime_kind == "temporal":
        pytest.skip("the Merkle log is the embedded store's")
    runtime, ids = recorded
    case_id = ids[ANSWERED]
    forged = modified_and_resealed(runtime.history(case_id))

    problems = verify_problems(runtime_kind, runtime, case_id, forged)

    assert f"{case_id} #2: the record was changed since it was logged" in problems


def test_a_case_missing_from_the_store_is_named_by_the_log(
    runtime_kind: str, recorded: tuple[Runtime, dict[str, str]]
) -> None:
    if runtime_kind == "temporal":
        pytest.skip("the Merkle log is the embedded store's")
    runtime, ids = recorded
    case_id = ids[ANSWERED]
    url = database_url(runtime)
    assert CliRunner().invoke(app, ["audit", "checkpoint", "--db", url]).exit_code == 0
    engine = open_engine(url)
    with engine.begin() as conn:
        for table, column in (("outbox", "case_id"), ("reporters", "case_id"),
                              ("history", "case_id"), ("cases", "id")):  # fmt: skip
            conn.execute(text(f"DELETE FROM {table} WHERE {column} = :c"), {"c": case_id})
    engine.dispose()

    result = CliRunner().invoke(app, ["audit", "verify", "--db", url])

    assert result.exit_code == 1
    assert f"{case_id} #1: the record in the log was deleted" in result.output
