"""Structured logging for every lapor process, with the reporter's identity kept out of it.

The engine never puts a reporter's identity or complaint text into a log call on purpose: the
reporter lives in its own table and the outbox payload is an agency-safe view. The redaction
processor here is defense in depth against the accidental case, someone logging a whole payload,
case or event object: it masks, at any depth of the event dict,

* every key that names identity (``reporter``, ``name``, ``email``, ``phone``, ``nik``,
  ``address``... in English and Indonesian, also inside ``reporter_name`` or ``reporterEmail``);
* free-text complaint fields (``description``, ``title``, ``comment``...), which a reporter may fill
  with their own name;
* every value of a ``data`` mapping except a short allow-list of structural fields (category,
  region, agency...), since case and signal data are mostly free text;

and it looks inside dataclasses (``Case``, ``Started``, outbox messages) and JSON text. It errs on
the side of masking: a clock called ``reporter_reply`` used as a key is masked too. It cannot see
an identity pasted into the event message itself (``log.info(f"... {name}")``); don't do that.

Tracebacks are rendered without local variables, since a frame's locals may hold a reporter.
"""

from __future__ import annotations

import dataclasses
import functools
import json as json_lib
import logging
import re
import sys
from collections.abc import Mapping
from typing import Any, TextIO, cast

import structlog
from structlog.typing import EventDict, FilteringBoundLogger, Processor, WrappedLogger

from engine.domain.errors import LaporError
from engine.domain.masking import mask_personal_data

__all__ = [
    "REDACTED",
    "case_logger",
    "configure_logging",
    "is_sensitive_key",
    "redact",
    "redact_identity",
]

REDACTED = "[redacted]"

# Words that, as a whole word of a key, mark it as carrying a person's identity.
_IDENTITY_WORDS = frozenset(
    {
        "reporter",
        "pelapor",
        "identity",
        "identitas",
        "name",
        "names",
        "nama",
        "fullname",
        "firstname",
        "lastname",
        "username",
        "email",
        "mail",
        "phone",
        "telephone",
        "telepon",
        "tel",
        "mobile",
        "msisdn",
        "hp",
        "nohp",
        "whatsapp",
        "wa",
        "nik",
        "ktp",
        "kk",
        "nip",
        "npwp",
        "passport",
        "paspor",
        "address",
        "alamat",
        "birth",
        "birthdate",
        "dob",
        "lahir",
        "ip",
        "contact",
        "kontak",
    }
)
# Distinctive enough to match anywhere inside a key ("reporteremail", "emailaddr", "x_api_key").
_IDENTITY_FRAGMENTS = ("reporter", "pelapor", "identit", "email", "phone", "telepon", "alamat")
# Credentials, masked wherever they occur in a key ("api_key", "Authorization", "db_password").
_SECRET_FRAGMENTS = (
    "password",
    "passwd",
    "secret",
    "token",
    "authorization",
    "api_key",
    "apikey",
    "credential",
    "cookie",
)
# Free text a reporter writes (the workflow's intake and reply fields), masked wherever they occur.
_FREE_TEXT_KEYS = frozenset(
    {
        "description",
        "deskripsi",
        "title",
        "judul",
        "isi",
        "laporan",
        "complaint",
        "comment",
        "komentar",
        "location",
        "lokasi",
        "info",
        "missing_info",
        "response",
        "body",
    }
)
# Fields of case or signal ``data`` that are codes, not prose: the only ones logged in the clear.
_SAFE_DATA_KEYS = frozenset(
    {
        "category",
        "region",
        "channel",
        "agency",
        "tier",
        "type",
        "anonymous",
        "confidential",
        "rating",
    }
)
_MAX_DEPTH = 16
_CAMEL = re.compile(r"([a-z0-9])([A-Z])")
_SEPARATORS = re.compile(r"[^a-z0-9]+")


def is_sensitive_key(key: object) -> bool:
    """Whether a log key may carry a reporter's identity or complaint text."""
    return isinstance(key, str) and _sensitive_name(key)


