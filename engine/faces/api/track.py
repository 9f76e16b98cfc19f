"""What a reporter sees with a tracking number: the public status, the current deadline and what
happens next, in Indonesian, without any agency-internal detail (no escalation rung, no clock
names, no agency reply text, no identity).

A confidential report (``rahasia``) shows nothing without its reporter token, not even that it
exists (404). With the token the view adds what the reporter may do now (confirm, reply...).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from pydantic import BaseModel, Field

from engine.domain.calendar import zone_for_region
from engine.domain.case import Case
from engine.domain.machine import allowed_signals
from engine.domain.model import Model

__all__ = ["NEXT_STEPS", "TrackView", "track_view"]

NEXT_STEPS: Mapping[str, str] = {
    "submitted": "Laporan Anda sedang diverifikasi oleh Admin Nasional, lalu diteruskan ke "
    "instansi yang berwenang.",
    "on_hold": "Admin Nasional meminta informasi tambahan. Lengkapi laporan Anda agar "
    "verifikasi dapat dilanjutkan.",
    "disposed": "Laporan Anda telah diteruskan ke instansi yang berwenang, yang akan "
    "memberikan tindak lanjut sebelum batas waktu.",
    "in_progress": "Instansi sedang menindaklanjuti laporan Anda.",
    "awaiting_reporter": "Instansi telah memberikan jawaban. Konfirmasi, balas, atau sanggah "
    "jawaban tersebut sebelum batas waktu; tanpa tanggapan, laporan dianggap selesai.",
    "closed": "Laporan Anda telah selesai ditangani.",
    "archived": "Laporan Anda diarsipkan dan tidak ditindaklanjuti.",
    "referred_to_ombudsman": "Batas waktu penanganan terlampaui; laporan Anda dilimpahkan ke "
    "Ombudsman Republik Indonesia.",
}
_FALLBACK = "Laporan Anda sedang diproses."
_CLOSED = "Laporan Anda telah ditutup."

# What a reporter may send, in words (the triggers of the shipped workflow's reporter role).
_ACTIONS: Mapping[str, str] = {
    "supply_info": "lengkapi informasi",
    "confirm": "konfirmasi jawaban",
    "reply": "balas jawaban",
    "dispute": "sanggah jawaban",
}


class TrackView(BaseModel):
    tracking_number: str
    status: str = Field(description="The public status label, e.g. Terdisposisi")
    opened_at: str
    deadline: str | None = Field(
        description="The current deadline in the region's time zone; null when none runs"
    )
    next_step: str = Field(description="What happens next, in Indonesian")
    closed: bool
    reporter_actions: list[str] | None = Field(
        default=None,
        description="With the reporter token: the signals the reporter may send now",
    )


def track_view(case: Case, model: Model, *, with_token: bool) -> TrackView:
    """The public view of ``case``; ``with_token``: the reporter's own, with their actions."""
    zone = zone_for_region(case.region)
    running = [c for c in case.clocks if c.running and c.due_at is not None]
    deadline = None
    if running and not case.closed:
        first = min(running, key=lambda c: c.due_at or case.opened_at)
        assert first.due_at is not None
        deadline = _local(first.due_at, first.region)
    actions = None
    if with_token:
        actions = [
            trigger
            for trigger in allowed_signals(model, case)
            if "reporter" in model.transitions[trigger].roles
        ]
    return TrackView(
        tracking_number=case.id,
        status=case.status,
        opened_at=case.opened_at.astimezone(zone).isoformat(),
        deadline=deadline,
        next_step=NEXT_STEPS.get(case.state, _CLOSED if case.closed else _FALLBACK)
        + _actions_text(actions),
        closed=case.closed,
        reporter_actions=actions,
    )


def _local(moment: datetime, region: str) -> str:
    return moment.astimezone(zone_for_region(region)).isoformat()


def _actions_text(actions: list[str] | None) -> str:
    words = [_ACTIONS[a] for a in actions or () if a in _ACTIONS]
    return f" Yang dapat Anda lakukan sekarang: {', '.join(words)}." if words else ""
