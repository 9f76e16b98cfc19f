"""A synthetic but realistic stream of SP4N-LAPOR! complaints, and how each party behaves.

Everything is drawn from one seeded ``random.Random`` so a demo run is reproducible. Nothing here
touches a runtime: it produces start requests and, per complaint, the script of signals its
parties will send (admin verification or hold, agency follow-up and answer, reporter reaction).
Whether a signal is still allowed when it arrives is the engine's business, not the script's.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

__all__ = ["AGENCY_PROFILES", "Complaint", "Population", "ScriptedSignal"]

CHANNELS = (("web", 40), ("app", 30), ("sms_1708", 20), ("social", 10))
# category, weight, the agency the admin picks when the routing table has no rule for it
CATEGORIES = (
    ("kesehatan", 18, None),
    ("administrasi_kependudukan", 14, None),
    ("infrastruktur", 14, None),
    ("bantuan_sosial", 12, None),
    ("pendidikan", 10, None),
    ("jaminan_kesehatan", 9, None),
    ("transportasi", 7, None),
    ("pertanahan", 6, None),
    ("keamanan", 5, None),
    ("lainnya", 5, "kemensos"),
)
# Provinces with a regional agency in the shipped routing table, across WIB, WITA and WIT.
REGIONS = (
    ("ID-JK", 22),
    ("ID-JB", 20),
    ("ID-JI", 18),
    ("ID-BA", 8),
    ("ID-SN", 10),
    ("ID-KI", 8),
    ("ID-PA", 7),
    ("ID-MA", 7),
)
TIERS = (("simple", 70), ("no_field_exam", 22), ("field_exam", 8))
FIRST_NAMES = ("Siti", "Budi", "Ahmad", "Dewi", "Made", "Andi", "Yohana", "Rizky", "Nur", "Agus")
LAST_NAMES = ("Rahma", "Santoso", "Hidayat", "Lestari", "Wirawan", "Pratama", "Mandagi", "Saputra")

# How an agency behaves: P(first follow-up ever), its delay range in days, P(answer at all),
# answer delay after the follow-up in days.
AGENCY_PROFILES: dict[str, tuple[float, tuple[float, float], float, tuple[float, float]]] = {
    "prompt": (0.995, (0.2, 3.0), 0.98, (0.5, 3.0)),
    "average": (0.98, (0.5, 5.0), 0.95, (1.0, 5.0)),
    "slow": (0.93, (2.0, 9.0), 0.88, (2.0, 9.0)),
    "absent": (0.70, (4.0, 14.0), 0.60, (5.0, 20.0)),
}
AGENCY_BEHAVIOUR = {
    "kemenkes": "average",
    "kemendikdasmen": "prompt",
    "kemensos": "slow",
    "kemenhub": "prompt",
    "atrbpn": "absent",
    "polri": "slow",
    "bpjs-kesehatan": "average",
    "pemprov-dki": "prompt",
    "pemprov-jabar": "average",
    "pemprov-jatim": "average",
    "pemprov-bali": "prompt",
    "pemprov-sulsel": "slow",
    "pemprov-kaltim": "average",
    "pemprov-papua": "absent",
    "pemprov-maluku": "slow",
}
REGIONAL_CATEGORIES = {"infrastruktur", "administrasi_kependudukan"}
NATIONAL_AGENCY = {
    "kesehatan": "kemenkes",
    "jaminan_kesehatan": "bpjs-kesehatan",
    "pendidikan": "kemendikdasmen",
    "bantuan_sosial": "kemensos",
    "transportasi": "kemenhub",
    "pertanahan": "atrbpn",
    "keamanan": "polri",
}
REGIONAL_AGENCY = {
    "ID-JK": "pemprov-dki",
    "ID-JB": "pemprov-jabar",
    "ID-JI": "pemprov-jatim",
    "ID-BA": "pemprov-bali",
    "ID-SN": "pemprov-sulsel",
    "ID-KI": "pemprov-kaltim",
    "ID-PA": "pemprov-papua",
    "ID-MA": "pemprov-maluku",
}


@dataclass(frozen=True, slots=True)
class ScriptedSignal:
    at: datetime
    name: str
    actor: str
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Complaint:
    case_id: str
    at: datetime
    data: dict[str, Any]
    reporter: dict[str, Any]
    agency: str
    script: tuple[ScriptedSignal, ...]


# A script waits on the driver's heap until its case is done, so a national run holds hundreds
# of thousands of them at once: payloads that repeat are shared, never rebuilt per complaint
# (nothing downstream mutates a signal's data).
_ARCHIVE = {"reason": "Bukan pelayanan publik"}
_HOLD = {"missing_info": "Mohon lengkapi lokasi"}
_SUPPLY = {"info": "Lokasi terlampir"}
_FOLLOW_UP = {"response": "Sedang ditindaklanjuti"}
_COMPLETE = {"response": "Sudah diselesaikan"}
_DISPUTE = {"reason": "Belum selesai"}
_shared: dict[tuple[Any, ...], Any] = {}


def _once(*key: Any) -> Any:
    """One shared object per distinct ``key`` (verify payloads, ratings, actor names)."""
    value = _shared.get(key)
    if value is None:
        kind, *rest = key
        if kind == "verify":
            value = {"tier": rest[0]} if rest[1] is None else {"tier": rest[0], "agency": rest[1]}
        elif kind == "confirm":
            value = {"rating": rest[0]}
        elif kind == "not_authority":
            value = {"agency": rest[0], "reason": "Bukan kewenangan kami"}
        else:  # "actor"
            value = f"agency:{rest[0]}"
        _shared[key] = value
    return value


def _pick(rng: random.Random, table: tuple[tuple[Any, ...], ...]) -> tuple[Any, ...]:
    total = sum(row[1] for row in table)
    point = rng.uniform(0, total)
    for row in table:
        point -= row[1]
        if point <= 0:
            return row
    return table[-1]


class Population:
    """``count`` complaints arriving evenly over ``arrival_days`` days from ``start``."""

    def __init__(
        self, count: int, start: datetime, *, arrival_days: int = 56, seed: int = 1708
    ) -> None:
        self.count = count
        self.start = start
        self.arrival_days = arrival_days
        self.seed = seed

    def __iter__(self) -> Iterator[Complaint]:
        rng = random.Random(self.seed)
        spacing = self.arrival_days * 86400 / max(self.count, 1)
        for index in range(self.count):
            arrival = self.start + timedelta(seconds=index * spacing + rng.uniform(0, spacing))
            yield self._complaint(rng, index, arrival)

    def _complaint(self, rng: random.Random, index: int, at: datetime) -> Complaint:
        category, _, fallback = _pick(rng, CATEGORIES)
        region = _pick(rng, REGIONS)[0]
        if category in REGIONAL_CATEGORIES:
            agency = REGIONAL_AGENCY[region]
        else:
            agency = NATIONAL_AGENCY.get(category) or fallback or "kemensos"
        data: dict[str, Any] = {
            "category": category,
            "region": region,
            "channel": _pick(rng, CHANNELS)[0],
            "description": f"Laporan {category.replace('_', ' ')} nomor {index + 1}",
        }
        roll = rng.random()
        if roll < 0.15:
            data["anonymous"] = True
        elif roll < 0.20:
            data["confidential"] = True
        reporter = {
            "name": f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}",
            "phone": f"+62812{rng.randrange(10**7, 10**8)}",
        }
        case_id = f"LAPOR-DEMO-{index + 1:08d}"
        script = tuple(self._script(rng, at, category, agency))
        return Complaint(case_id, at, data, reporter, agency, script)

    def _script(
        self, rng: random.Random, at: datetime, category: str, agency: str
    ) -> Iterator[ScriptedSignal]:
        admin = "admin:nasional"
        days = timedelta(days=1)
        t = at + timedelta(hours=rng.uniform(2, 24 * 5))  # most within 3 working days, some not
        if rng.random() < 0.05:
            yield ScriptedSignal(t, "archive", admin, _ARCHIVE)
            return
        if rng.random() < 0.08:
            yield ScriptedSignal(t, "hold", admin, _HOLD)
            if rng.random() < 0.3:
                return  # the reporter never answers; the case stays on hold
            t += days * rng.uniform(0.5, 6)
            yield ScriptedSignal(t, "supply_info", "reporter", _SUPPLY)
            t += timedelta(hours=rng.uniform(2, 48))
        tier = _pick(rng, TIERS)[0]
        verify = _once("verify", tier, agency if category == "lainnya" else None)
        yield ScriptedSignal(t, "verify", admin, verify)
        actor = _once("actor", agency)
        p_follow, follow_delay, p_answer, answer_delay = AGENCY_PROFILES[AGENCY_BEHAVIOUR[agency]]
        if rng.random() < 0.03:
            other = "kemenkes" if agency != "kemenkes" else "kemensos"
            t += days * rng.uniform(0.5, 3)
            yield ScriptedSignal(t, "not_authority", actor, _once("not_authority", other))
            agency, actor = other, _once("actor", other)
        if rng.random() > p_follow:
            return
        t += days * rng.uniform(*follow_delay)
        yield ScriptedSignal(t, "follow_up", actor, _FOLLOW_UP)
        for _round in range(2):
            if rng.random() > p_answer:
                return
            t += days * rng.uniform(*answer_delay)
            yield ScriptedSignal(t, "complete", actor, _COMPLETE)
            reaction = rng.random()
            t += days * rng.uniform(0.5, 9)
            if reaction < 0.45:
                yield ScriptedSignal(t, "confirm", "reporter", _once("confirm", rng.randint(2, 5)))
                return
            if reaction < 0.55:
                yield ScriptedSignal(t, "dispute", "reporter", _DISPUTE)
                continue
            return  # no reply: the reply clock auto-closes the case
