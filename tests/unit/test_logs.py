"""Log output never carries a reporter's identity, whatever a careless caller hands the logger.

Every test renders real log lines (JSON or console) into a buffer through ``configure_logging``,
so the redaction processor, the renderers and the traceback formatting are all in the path.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import structlog

from engine.domain.errors import LaporError
from engine.domain.events import Started
from engine.runtime.delivery import OutboxMessage
from engine.runtime.handlers import LogHandler
from engine.runtime.logs import REDACTED, case_logger, configure_logging, is_sensitive_key, redact

IDENTITY = {
    "name": "Budi Santoso",
    "nik": "3171234567890001",
    "email": "budi.santoso@example.id",
    "phone": "+6281234567890",
    "address": "Jl. Melati No. 7, Jakarta",
}
COMPLAINT = "Saya Budi Santoso ditolak di loket puskesmas"
SECRETS = [*IDENTITY.values(), COMPLAINT]


@pytest.fixture
def output() -> Iterator[io.StringIO]:
    """A buffer the logging writes to; logging is reset afterwards for the other tests."""
    buffer = io.StringIO()
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield buffer
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()


def payload_with_a_leak() -> dict[str, Any]:
    """An outbox payload into which someone wrongly put the reporter, at several depths."""
    return {
        "case_id": "LAP-1",
        "seq": 2,
        "effect": {"kind": "notify", "to": "reporter", "template": "report_verified"},
        "reporter": IDENTITY,
        "case": {
            "id": "LAP-1",
            "state": "disposed",
            "agency": "kemenkes",
            "data": {"category": "kesehatan", "description": COMPLAINT, "pelapor": IDENTITY},
            "contacts": [{"reporterEmail": IDENTITY["email"]}, {"no_hp": IDENTITY["phone"]}],
        },
    }


def lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def assert_clean(text: str) -> None:
    leaked = [secret for secret in SECRETS if secret in text]
    assert leaked == [], f"identity or complaint text in the log: {leaked}"


def test_whole_payload_logged_shows_structure_but_no_identity(output: io.StringIO) -> None:
    configure_logging(json=True, stream=output)

    structlog.get_logger("test").info("dumped", payload=payload_with_a_leak())

    assert_clean(output.getvalue())
    [line] = lines(output)
    assert line["payload"]["reporter"] == REDACTED
    assert line["payload"]["case"]["data"] == {
        "category": "kesehatan",  # a code, kept
        "description": REDACTED,
        "pelapor": REDACTED,
    }
    assert line["payload"]["case"]["contacts"] == [
        {"reporterEmail": REDACTED},
        {"no_hp": REDACTED},
    ]
    assert line["payload"]["effect"]["to"] == "reporter"  # a role, not a person
    assert line["payload"]["case"]["agency"] == "kemenkes"


def test_payload_as_raw_json_text_and_event_objects_are_redacted(output: io.StringIO) -> None:
    configure_logging(json=True, stream=output)
    started = Started(
        "LAP-1", {"category": "kesehatan", "description": COMPLAINT}, reporter=IDENTITY
    )
    log = structlog.get_logger("test")

    log.info("row", body_text=json.dumps(payload_with_a_leak()))
    log.info("event", started=started)
    log.info("kwargs", reporter_name=IDENTITY["name"], nik=IDENTITY["nik"], alamat="Jl. Melati")

    assert_clean(output.getvalue())
    row, event, kwargs = lines(output)
    assert json.loads(row["body_text"])["reporter"] == REDACTED
    assert event["started"]["reporter"] == REDACTED and event["started"]["case_id"] == "LAP-1"
    assert kwargs["reporter_name"] == kwargs["nik"] == kwargs["alamat"] == REDACTED


def test_lines_are_json_with_iso_utc_timestamp_level_and_case_id(output: io.StringIO) -> None:
    configure_logging(json=True, stream=output)

    case_logger("LAP-9").info("case.decided", state="disposed")

    [line] = lines(output)
    assert line["event"] == "case.decided" and line["level"] == "info"
    assert line["case_id"] == "LAP-9" and line["state"] == "disposed"
    stamp = datetime.fromisoformat(line["timestamp"])
    assert stamp.utcoffset() == UTC.utcoffset(None)


@pytest.mark.parametrize("as_json", [True, False])
def test_tracebacks_never_show_local_variables(output: io.StringIO, as_json: bool) -> None:
    configure_logging(json=as_json, stream=output)

    def handle(reporter_identity: dict[str, str]) -> None:
        nama_pelapor = reporter_identity["name"]
        raise ValueError(f"cannot notify ({len(nama_pelapor)} chars)")

    try:
        handle(IDENTITY)
    except ValueError:
        structlog.get_logger("test").exception("notify.failed")

    text = output.getvalue()
    assert "notify.failed" in text and "ValueError: cannot notify (12 chars)" in text
    assert_clean(text)


def test_library_logs_through_stdlib_are_rendered_and_redacted(output: io.StringIO) -> None:
    configure_logging(json=True, stream=output)

    logging.getLogger("sqlalchemy.engine").warning("pool exhausted after %d s", 30)

    [line] = lines(output)
    assert line["event"] == "pool exhausted after 30 s"
    assert line["logger"] == "sqlalchemy.engine" and line["level"] == "warning"


def test_level_filters_and_auto_mode_picks_json_for_a_non_terminal(output: io.StringIO) -> None:
    configure_logging(level="warning", stream=output)  # json=None; a StringIO is no TTY
    log = structlog.get_logger("test")

    log.info("chatty")
    log.warning("kept")

    assert [line["event"] for line in lines(output)] == ["kept"]


def test_console_renderer_when_forced(output: io.StringIO) -> None:
    configure_logging(json=False, stream=output)

    structlog.get_logger("test").info("hello", reporter=IDENTITY, case_id="LAP-1")

    text = output.getvalue()
    assert "hello" in text and "case_id=LAP-1" in text and not text.startswith("{")
    assert_clean(text)


def test_reconfiguring_replaces_our_stdlib_handler_only(output: io.StringIO) -> None:
    configure_logging(json=True, stream=output)
    configure_logging(json=True, stream=output)

    logging.getLogger("x").warning("once")

    assert [line["event"] for line in lines(output)] == ["once"]


def test_unknown_level_is_an_error() -> None:
    with pytest.raises(LaporError, match="unknown log level 'loud'"):
        configure_logging(level="loud")


def test_log_handler_output_through_real_configuration_is_clean(output: io.StringIO) -> None:
    configure_logging(json=True, stream=output)
    message = OutboxMessage(
        1, "LAP-1", 2, "LAP-1:2:0", "notify", "reporter", payload_with_a_leak(), 1
    )

    LogHandler().deliver(message)

    assert_clean(output.getvalue())
    [line] = lines(output)
    assert line["data_keys"] == ["category", "description", "pelapor"]
    assert line["idempotency_key"] == "LAP-1:2:0" and line["target"] == "reporter"


@pytest.mark.parametrize(
    "key",
    ["reporter", "name", "Email", "phone_number", "NIK", "identity", "address", "reporterName",
     "nama_lengkap", "no-hp", "description", "missingInfo", "client_ip", "tanggal_lahir"],
)  # fmt: skip
def test_identity_and_free_text_keys_are_sensitive(key: str) -> None:
    assert is_sensitive_key(key)


@pytest.mark.parametrize(
    "key",
    ["event", "case_id", "state", "status", "agency", "region", "escalation_level", "template",
     "target", "kind", "idempotency_key", "attempt", "clock", "level", "timestamp", "seq"],
)  # fmt: skip
def test_operational_keys_are_kept(key: str) -> None:
    assert not is_sensitive_key(key)


@pytest.mark.parametrize(
    "key",
    ["api_key", "X-Api-Key", "Authorization", "reporter_token", "token", "webhook_secret",
     "db_password", "passwd", "credentials", "cookie"],
)  # fmt: skip
def test_credentials_are_never_logged(key: str) -> None:
    assert is_sensitive_key(key)


def test_an_error_text_quoting_a_payload_loses_its_personal_data(output: io.StringIO) -> None:
    configure_logging(json=True, stream=output)
    quoted = "{'note': 'hubungi 081234567890 / siti@example.id, NIK 3171234567890123'}"
    error = f"ValueError: bad row {quoted}"

    structlog.get_logger("test").warning("outbox.failed", error=error)

    [line] = lines(output)
    assert "081234567890" not in line["error"] and "siti@example.id" not in line["error"]
    assert "3171234567890123" not in line["error"] and line["error"].startswith(
        "ValueError: bad row"
    )


def test_redaction_stops_at_a_depth_limit_without_leaking() -> None:
    deep: dict[str, Any] = {"reporter": "x"}
    for _ in range(40):
        deep = {"nested": deep}

    text = json.dumps(redact(deep))

    assert '"x"' not in text


def test_default_stream_is_stderr_as_it_is_when_a_line_is_written(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    configured_under = io.StringIO()
    monkeypatch.setattr("sys.stderr", configured_under)
    configure_logging(json=True)
    configured_under.close()  # as a test runner closes the stream it captured with
    now = io.StringIO()
    monkeypatch.setattr("sys.stderr", now)

    structlog.get_logger("lapor").warning("runtime.conflict_retry", case_ids=["C1"])

    assert json.loads(now.getvalue())["event"] == "runtime.conflict_retry"
