"""What a changed workflow or SLA policy would have done to past complaints.

Each case's recorded inputs (its start and its signals, with their times) are re-run under the
new model by ``engine.domain.history.what_if``, which fires the new model's own clocks between
them; the recorded lapses belong to the old model and are not inputs. The re-run is compared
with what was recorded: the instant of the first escalation and of each ladder rung, and
whether the case reached a ladder's final rung (the referral to Ombudsman RI in the shipped
ladders). A recorded input the new model refuses makes the case *diverge* at that record.

Both sides are compared up to one instant, ``until``, so an open case is judged on the same
stretch of time under both models. Cases stream through ``WhatIf.compare`` one by one: only
counters and a bounded sample of the most changed cases are kept, whatever the number of cases.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from engine.domain.calendar import REGION_ZONES, ZONES, WorkingCalendar
from engine.domain.errors import LaporError
from engine.domain.events import instant
from engine.domain.history import what_if
from engine.domain.machine import LAPSE_MARGIN, Decision, wake_at
from engine.domain.model import EscalationLadder, Model
from engine.domain.records import HistoryRecord
from engine.runtime.histories import CaseHistory

__all__ = [
    "CHANGES",
    "CaseDiff",
    "Change",
    "Divergence",
    "Escalations",
    "Rung",
    "WhatIf",
    "WhatIfSummary",
    "classify",
    "referral_targets",
    "rung_label",
    "working_days_between",
]

Change = Literal["earlier", "later", "newly", "no_longer", "same", "none"]
CHANGES: tuple[Change, ...] = ("earlier", "later", "newly", "no_longer", "same", "none")
"""How an escalation moved: ``newly`` escalates under the new model only, ``no_longer`` under
the old one only, ``same`` at the same instant under both, ``none`` under neither."""

_MOVED: frozenset[Change] = frozenset(("earlier", "later", "newly", "no_longer"))

Rung = tuple[int, str]
"""A ladder rung as effects name it: its level and whom it escalates to."""


def classify(old: datetime | None, new: datetime | None) -> Change:
    """The one rule for comparing two escalation instants (either may be missing)."""
    if old is None:
        return "none" if new is None else "newly"
    if new is None:
        return "no_longer"
    return "earlier" if new < old else "later" if new > old else "same"


@dataclass(frozen=True, slots=True)
class Escalations:
    """What one model did to one case up to ``until``.

    Instants are when a deadline lapsed (one second after it, ``wake_at``), not when a timer
    happened to fire, so a late timer loop does not show up as a policy difference.
    """

    first: datetime | None = None
    rungs: Mapping[Rung, datetime] = field(default_factory=dict)
    referred_to: str | None = None
    referred_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Divergence:
    """The first recorded input the new model refuses: record ``record`` (its sequence number)."""

    record: int
    code: str
    reason: str


@dataclass(frozen=True, slots=True)
class CaseDiff:
    """One case under both models. ``delta_working_days`` is new minus old first escalation
    (negative: earlier), when both escalate."""

    case_id: str
    agency: str | None
    region: str
    old: Escalations
    new: Escalations
    change: Change
    delta_working_days: int | None = None
    divergence: Divergence | None = None

    @property
    def referral(self) -> Literal["gained", "lost"] | None:
        if (self.old.referred_to is None) == (self.new.referred_to is None):
            return None
        return "gained" if self.new.referred_to is not None else "lost"

    def rung_changes(self) -> dict[Rung, Change]:
        """Each rung reached under either model, with how it moved."""
        rungs = sorted(self.old.rungs.keys() | self.new.rungs.keys())
        return {r: classify(self.old.rungs.get(r), self.new.rungs.get(r)) for r in rungs}

    @property
    def changed(self) -> bool:
        return (
            self.change in _MOVED
            or self.referral is not None
            or self.divergence is not None
            or any(c in _MOVED for c in self.rung_changes().values())
        )

    def to_json(self) -> dict[str, Any]:
        """One line of ``lapor whatif --json``."""
        return {
            "kind": "case",
            "case_id": self.case_id,
            "agency": self.agency,
            "region": self.region,
            "change": self.change,
            "old_first_escalation": _text(self.old.first),
            "new_first_escalation": _text(self.new.first),
            "delta_working_days": self.delta_working_days,
            "referral": self.referral,
            "old_referred_at": _text(self.old.referred_at),
            "new_referred_at": _text(self.new.referred_at),
            "rungs": {
                rung_label(rung): {
                    "old": _text(self.old.rungs.get(rung)),
                    "new": _text(self.new.rungs.get(rung)),
                    "change": change,
                }
                for rung, change in self.rung_changes().items()
                if change in _MOVED
            },
            "diverges_at": None
            if self.divergence is None
            else {
                "record": self.divergence.record,
                "code": self.divergence.code,
                "reason": self.divergence.reason,
            },
        }


def referral_targets(model: Model) -> str:
    """Whom ``model``'s ladders refer a case to at their final rung (``ombudsman_ri``)."""
    targets = sorted({ladder.levels[-1].to for ladder in model.ladders.values() if _refers(ladder)})
    return ", ".join(targets) or "no final rung"


