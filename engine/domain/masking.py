"""Personal data in free text, masked where an agency reads an anonymous or confidential report.

A reporter who asked to stay anonymous (or whose whole report is confidential, *rahasia*) often
still writes a NIK, a phone number or an e-mail address into the description or a reply. The
agency-facing view of such a case (``engine.domain.case.agency_view``: outbox payloads, webhook
bodies) shows those as ``[disamarkan]``; the history keeps the text as written, for the
reporter's own view and for audit.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["MASK", "mask_personal_data", "masked_fields"]

MASK = "[disamarkan]"

_EMAIL = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
# Nomor Induk Kependudukan: 16 digits, sometimes written in groups ("3171 2345 6789 0123").
_NIK = r"(?<!\d)\d(?:[\s.-]?\d){15}(?!\d)"
# Indonesian mobile numbers: +62 8.., 62 8.. or 08.., 9 to 13 digits after the 8, in any grouping.
_PHONE = r"(?<![\d+])(?:\+62|62|0)[\s.-]?8(?:[\s.-]?\d){7,12}(?!\d)"
_PERSONAL = re.compile(f"{_EMAIL}|{_NIK}|{_PHONE}")


def mask_personal_data(text: str) -> str:
    """``text`` with every NIK, Indonesian phone number and e-mail address replaced by ``MASK``."""
    return _PERSONAL.sub(MASK, text)


def masked_fields(value: Any) -> Any:
    """``value`` (JSON-like) with ``mask_personal_data`` applied to every string inside it."""
    if isinstance(value, str):
        return mask_personal_data(value)
    if isinstance(value, Mapping):
        return {key: masked_fields(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [masked_fields(item) for item in value]
    return value
