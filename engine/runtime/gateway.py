"""The reporter gateway: a ``Notify`` to the reporter, sent as an SMS, an e-mail or an app push.

The outbox never holds the reporter's contact: a message to ``reporter`` carries the case id and
the template only. At delivery, in the delivery process and nowhere else, ``ContactSource`` opens
the reporter's sealed identity (``engine.runtime.identity``; the embedded runtime's ``reporter``)
and this handler picks the contact the reporter gave, then POSTs to an SMS/e-mail gateway's
webhook (the operator's, e.g. the SMS 1708 gateway), signed like the shipped webhook::

    POST <URL>   X-Lapor-Signature: sha256=<hex HMAC-SHA256 of the body, $LAPOR_GATEWAY_SECRET>
                 X-Lapor-Idempotency-Key: <case:seq:index>
    {"channel": "sms", "to": "+62812...", "text": "Laporan Anda ...", "template": "...",
     "tracking_number": "LAP-...", "idempotency_key": "LAP-...:4:0"}

The contact is in that body only: not in the outbox row, a log line, an exception or an error
text. A reporter with no contact (an anonymous report, nothing given, an erased identity) cannot
be told: the handler raises ``Undeliverable`` and the outbox records the message as
``undeliverable`` with the reason, never the contact.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from typing import Any

from engine.domain.errors import LaporError
from engine.runtime.delivery import DeliveryError, OutboxMessage, Undeliverable
from engine.runtime.errors import IdentityErasedError
from engine.runtime.posting import Poster, check_url, endpoint_of

__all__ = [
    "CHANNELS",
    "GATEWAY_SECRET_ENV",
    "REPORTER_TEXTS",
    "ContactSource",
    "ReporterGatewayHandler",
    "gateway_body",
    "reporter_contact",
    "reporter_text",
]

GATEWAY_SECRET_ENV = "LAPOR_GATEWAY_SECRET"

ContactSource = Callable[[str], Mapping[str, Any] | None]
"""Opens case ``case_id``'s reporter identity (``None``: none was given); may raise
``IdentityErasedError``. The embedded runtime's ``reporter`` is one."""

CHANNELS: tuple[tuple[str, str], ...] = (
    ("sms", "phone"),
    ("email", "email"),
    ("push", "push_token"),
)
"""(gateway channel, identity field), in the order tried: the SMS 1708 number first (the channel
most reporters use), then e-mail, then the app's push token. An identity's ``preferred_channel``
(one of these channels) goes first when its field is there."""

REPORTER_TEXTS: Mapping[str, str] = {
    "report_verified": "Laporan Anda {tracking} telah diverifikasi dan diteruskan ke instansi "
    "yang berwenang.",
    "information_requested": "Laporan Anda {tracking} memerlukan informasi tambahan. Mohon "
    "lengkapi melalui kanal LAPOR! yang Anda gunakan.",
    "report_archived": "Laporan Anda {tracking} diarsipkan.",
    "follow_up_posted": "Instansi telah menindaklanjuti laporan Anda {tracking}.",
    "answer_posted": "Instansi telah menjawab laporan Anda {tracking}. Anda dapat "
    "mengonfirmasi, membalas atau menyanggah jawaban tersebut.",
    "closed_without_reply": "Laporan Anda {tracking} ditutup karena tidak ada tanggapan.",
    "referred_to_ombudsman": "Laporan Anda {tracking} diteruskan ke Ombudsman RI.",
}
_FALLBACK = "Ada pembaruan untuk laporan Anda {tracking}."


def reporter_text(template: str, tracking: str) -> str:
    """The Indonesian text of ``template`` for the reporter of case ``tracking``."""
    return REPORTER_TEXTS.get(template, _FALLBACK).format(tracking=tracking)


def reporter_contact(identity: Mapping[str, Any]) -> tuple[str, str] | None:
    """``(channel, address)`` of the contact to use, or ``None`` when the identity has none."""
    found = {
        channel: value.strip()
        for channel, field in CHANNELS
        if isinstance(value := identity.get(field), str) and value.strip()
    }
    preferred = identity.get("preferred_channel")
    if isinstance(preferred, str) and preferred in found:
        return preferred, found[preferred]
    return next(iter(found.items()), None)


def gateway_body(message: OutboxMessage, channel: str, to: str) -> bytes:
    """The exact bytes POSTed to the gateway (canonical JSON: a retry sends the same)."""
    template = str(message.payload.get("effect", {}).get("template", ""))
    body = {
        "channel": channel,
        "to": to,
        "text": reporter_text(template, message.case_id),
        "template": template,
        "tracking_number": message.case_id,
        "idempotency_key": message.idempotency_key,
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


class ReporterGatewayHandler:
    """Takes every ``notify`` to ``reporter``; resolves the contact at delivery and POSTs it to
    the gateway. Any 2xx is delivered; other answers and transport failures are retried."""

    name = "reporter-gateway"

    def __init__(
        self, url: str, secret: str | bytes, contacts: ContactSource, *, timeout: float = 10
    ) -> None:
        check_url(url, "reporter gateway")
        if not secret:
            raise LaporError(f"the reporter gateway {endpoint_of(url)} needs a shared secret")
        self.url = url
        self.endpoint = endpoint_of(url)
        self._secret = secret.encode() if isinstance(secret, str) else secret
        self._contacts = contacts
        self._poster = Poster(timeout)

    def __repr__(self) -> str:  # never the secret, nor the URL's path
        return f"ReporterGatewayHandler({self.endpoint!r})"

    def accepts(self, message: OutboxMessage) -> bool:
        return message.kind == "notify" and message.target == "reporter"

    def deliver(self, message: OutboxMessage) -> None:
        try:
            identity = self._contacts(message.case_id)
        except IdentityErasedError:
            raise Undeliverable("the reporter's identity was erased") from None
        except LaporError as exc:
            # The runtime's words name the case and key ids, never what the identity holds.
            raise DeliveryError(f"cannot open the reporter's identity: {exc}") from None
        if identity is None:
            raise Undeliverable("no reporter identity was given (an anonymous report)")
        contact = reporter_contact(identity)
        if contact is None:
            raise Undeliverable("the reporter gave no phone number, e-mail address or push token")
        channel, to = contact
        body = gateway_body(message, channel, to)
        signature = "sha256=" + hmac.new(self._secret, body, hashlib.sha256).hexdigest()
        self._poster.post(
            self.url,
            body,
            {
                "Content-Type": "application/json; charset=utf-8",
                "User-Agent": "lapor-sla-gateway/1",
                "X-Lapor-Signature": signature,
                "X-Lapor-Idempotency-Key": message.idempotency_key,
                "X-Lapor-Delivery-Attempt": str(message.attempts),
            },
        )
