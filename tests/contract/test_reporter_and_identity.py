"""Who may act as a case's reporter, and who may read or erase the reporter's identity: the same
on every runtime (memory, SQLite, PostgreSQL, Temporal)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import timedelta

import pytest

from engine.domain.errors import LaporError
from engine.domain.events import Actor, Signal, instant
from engine.domain.model import Model
from engine.runtime.contract import Runtime
from engine.runtime.errors import IdentityAccessError, IdentityErasedError, UnknownCaseError
from tests.contract.conftest import Factory

WORKFLOW = "sp4n-lapor"
T0 = instant("2026-03-02T10:00:00+07:00")
INTAKE = {"category": "kesehatan", "region": "ID-JK", "channel": "web", "description": "x"}
REPORTER = {"name": "Siti Rahmawati", "phone": "081298765432", "nik": "3174056708900002"}
ADMIN = Actor.parse("admin:nasional")
HOLD = Signal("hold", ADMIN, {"missing_info": "Nama puskesmas?"})
SUPPLY = Signal("supply_info", Actor("reporter"), {"info": "Puskesmas Cempaka Putih"})


def on_hold(runtime: Runtime, case_id: str) -> str | None:
    """Start ``case_id`` and put it on hold, waiting for its reporter; the reporter token."""
    started = runtime.start(WORKFLOW, case_id, INTAKE, reporter=REPORTER, at=T0)
    assert started.accepted and started.reporter_token
    assert runtime.signal(case_id, HOLD, at=T0 + timedelta(hours=1)).accepted
    return started.reporter_token


def test_a_reporter_signal_without_the_case_token_is_refused_and_not_recorded(
    runtime_factory: Factory, models: Mapping[str, Model]
) -> None:
    runtime = runtime_factory(models, T0)
    on_hold(runtime, "LAPOR-R-1")
    later = T0 + timedelta(hours=2)

    refused = runtime.signal("LAPOR-R-1", SUPPLY, at=later)

    assert refused.code == "not_the_reporter"
    assert runtime.case("LAPOR-R-1").state == "on_hold"
    assert len(runtime.history("LAPOR-R-1")) == 2


def test_another_case_token_does_not_let_its_holder_act_as_this_reporter(
    runtime_factory: Factory, models: Mapping[str, Model]
) -> None:
    runtime = runtime_factory(models, T0)
    on_hold(runtime, "LAPOR-R-2")
    own = on_hold(runtime, "LAPOR-R-3")
    later = T0 + timedelta(hours=2)

    refused = runtime.signal("LAPOR-R-2", SUPPLY, at=later, reporter_token=own)
    forged = runtime.signal("LAPOR-R-2", SUPPLY, at=later, reporter_token="rt1.contract.AAAA")
    accepted = runtime.signal("LAPOR-R-3", SUPPLY, at=later, reporter_token=own)

    assert (refused.code, forged.code) == ("not_the_reporter", "not_the_reporter")
    assert accepted.accepted and runtime.case("LAPOR-R-3").state == "submitted"
    assert runtime.case("LAPOR-R-2").state == "on_hold"


def test_a_retried_keyed_start_hands_out_the_same_token_and_no_history_holds_it(
    runtime_factory: Factory, models: Mapping[str, Model]
) -> None:
    runtime = runtime_factory(models, T0)
    first = runtime.start(WORKFLOW, "LAPOR-R-4", INTAKE, reporter=REPORTER, key="s-4", at=T0)
    again = runtime.start(WORKFLOW, "LAPOR-R-4", INTAKE, reporter=REPORTER, key="s-4", at=T0)
    assert runtime.signal("LAPOR-R-4", HOLD, at=T0 + timedelta(hours=1)).accepted
    token = first.reporter_token
    assert again.replayed and token is not None and again.reporter_token == token
    runtime.signal("LAPOR-R-4", SUPPLY, at=T0 + timedelta(hours=2), reporter_token=token)

    recorded = json.dumps([r.to_json() for r in runtime.history("LAPOR-R-4")])
    if hasattr(runtime, "run_history"):  # Temporal: the server's own event history too
        run = runtime.current_run_id("LAPOR-R-4")  # type: ignore[attr-defined]
        recorded += runtime.run_history("LAPOR-R-4", run).to_json()  # type: ignore[attr-defined]
    assert runtime.case("LAPOR-R-4").state == "submitted"
    assert token not in recorded and token.rsplit(".", 1)[1] not in recorded


def test_only_admin_nasional_reads_the_identity(
    runtime_factory: Factory, models: Mapping[str, Model]
) -> None:
    runtime = runtime_factory(models, T0)
    on_hold(runtime, "LAPOR-R-5")

    assert runtime.identity_for("LAPOR-R-5", ADMIN) == REPORTER
    for role in ("agency:kemenkes", "reporter", "system", "public"):
        with pytest.raises(IdentityAccessError, match="only admin may"):
            runtime.identity_for("LAPOR-R-5", Actor.parse(role))
    with pytest.raises(UnknownCaseError):
        runtime.identity_for("LAPOR-NOPE", ADMIN)


def test_an_erased_identity_is_gone_and_the_case_goes_on(
    runtime_factory: Factory, runtime_kind: str, models: Mapping[str, Model]
) -> None:
    runtime = runtime_factory(models, T0)
    token = on_hold(runtime, "LAPOR-R-6")
    if runtime_kind == "temporal":  # the sealed input stays in the server's event history
        with pytest.raises(LaporError, match="cannot be erased on Temporal"):
            runtime.erase_reporter("LAPOR-R-6", T0 + timedelta(hours=2))
        return

    assert runtime.erase_reporter("LAPOR-R-6", T0 + timedelta(hours=2))
    assert not runtime.erase_reporter("LAPOR-R-6", T0 + timedelta(hours=3))

    with pytest.raises(IdentityErasedError, match="erased on 2026-03-02"):
        runtime.identity_for("LAPOR-R-6", ADMIN)
    later = T0 + timedelta(hours=4)
    assert runtime.signal("LAPOR-R-6", SUPPLY, at=later, reporter_token=token).accepted
