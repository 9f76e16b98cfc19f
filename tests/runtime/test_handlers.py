"""The shipped delivery handlers and plug-in loading, without a database.

Delivery over the wire (retries, timeouts, redirects) is in ``test_outbox.py``; this file holds
what a handler is before it delivers anything: its spec, its signature, what it refuses to log.
"""

from __future__ import annotations

import json
from importlib.metadata import EntryPoint, entry_points

import pytest
import structlog

from engine.domain.errors import LaporError
from engine.runtime import handlers as handlers_module
from engine.runtime.delivery import OutboxMessage
from engine.runtime.handlers import (
    ENTRY_POINT_GROUP,
    LogHandler,
    WebhookHandler,
    load_handlers,
    sign_body,
    verify_signature,
    webhook_body,
)

SECRET = "s3cret-shared-with-the-receiver"


def message(attempts: int = 1) -> OutboxMessage:
    return OutboxMessage(
        id=7,
        case_id="LAP-7",
        seq=3,
        idempotency_key="LAP-7:3:1",
        kind="escalated",
        target="agency_liaison",
        payload={
            "case_id": "LAP-7",
            "seq": 3,
            "effect": {
                "kind": "escalated",
                "clock": "completion",
                "level": 1,
                "to": "agency_liaison",
            },
            "case": {
                "id": "LAP-7",
                "workflow": "sp4n-lapor",
                "state": "in_progress",
                "agency": "kemenkes",
                "region": "ID-JK",
                "escalation_level": 1,
                "data": {"category": "kesehatan", "description": "Puskesmas tutup, kata Pak Budi"},
            },
        },
        attempts=attempts,
    )


# --- webhook -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://example.org/x", "https://", "not a url"]
)
def test_webhook_refuses_anything_but_http_urls(url: str) -> None:
    with pytest.raises(LaporError, match="must be http"):
        WebhookHandler(url, SECRET)


def test_webhook_needs_a_secret() -> None:
    with pytest.raises(LaporError, match="non-empty shared secret"):
        WebhookHandler("https://hooks.example.org/lapor", "")


def test_webhook_never_shows_its_secret_or_path() -> None:
    handler = WebhookHandler("https://hooks.example.org/T0K3N/abc", SECRET)

    assert "T0K3N" not in repr(handler) and SECRET not in repr(handler)


def test_webhook_body_is_canonical_and_the_same_for_every_attempt() -> None:
    first, retry = webhook_body(message(attempts=1)), webhook_body(message(attempts=5))

    assert first == retry
    canonical = json.dumps(
        json.loads(first), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode()
    assert first == canonical  # sorted keys, no spaces, UTF-8: bytes a receiver can re-derive
    assert b'"idempotency_key":"LAP-7:3:1"' in first and b'"target":"agency_liaison"' in first


def test_webhook_filters_by_kind_and_target() -> None:
    url = "https://hooks.example.org/lapor"

    assert WebhookHandler(url, SECRET).accepts(message())
    assert WebhookHandler(url, SECRET, accepts_kinds={"escalated"}).accepts(message())
    assert not WebhookHandler(url, SECRET, accepts_kinds={"notify"}).accepts(message())
    assert not WebhookHandler(url, SECRET, accepts_targets={"reporter"}).accepts(message())


def test_signature_verifies_exact_bytes_with_the_shared_secret() -> None:
    body = b'{"case_id":"LAP-1"}'
    header = sign_body(SECRET, body)

    assert header.startswith("sha256=") and len(header) == 7 + 64
    assert verify_signature(SECRET, body, header)
    assert verify_signature(SECRET.encode(), body, header)
    assert not verify_signature(SECRET, body + b" ", header)
    assert not verify_signature("other-secret", body, header)
    assert not verify_signature(SECRET, body, None)
    assert not verify_signature(SECRET, body, "sha256=" + "0" * 64)


# --- log handler -------------------------------------------------------------------------------


def test_log_handler_logs_data_keys_but_no_complaint_text() -> None:
    with structlog.testing.capture_logs() as logs:
        LogHandler().deliver(message())

    [line] = logs
    assert line["event"] == "outbox.message" and line["log_level"] == "info"
    assert line["data_keys"] == ["category", "description"]
    assert line["effect"]["to"] == "agency_liaison" and line["escalation_level"] == 1
    assert "Budi" not in repr(logs) and "Puskesmas" not in repr(logs)


# --- specs and plug-ins ------------------------------------------------------------------------


class PluginHandler:
    def __init__(self, name: str) -> None:
        self.name = name

    def accepts(self, message: OutboxMessage) -> bool:
        return True

    def deliver(self, message: OutboxMessage) -> None:
        pass


def plugin_factory(arg: str | None) -> PluginHandler:
    return PluginHandler(name=f"plugin:{arg}")


def not_a_handler(arg: str | None) -> object:
    return object()


def picky_factory(arg: str | None) -> PluginHandler:
    raise ValueError("expected a phone gateway id")


def test_load_handlers_builds_shipped_handlers_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAPOR_WEBHOOK_SECRET", SECRET)

    handlers = load_handlers(["webhook:https://hooks.example.org/lapor", "log"])

    assert [type(h) for h in handlers] == [WebhookHandler, LogHandler]
    assert isinstance(handlers[0], WebhookHandler)
    assert handlers[0].url == "https://hooks.example.org/lapor"


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        ("webhook:https://hooks.example.org/lapor", "set LAPOR_WEBHOOK_SECRET"),
        ("webhook", "needs a URL"),
        ("log:verbose", "takes no argument"),
        # What lapor worker (Temporal) answers: it has no SQL database with subscriptions.
        ("agency-webhooks", r"lapor run --db URL.*lapor worker \(Temporal\) does not open"),
    ],
)
def test_bad_shipped_specs_are_errors(
    monkeypatch: pytest.MonkeyPatch, spec: str, error: str
) -> None:
    monkeypatch.delenv("LAPOR_WEBHOOK_SECRET", raising=False)

    with pytest.raises(LaporError, match=error):
        load_handlers([spec])


