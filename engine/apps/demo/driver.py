"""``lapor demo``: a national-scale synthetic run of the SP4N-LAPOR! workflow on a virtual clock.

Complaints arrive over eight weeks from 2 Mar 2026 (so the Nyepi/Idul Fitri break, Waisak, Idul
Adha and Hari Lahir Pancasila all fall inside), their parties act on a script, and the runtime fires
every SLA clock on the way. Signals are quantised to 15-minute slots: at each slot the runtime first
fires every timer due up to it, then applies that slot's signals as one group-committed batch. The
statistics are folded from the decisions as they stream past, so memory stays flat however many
complaints run.
"""

from __future__ import annotations

import heapq
import statistics
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from engine.apps.demo.population import Complaint, ScriptedSignal
from engine.domain.events import Actor, Closed, Escalated, Lapsed, Routed, Signal
from engine.domain.machine import Decision
from engine.runtime.contract import Command, Runtime, SignalCommand, StartCommand

__all__ = ["DemoStats", "run_demo"]

SLOT = timedelta(minutes=15)
DEMO_START = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
DEMO_END = datetime(2026, 9, 30, 0, 0, tzinfo=UTC)


@dataclass
class DemoStats:
    """Folded from each decision as it is made: flat memory, plus one float and a byte per case.

    ``agency_late`` counts cases, not lapses: a completion clock restarted for the same agency
    (a dispute reopens it) and lapsing again is one late case, so the share stays a share.
    """

    complaints: int
    decisions: int = 0
    rejections: Counter[str] = field(default_factory=Counter)
    clocks_started: Counter[str] = field(default_factory=Counter)
    clocks_lapsed: Counter[str] = field(default_factory=Counter)
    escalations: Counter[tuple[int, str]] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    channels: Counter[str] = field(default_factory=Counter)
    zones: Counter[str] = field(default_factory=Counter)
    agency_cases: Counter[str] = field(default_factory=Counter)
    agency_late: Counter[str] = field(default_factory=Counter)
    agency_referred: Counter[str] = field(default_factory=Counter)
    opened: array[float] = field(default_factory=lambda: array("d"))
    close_days: array[float] = field(default_factory=lambda: array("d"))
    late_counted: bytearray = field(default_factory=bytearray)  # per case, for its agency

    def __post_init__(self) -> None:
        self.opened = array("d", [0.0]) * (self.complaints + 1)
        self.late_counted = bytearray(self.complaints + 1)

    def observe(self, decision: Decision) -> None:
        if decision.rejection is not None:
            self.rejections[decision.rejection.code] += 1
            return
        record, case = decision.record, decision.case
        if record is None or case is None:
            return
        self.decisions += 1
        index = _case_index(case.id)
        if record.seq == 1:
            self.opened[index] = case.opened_at.timestamp()
            self.channels[str(case.data.get("channel"))] += 1
        for effect in decision.effects:
            kind = type(effect).__name__
            if kind == "ClockStarted":
                self.clocks_started[effect.clock] += 1  # type: ignore[union-attr]
            elif isinstance(effect, Lapsed):
                if effect.level == 0:
                    self.clocks_lapsed[effect.clock] += 1
                    if (
                        effect.clock == "completion"
                        and case.agency is not None
                        and not self.late_counted[index]
                    ):
                        self.agency_late[case.agency] += 1
                        self.late_counted[index] = 1
            elif isinstance(effect, Escalated):
                self.escalations[(effect.level, effect.to)] += 1
            elif isinstance(effect, Routed):
                self.agency_cases[effect.agency] += 1
                self.late_counted[index] = 0  # a new agency: its own deadline to meet
            elif isinstance(effect, Closed):
                self.outcomes[effect.outcome] += 1
                if effect.outcome == "referred_to_ombudsman" and case.agency is not None:
                    self.agency_referred[case.agency] += 1
                closed_at = datetime.fromisoformat(record.at).timestamp()
                self.close_days.append((closed_at - self.opened[index]) / 86400)

    @classmethod
    def merged(cls, parts: Sequence[DemoStats]) -> DemoStats:
        """One fold from the folds of disjoint sets of cases (the demo's shard processes)."""
        total = cls(parts[0].complaints)
        for part in parts:
            total.decisions += part.decisions
            for name in _COUNTERS:
                getattr(total, name).update(getattr(part, name))
            total.close_days.extend(part.close_days)
            for index, opened in enumerate(part.opened):
                if opened:
                    total.opened[index] = opened
        return total

    def on_time_rate(self, clock: str) -> float:
        started = self.clocks_started[clock]
        return 1.0 - self.clocks_lapsed[clock] / started if started else 1.0

    @property
    def median_days_to_close(self) -> float | None:
        return statistics.median(self.close_days) if self.close_days else None

    def worst_agencies(self, count: int = 5) -> list[tuple[str, int, float, int]]:
        """(agency, cases disposed to it, share that missed the completion deadline, referrals)."""
        rows = [
            (agency, cases, self.agency_late[agency] / cases, self.agency_referred[agency])
            for agency, cases in self.agency_cases.items()
            if cases
        ]
        return sorted(rows, key=lambda row: (row[2], row[3]), reverse=True)[:count]