def _refers(ladder: EscalationLadder) -> bool:
    return bool(ladder.levels) and ladder.levels[-1].final


def rung_label(rung: Rung) -> str:
    return f"{rung[0]} {rung[1]}"


def _text(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


# --- one case -------------------------------------------------------------------------------


class _Ladders:
    """Per model: which (clock, level) is a ladder's final rung, and whom it refers the case to."""

    def __init__(self) -> None:
        self._finals: dict[str, Mapping[tuple[str, int], str]] = {}

    def finals(self, model: Model) -> Mapping[tuple[str, int], str]:
        found = self._finals.get(model.hash)
        if found is None:
            found = {}
            for clock in model.clocks:
                ladder = model.ladders.get(clock.escalate or "")
                if ladder is not None and _refers(ladder):
                    last = ladder.levels[-1]
                    found[(clock.name, last.level)] = last.to
            self._finals[model.hash] = found
        return found


def _escalations(
    finals: Mapping[tuple[str, int], str],
    records: Iterable[HistoryRecord],
    until: datetime,
) -> Escalations:
    first: datetime | None = None
    rungs: dict[Rung, datetime] = {}
    referred_to: str | None = None
    referred_at: datetime | None = None
    for record in records:
        lapsed: str | None = None
        for effect in record.effects:
            kind = effect["kind"]
            if kind == "lapsed":
                lapsed = effect["due_at"]
            elif kind == "escalated" and lapsed is not None:
                # An escalation happens when the deadline before it lapsed (see Escalations).
                at = wake_at(instant(lapsed))
                if at > until:
                    continue
                if first is None:
                    first = at
                rung = (int(effect["level"]), str(effect["to"]))
                rungs.setdefault(rung, at)
                target = finals.get((str(effect["clock"]), rung[0]))
                if target is not None and referred_to is None:
                    referred_to, referred_at = target, at
    return Escalations(first, rungs, referred_to, referred_at)


def _accepted_records(decisions: Sequence[Decision]) -> Iterator[HistoryRecord]:
    return (d.record for d in decisions if d.record is not None)


def _divergence(
    records: Sequence[HistoryRecord], decisions: Sequence[Decision]
) -> Divergence | None:
    """The first recorded input whose re-run decision is a rejection.

    ``what_if`` answers every input with a decision that is accepted or rejected (only timers
    it fires itself can decide nothing), in input order, so inputs and their decisions pair up.
    """
    inputs = (r for r in records if r.event.get("kind") != "clock_lapsed")
    answers = (
        d
        for d in decisions
        if d.rejection is not None
        or (d.record is not None and d.record.event.get("kind") != "clock_lapsed")
    )
    for record, decision in zip(inputs, answers, strict=False):
        if decision.rejection is not None:
            return Divergence(record.seq, decision.rejection.code, decision.rejection.reason)
    return None


# The first province of each zone: holidays are national, so any region of a zone counts alike.
_REGION_OF_OFFSET: dict[timedelta | None, str] = {}
for _region, _zone in REGION_ZONES.items():
    _REGION_OF_OFFSET.setdefault(ZONES[_zone].utcoffset(None), _region)


def working_days_between(calendar: WorkingCalendar, old: datetime, new: datetime) -> int:
    """``new`` minus ``old`` in working days (negative: ``new`` is earlier); both are lapse
    instants.

    Counted between the deadlines themselves, a second before: a deadline on a Friday lapses on
    Saturday, and counting from there would add the weekend's Monday to the difference. Counted
    in the zone the earlier deadline was set in, since a 23:59:59 WIB deadline is the next day
    in WITA.
    """
    early, late = sorted((old, new))
    region = _REGION_OF_OFFSET.get(early.utcoffset(), "ID-JK")
    days = calendar.remaining(early - LAPSE_MARGIN, late - LAPSE_MARGIN, "working_days", region)
    return days.amount if new >= old else -days.amount


# --- many cases -----------------------------------------------------------------------------


_GROUP_KEYS = ("cases", "changed", *CHANGES, "referral_gained", "referral_lost", "diverged")


@dataclass
class WhatIfSummary:
    """Counters over every compared case, overall, per agency and per region, and the ``top``
    most changed cases (referrals gained or lost first, then the largest shift)."""

    model_name: str
    model_hash: str
    until: datetime
    sample_size: int = 20
    overall: Counter[str] = field(default_factory=Counter)
    per_agency: dict[str, Counter[str]] = field(default_factory=dict)
    per_region: dict[str, Counter[str]] = field(default_factory=dict)
    per_rung: dict[Rung, Counter[Change]] = field(default_factory=dict)
    delta_working_days: Counter[int] = field(default_factory=Counter)
    skipped_other_workflow: Counter[str] = field(default_factory=Counter)
    unreadable: int = 0
    failed: int = 0
    failures: list[str] = field(default_factory=list)  # the first few, for the report
    _top: list[tuple[tuple[bool, int, int], CaseDiff]] = field(default_factory=list, repr=False)

    @property
    def top(self) -> list[CaseDiff]:
        return [diff for _, diff in sorted(self._top, key=lambda kept: kept[0], reverse=True)]

    def add(self, diff: CaseDiff) -> None:
        counts: dict[str, int] = {"cases": 1, diff.change: 1}
        changed = diff.changed
        if changed:
            counts["changed"] = 1
        if diff.referral is not None:
            counts[f"referral_{diff.referral}"] = 1
        if diff.divergence is not None:
            counts["diverged"] = 1
        self.overall.update(counts)
        self.per_agency.setdefault(diff.agency or "(none)", Counter()).update(counts)
        self.per_region.setdefault(diff.region, Counter()).update(counts)
        for rung, change in diff.rung_changes().items():
            self.per_rung.setdefault(rung, Counter())[change] += 1
        if diff.delta_working_days is not None:
            self.delta_working_days[diff.delta_working_days] += 1
        if changed and self.sample_size > 0:
            order = self.overall["cases"]
            # Later arrivals lose ties, so the sample does not depend on heap internals.
            key = (diff.referral is not None, abs(diff.delta_working_days or 0), -order)
            if len(self._top) < self.sample_size:
                heapq.heappush(self._top, (key, diff))
            elif key > self._top[0][0]:
                heapq.heapreplace(self._top, (key, diff))

    def fail(self, case_id: str, problem: str) -> None:
        self.failed += 1
        if len(self.failures) < 5:
            self.failures.append(f"{case_id}: {problem}")

    def to_json(self) -> dict[str, Any]:
        """The last line of ``lapor whatif --json``."""
        return {
            "kind": "summary",
            "workflow": self.model_name,
            "model_hash": self.model_hash,
            "until": self.until.isoformat(),
            **{key: self.overall[key] for key in _GROUP_KEYS},
            "skipped_other_workflow": dict(sorted(self.skipped_other_workflow.items())),
            "unreadable": self.unreadable,
            "failed": self.failed,
            "failures": list(self.failures),
            "per_agency": _groups(self.per_agency),
            "per_region": _groups(self.per_region),
            "per_rung": {
                rung_label(rung): {c: counts[c] for c in CHANGES if counts[c]}
                for rung, counts in sorted(self.per_rung.items())
            },
            "delta_working_days": {
                str(days): count for days, count in sorted(self.delta_working_days.items())
            },
        }


def _groups(groups: Mapping[str, Counter[str]]) -> dict[str, dict[str, int]]:
    return {
        name: {key: counts[key] for key in _GROUP_KEYS if counts[key]}
        for name, counts in sorted(groups.items())
    }


class WhatIf:
    """Compares recorded cases with a re-run under ``model`` up to ``until``, folding each into
    ``summary``. Only cases pinned to a model of the same workflow are compared; the others are
    skipped and counted, as are unreadable ones."""

    def __init__(self, model: Model, until: datetime, *, sample_size: int = 20) -> None:
        self.model = model
        self.until = until
        self.summary = WhatIfSummary(model.name, model.hash, until, sample_size)
        self._ladders = _Ladders()

    def run(self, histories: Iterable[CaseHistory]) -> Iterator[CaseDiff]:
        """Compare each case; yield the changed ones as they come."""
        for history in histories:
            diff = self.compare(history)
            if diff is not None and diff.changed:
                yield diff

    def compare(self, history: CaseHistory) -> CaseDiff | None:
        """The case's diff (also counted in ``summary``), or ``None`` when it was skipped."""
        old_model, stored = history.model, history.case
        if history.problem is not None or old_model is None or stored is None:
            self.summary.unreadable += 1
            return None
        if old_model.name != self.model.name:
            self.summary.skipped_other_workflow[old_model.name] += 1
            return None
        try:
            diff = self._diff(history, old_model, stored.agency, stored.region)
        except (LaporError, ValueError) as exc:  # e.g. a deadline past the new calendars
            self.summary.fail(history.case_id, str(exc))
            return None
        self.summary.add(diff)
        return diff

    def _diff(
        self, history: CaseHistory, old_model: Model, agency: str | None, region: str
    ) -> CaseDiff:
        records, until = history.records, self.until
        stored = history.case
        assert stored is not None
        old_records: Iterable[HistoryRecord] = records
        due = stored.next_due
        if not stored.closed and due is not None and wake_at(due) <= until:
            # The store has not recorded every lapse up to ``until`` (its timer loop is behind,
            # or ``until`` is later than the store's last record): the old model's own re-run
            # says what it would have recorded by then.
            old_records = list(_accepted_records(what_if(old_model, records, until)))
        decisions = what_if(self.model, records, until)
        old = _escalations(self._ladders.finals(old_model), old_records, until)
        new = _escalations(self._ladders.finals(self.model), _accepted_records(decisions), until)
        change = classify(old.first, new.first)
        delta = None
        if old.first is not None and new.first is not None:
            try:
                delta = working_days_between(self.model.calendar, old.first, new.first)
            except LaporError:
                delta = None  # an instant outside the calendars: the instants still tell
        return CaseDiff(
            history.case_id,
            agency,
            region,
            old,
            new,
            change,
            delta,
            _divergence(records, decisions),
        )
