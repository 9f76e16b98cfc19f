"""The words of ``lapor audit explain``: every sentence and name in Indonesian and English.

One table per kind of text, each entry ``(Indonesian, English)``, so the two languages cannot
drift apart: the explainer (``engine.apps.audit.explain``) decides what to say once and asks
``Words`` for it in the language chosen. Names from the shipped SP4N-LAPOR! model (clocks,
transitions, ladder targets) have words here; a name of any other model shows as it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any, Literal

from engine.domain.calendar import ZONES, Duration, Holiday
from engine.domain.errors import LaporError
from engine.domain.model import Model

__all__ = ["LANGS", "Lang", "Words", "check_lang"]

Lang = Literal["id", "en"]
LANGS: tuple[Lang, ...] = ("id", "en")

# Recorded instants carry only an offset ("+07:00"); Indonesia's zones have one offset each.
_ZONE_BY_OFFSET = {zone.utcoffset(None): name for name, zone in ZONES.items()}


def check_lang(text: str) -> Lang:
    """``text`` as a language of the timeline, or a ``LaporError`` naming the choices."""
    for lang in LANGS:
        if text == lang:
            return lang
    raise LaporError(f"unknown language {text!r}; use one of: {', '.join(LANGS)}")


# Every sentence once, in both languages: (Indonesian, English).
_TEXT: Mapping[str, tuple[str, str]] = {
    "head": ("{n}. {when} · catatan #{seq}", "{n}. {when} · record #{seq}"),
    "started": (
        "Laporan diterima; wilayah {region} ({region_name}, {zone})",
        "Report received; region {region} ({region_name}, {zone})",
    ),
    "signal": ("Tindakan: {action}", "Action: {action}"),
    "lapsed": (
        "Tenggat {clock} terlewati tanpa tindakan",
        "The {clock} deadline passed with no action",
    ),
    "by": ("Oleh: {role} ({actor})", "By: {role} ({actor})"),
    "recorded": ("Dicatat {when}", "Recorded {when}"),
    "since_previous": ("{days} sejak langkah sebelumnya", "{days} since the previous step"),
    "rule": (
        "Aturan: transisi {trigger}: {source} → {target}",
        "Rule: transition {trigger}: {source} → {target}",
    ),
    "initial": (
        "Aturan: model {model}; status awal {target}",
        "Rule: model {model}; initial status {target}",
    ),
    "fields": ("Data: {fields}", "Data: {fields}"),
    "hidden": ("{name} (teks tidak ditampilkan)", "{name} (text not shown)"),
    "routed": ("Didisposisikan ke {agency}", "Disposed to {agency}"),
    "lapse": (
        "Jatuh tempo {due} (tingkat {level}); {days} sejak jam dimulai",
        "It was due {due} (level {level}); {days} since the clock started",
    ),
    "escalated": (
        "Eskalasi ke tingkat {level} dari {levels}: {to}; tenggat baru {duration}, "
        "jatuh tempo {due}",
        "Escalated to level {level} of {levels}: {to}; new deadline {duration}, due {due}",
    ),
    "escalated_final": (
        "Eskalasi ke tingkat terakhir {level} dari {levels}: {to}; tanpa tenggat baru",
        "Escalated to the last level, {level} of {levels}: {to}; no further deadline",
    ),
    "joined": (
        "Satu pemberitahuan yang sama untuk jam: {clocks}",
        "One notice also covers the clocks: {clocks}",
    ),
    "notice_of": (
        "Pemberitahuannya sudah dikirim bersama jam {clock} (tingkat dan saat yang sama)",
        "The notice sent for clock {clock} covered this lapse too (same rung, same instant)",
    ),
    "on_time": (
        "Jam {clock} berhenti: tepat waktu (jatuh tempo {due}; {elapsed})",
        "Clock {clock} stopped: on time (due {due}; {elapsed})",
    ),
    "late": (
        "Jam {clock} berhenti: terlambat {late} (tenggat awal {due}; tingkat eskalasi {level}; "
        "{elapsed})",
        "Clock {clock} stopped: late by {late} (its own deadline {due}; escalation level "
        "{level}; {elapsed})",
    ),
    "since_start": ("{days} sejak jam dimulai", "{days} since the clock started"),
    "counted": ("{days} dihitung tanpa masa jeda", "{days} counted without pauses"),
    "under_a_day": ("kurang dari 1 hari kerja", "less than one working day"),
    "by_system": (
        "Jam {clock} dihentikan oleh sistem ({elapsed})",
        "Clock {clock} stopped by the system ({elapsed})",
    ),
    "paused": (
        "Jam {clock} dijeda; sisa {remaining}",
        "Clock {clock} paused with {remaining} left",
    ),
    "clock_started": (
        "Jam {clock} dimulai: {duration}, jatuh tempo {due}",
        "Clock {clock} started: {duration}, due {due}",
    ),
    "clock_restarted": (
        "Jam {clock} dimulai ulang: {duration}, jatuh tempo {due}",
        "Clock {clock} restarted: {duration}, due {due}",
    ),
    "clock_resumed": (
        "Jam {clock} dilanjutkan: sisa {duration}, jatuh tempo {due}",
        "Clock {clock} resumed: {duration} left, due {due}",
    ),
    "holidays": ("Hari libur dilewati: {holidays}", "Holidays skipped: {holidays}"),
    "holiday": ("{name} ({day}, {kind})", "{name} ({day}, {kind})"),
    "notified": ("Diberitahukan: {targets}", "Notified: {targets}"),
    "closed": ("Kasus ditutup: {outcome}", "Case closed: {outcome}"),
}

# Names of the shipped SP4N-LAPOR! model in words; a name of another model shows as it is.
_NAMES: Mapping[str, tuple[str, str]] = {
    # clocks
    "clock:verification": ("verifikasi", "verification"),
    "clock:first_follow_up": ("tindak lanjut pertama", "first follow-up"),
    "clock:completion": ("penyelesaian", "completion"),
    "clock:reporter_reply": ("tanggapan pelapor", "reporter's reply"),
    # roles of actors
    "role:reporter": ("Pelapor", "Reporter"),
    "role:admin": ("Admin", "Admin"),
    "role:agency": ("Instansi", "Agency"),
    "role:system": ("Sistem", "System"),
    # whom a notice or an escalation goes to
    "to:reporter": ("pelapor", "the reporter"),
    "to:agency": ("instansi", "the agency"),
    "to:admin": ("Admin Nasional", "Admin Nasional"),
    "to:agency_liaison": ("penghubung instansi", "the agency liaison"),
    "to:agency_superior": ("atasan unit", "the unit's superior (atasan)"),
    "to:admin_nasional": ("Admin Nasional (intervensi)", "Admin Nasional (intervention)"),
    "to:admin_supervisor": ("atasan Admin Nasional", "Admin Nasional's supervisor"),
    "to:ombudsman_ri": ("Ombudsman RI", "Ombudsman RI"),
    # transitions
    "do:verify": ("Verifikasi dan disposisi", "Verify and dispose"),
    "do:hold": ("Tunda (informasi kurang)", "Hold (Tunda: information missing)"),
    "do:supply_info": ("Pelapor melengkapi informasi", "The reporter supplies information"),
    "do:not_authority": ("Bukan Wewenang", "Not this agency's authority (Bukan Wewenang)"),
    "do:archive": ("Arsipkan", "Archive"),
    "do:follow_up": ("Tindak lanjut pertama", "First follow-up"),
    "do:complete": ("Jawaban instansi", "The agency's answer"),
    "do:confirm": ("Pelapor menerima jawaban", "The reporter accepts the answer"),
    "do:reply": ("Pelapor membalas", "The reporter replies"),
    "do:dispute": ("Pelapor menyanggah jawaban", "The reporter disputes the answer"),
    "do:auto_close": ("Ditutup otomatis", "Closed automatically"),
    "do:refer_to_ombudsman": ("Dirujuk ke Ombudsman RI", "Referred to Ombudsman RI"),
    # outcomes
    "outcome:resolved": ("selesai", "resolved"),
    "outcome:archived": ("diarsipkan", "archived"),
    "outcome:referred_to_ombudsman": ("dirujuk ke Ombudsman RI", "referred to Ombudsman RI"),
    # holiday kinds
    "kind:libur_nasional": ("libur nasional", "national holiday"),
    "kind:cuti_bersama": ("cuti bersama", "collective leave"),
}

# (Indonesian, English singular, English plural)
_UNITS: Mapping[str, tuple[str, str, str]] = {
    "working_days": ("hari kerja", "working day", "working days"),
    "working_hours": ("jam kerja", "working hour", "working hours"),
    "working_seconds": ("detik kerja", "working second", "working seconds"),
    "calendar_days": ("hari kalender", "calendar day", "calendar days"),
    "calendar_seconds": ("detik", "second", "seconds"),
}
_WEEKDAYS = (
    ("Senin", "Selasa", "Rabu", "Kamis", "Jumat", "Sabtu", "Minggu"),
    ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
)
_MONTHS = (
    ("Januari", "Februari", "Maret", "April", "Mei", "Juni", "Juli", "Agustus", "September",
     "Oktober", "November", "Desember"),
    ("January", "February", "March", "April", "May", "June", "July", "August", "September",
     "October", "November", "December"),
)  # fmt: skip


class Words:
    """One language's view of the tables above, for one model's state names."""

    def __init__(self, model: Model, lang: Lang) -> None:
        self.model = model
        self.i = LANGS.index(lang)

    def say(self, key: str, **values: Any) -> str:
        return _TEXT[key][self.i].format(**values)

    def name(self, kind: str, name: str) -> str:
        words = _NAMES.get(f"{kind}:{name}")
        return name if words is None else words[self.i]

    def clock(self, name: str) -> str:
        label = self.name("clock", name)
        return name if label == name else f"{label} [{name}]"

    def target(self, name: str) -> str:
        label = self.name("to", name)
        return name if label == name else f"{label} [{name}]"

    def state(self, name: str | None) -> str:
        state = self.model.states.get(name or "")
        return str(name) if state is None else f"{state.status} [{state.name}]"

    def duration(self, value: Duration) -> str:
        indonesian, one, many = _UNITS[value.unit]
        unit = (indonesian, one if value.amount == 1 else many)[self.i]
        return f"{value.amount} {unit}"

    def days(self, amount: int) -> str:
        return self.duration(Duration(amount, "working_days"))

    def day(self, moment: date) -> str:
        weekday = _WEEKDAYS[self.i][moment.weekday()]
        month = _MONTHS[self.i][moment.month - 1]
        return f"{weekday}{',' if self.i == 0 else ''} {moment.day} {month} {moment.year}"

    def when(self, moment: datetime) -> str:
        sep = "." if self.i == 0 else ":"  # Indonesian writes 09.30, English 09:30
        clock = f"{moment.hour:02d}{sep}{moment.minute:02d}"
        if moment.second:
            clock += f"{sep}{moment.second:02d}"
        zone = _ZONE_BY_OFFSET.get(moment.utcoffset(), moment.tzname())
        return f"{self.day(moment)} {clock} {zone}"

    def holidays(self, holidays: tuple[Holiday, ...]) -> str:
        return "; ".join(
            self.say("holiday", name=h.name, day=self.day(h.day), kind=self.name("kind", h.kind))
            for h in holidays
        )