def test_plugins_resolve_through_the_entry_point_group(monkeypatch: pytest.MonkeyPatch) -> None:
    plugins = [
        EntryPoint("sms", f"{__name__}:plugin_factory", ENTRY_POINT_GROUP),
        EntryPoint("broken", f"{__name__}:not_a_handler", ENTRY_POINT_GROUP),
        EntryPoint("picky", f"{__name__}:picky_factory", ENTRY_POINT_GROUP),
        EntryPoint("missing", "no_such_module_anywhere:factory", ENTRY_POINT_GROUP),
        EntryPoint("log", f"{__name__}:plugin_factory", ENTRY_POINT_GROUP),  # cannot shadow
    ]
    monkeypatch.setattr(handlers_module, "entry_points", lambda group: plugins)

    sms, log = load_handlers(["sms:+62-gateway", "log"])

    assert isinstance(sms, PluginHandler) and sms.name == "plugin:+62-gateway"
    assert isinstance(log, LogHandler)
    with pytest.raises(LaporError, match="returned object"):
        load_handlers(["broken"])
    with pytest.raises(LaporError, match=r"'picky' refused 'picky:x': expected a phone"):
        load_handlers(["picky:x"])
    with pytest.raises(LaporError, match=r"'missing' .* cannot be loaded"):
        load_handlers(["missing"])
    unknown = r"unknown delivery handler 'smtp'.*known: agency-webhooks, broken, log"
    with pytest.raises(LaporError, match=unknown):
        load_handlers(["smtp:mail.example.org"])


def test_log_and_webhook_are_registered_as_entry_points() -> None:
    names = {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}

    assert names["log"] == "engine.runtime.handlers:log_handler"
    assert names["webhook"] == "engine.runtime.handlers:webhook_handler"


def test_a_receivers_credentials_and_path_stay_out_of_what_a_handler_says() -> None:
    from engine.runtime.posting import endpoint_of

    assert endpoint_of("https://agency:hunter2@hooks.example.id:8443/t/abc") == (
        "https://hooks.example.id:8443"
    )
    assert endpoint_of("http://[::1]:9/x") == "http://[::1]:9"
    handler = WebhookHandler("https://agency:hunter2@hooks.example.id/t/abc", SECRET)
    assert "hunter2" not in repr(handler) and "/t/abc" not in repr(handler)