@functools.lru_cache(maxsize=4096)
def _sensitive_name(key: str) -> bool:
    # Cached: the same few dozen keys come by on every log line (the API writes one a request).
    normal = _CAMEL.sub(r"\1_\2", key).lower()
    if normal.strip("_") in _FREE_TEXT_KEYS:
        return True
    words = [w for w in _SEPARATORS.split(normal) if w]
    if any(w in _IDENTITY_WORDS for w in words):
        return True
    joined = "_".join(words)  # "X-Api-Key" and "x_api_key" alike
    return any(f in normal for f in _IDENTITY_FRAGMENTS) or any(
        f in joined for f in _SECRET_FRAGMENTS
    )


def redact(value: Any, _depth: int = 0) -> Any:
    """A copy of ``value`` with every sensitive key masked, at any depth."""
    if _depth > _MAX_DEPTH:
        return "[too deep]"
    if isinstance(value, Mapping):
        return {k: _redact_item(k, v, _depth) for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        # A Case or Started repr would print its data; its fields go through the same rules.
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        return {k: _redact_item(k, v, _depth) for k, v in fields.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [redact(item, _depth + 1) for item in value]
    if isinstance(value, str | bytes) and value[:1] in ("{", "[", b"{", b"["):
        # A payload or row body logged as raw JSON text: look inside it.
        try:
            parsed = json_lib.loads(value)
        except ValueError:
            pass
        else:
            return json_lib.dumps(redact(parsed, _depth + 1), ensure_ascii=False, sort_keys=True)
    if isinstance(value, str):
        # Any other text (an exception's message quoting a payload, a driver's error): no NIK,
        # phone number or e-mail address survives it.
        return mask_personal_data(value)
    return value


def _redact_item(key: Any, value: Any, depth: int) -> Any:
    if is_sensitive_key(key):
        return REDACTED
    if key == "data" and isinstance(value, Mapping):
        return {
            k: redact(v, depth + 2) if k in _SAFE_DATA_KEYS else REDACTED for k, v in value.items()
        }
    return redact(value, depth + 1)


def redact_identity(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """structlog processor: mask identity and complaint text anywhere in the event dict."""
    return {
        key: value if key == "event" else _redact_item(key, value, 0)
        for key, value in event_dict.items()
    }


_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}


class _CurrentStderr:
    """Whatever ``sys.stderr`` is when a line is written, not when logging was configured: a
    test runner or a CLI harness that swaps in a stream and later closes it must not leave the
    process logging into a closed file."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


class _LaporStdlibHandler(logging.StreamHandler[TextIO]):
    """Marks the root handler we install, so reconfiguring replaces ours and no one else's."""


def configure_logging(
    *, json: bool | None = None, level: str = "info", stream: TextIO | None = None
) -> None:
    """Configure structlog (and the standard ``logging`` root) for a lapor process.

    ``json``: ``None`` picks a coloured console renderer when ``stream`` (stderr by default) is a
    terminal and JSON lines otherwise; ``True``/``False`` force one. Timestamps are ISO 8601 UTC.
    Library loggers (SQLAlchemy, urllib3...) go through the same processors, redaction included.
    Safe to call again: the last call wins, also for loggers created before it.
    """
    number = _LEVELS.get(level.lower())
    if number is None:
        raise LaporError(f"unknown log level {level!r}; expected one of: {', '.join(_LEVELS)}")
    out = stream if stream is not None else cast(TextIO, _CurrentStderr())
    as_json = not out.isatty() if json is None else json

    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_identity,
    ]
    renderer: Processor
    if as_json:
        # Plain-text tracebacks: the dict form includes each frame's locals by default.
        shared.append(structlog.processors.format_exc_info)
        renderer = structlog.processors.JSONRenderer(sort_keys=True, ensure_ascii=False)
    else:
        tty = out.isatty()
        renderer = structlog.dev.ConsoleRenderer(
            colors=tty,
            exception_formatter=structlog.dev.RichTracebackFormatter(
                show_locals=False, color_system="truecolor" if tty else None
            ),
        )

    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(number),
        logger_factory=structlog.WriteLoggerFactory(file=out),
        # Not cached, so module-level loggers follow a later reconfiguration (CLI flags, tests).
        cache_logger_on_first_use=False,
    )

    handler = _LaporStdlibHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
        )
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _LaporStdlibHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(number)


def case_logger(case_id: str) -> FilteringBoundLogger:
    """A logger with ``case_id`` bound: every line about one case can be found by it."""
    return cast(FilteringBoundLogger, structlog.get_logger("lapor").bind(case_id=case_id))