_COUNTERS = (  # every Counter of DemoStats: tests/runtime/test_demo.py merges them all
    "rejections",
    "clocks_started",
    "clocks_lapsed",
    "escalations",
    "outcomes",
    "channels",
    "zones",
    "agency_cases",
    "agency_late",
    "agency_referred",
)


def _case_index(case_id: str) -> int:
    return int(case_id.rsplit("-", 1)[1])


def _slot(moment: datetime) -> datetime:
    """The first slot boundary at or after ``moment`` (a signal never arrives before it is sent)."""
    seconds = moment.timestamp()
    step = SLOT.total_seconds()
    return datetime.fromtimestamp(-(-seconds // step) * step, tz=UTC)


def run_demo(
    runtime: Runtime,
    population: Iterable[Complaint],
    *,
    workflow: str = "sp4n-lapor",
    until: datetime = DEMO_END,
    progress: Callable[[datetime], None] | None = None,
    batch_limit: int = 2000,
) -> None:
    """Drive ``population`` through ``runtime`` up to ``until``.

    Statistics are not gathered here: the runtime reports every decision it makes, timers
    included, to its observer (a ``DemoStats.observe``), exactly once.
    """
    # The queue holds (slot, tiebreak, kind, payload): a start, or the next signal of one script.
    queue: list[tuple[datetime, int, int, Any]] = []
    tiebreak = 0
    arrivals = iter(population)
    pending_arrival: Complaint | None = next(arrivals, None)

    def push(slot: datetime, kind: int, payload: Any) -> None:
        nonlocal tiebreak
        tiebreak += 1
        heapq.heappush(queue, (slot, tiebreak, kind, payload))

    while True:
        # Arrivals are generated lazily, one slot ahead, so a million complaints never sit in RAM.
        while pending_arrival is not None and (
            not queue or _slot(pending_arrival.at) <= queue[0][0]
        ):
            push(_slot(pending_arrival.at), 0, pending_arrival)
            pending_arrival = next(arrivals, None)
        if not queue or queue[0][0] > until:
            break
        slot = queue[0][0]
        starts: list[Complaint] = []
        signals: list[tuple[str, Signal, tuple[ScriptedSignal, ...], int, str | None]] = []
        while queue and queue[0][0] == slot and len(starts) + len(signals) < batch_limit:
            _, _, kind, payload = heapq.heappop(queue)
            if kind == 0:
                starts.append(payload)
            else:
                case_id, script, position, token = payload
                step = script[position]
                signal = Signal(step.name, Actor.parse(step.actor), step.data)
                signals.append((case_id, signal, script, position, token))
        # One call per slot, starts before signals (no signal is for a case the slot starts):
        # one read of the cases and one write of the rows instead of two of each.
        commands: list[Command] = [
            StartCommand(workflow, c.case_id, c.data, c.reporter) for c in starts
        ]
        # The reporter keeps the token its start handed out, for as long as it has more to say.
        commands += [SignalCommand(c, s, token) for c, s, _, _, token in signals]
        outcomes = runtime.execute(commands, slot)
        for complaint, started in zip(starts, outcomes, strict=False):
            if complaint.script:
                payload = (complaint.case_id, complaint.script, 0, started.reporter_token)
                push(_slot(complaint.script[0].at), 1, payload)
        for case_id, _, script, position, token in signals:
            if position + 1 < len(script):
                nxt = max(_slot(script[position + 1].at), slot + SLOT)
                push(nxt, 1, (case_id, script, position + 1, token))
        if progress is not None:
            progress(slot)
    runtime.advance_to(until)
    if progress is not None:
        progress(until)
