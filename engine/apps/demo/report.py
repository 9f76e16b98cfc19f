"""The end-of-demo report: a few panels a person can take in at a glance."""

from __future__ import annotations

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from engine.apps.demo.driver import DemoStats

__all__ = ["render_report"]

_STAGES = (
    ("verification", "Verification", "3 hk"),
    ("first_follow_up", "First follow-up", "5 hk"),
    ("completion", "Completion", "5/14/60 hk"),
)
_OUTCOME_LABELS = {
    "resolved": "Selesai",
    "archived": "Diarsipkan",
    "referred_to_ombudsman": "Dieskalasi ke Ombudsman",
}


def _bar(fraction: float, width: int = 28, style: str = "green") -> Text:
    filled = round(max(0.0, min(1.0, fraction)) * width)
    return Text("█" * filled, style=style) + Text("░" * (width - filled), style="grey35")


def _rate_style(rate: float) -> str:
    return "green" if rate >= 0.9 else "yellow" if rate >= 0.75 else "red"


def render_report(
    stats: DemoStats, *, title: str, elapsed_s: float, console: Console | None = None
) -> None:
    console = console or Console()
    rate = stats.decisions / elapsed_s if elapsed_s > 0 else 0.0
    rejected = sum(stats.rejections.values())
    legend = Text("hk = hari kerja (working days on the Indonesian calendar)", style="dim")
    header = Text.assemble(
        (f"{stats.complaints:,} complaints", "bold"),
        f" · {stats.decisions:,} decisions in {elapsed_s:.1f} s ({rate:,.0f}/s)",
        f" · {rejected:,} late signals refused",
    )

    stages = Table.grid(padding=(0, 1))
    for _ in range(4):
        stages.add_column(no_wrap=True)
    for clock, label, deadline in _STAGES:
        on_time = stats.on_time_rate(clock)
        started = stats.clocks_started[clock]
        late = stats.clocks_lapsed[clock]
        stages.add_row(
            Text.assemble((label, "bold"), (f" {deadline}", "dim")),
            _bar(on_time, width=14, style=_rate_style(on_time)),
            Text(f"{on_time:6.1%}", style=_rate_style(on_time)),
            Text(f"{late:,} of {started:,} late", style="dim"),
        )

    ladder = Table.grid(padding=(0, 2))
    biggest = max(stats.escalations.values(), default=1)
    for (level, to), count in sorted(stats.escalations.items()):
        style = "red bold" if to == "ombudsman_ri" else "magenta"
        ladder.add_row(
            Text(f"level {level}", style="dim"),
            Text(to, style=style),
            _bar(count / biggest, width=24, style=style),
            Text(f"{count:,}"),
        )

    closed = sum(stats.outcomes.values())
    outcomes = Table.grid(padding=(0, 2))
    for outcome, count in stats.outcomes.most_common():
        share = count / closed if closed else 0.0
        style = "red bold" if outcome == "referred_to_ombudsman" else "cyan"
        outcomes.add_row(
            Text(_OUTCOME_LABELS.get(outcome, outcome), style=style),
            _bar(share, width=24, style=style),
            Text(f"{count:,}  ({share:.1%})"),
        )
    auto_closed = stats.clocks_lapsed["reporter_reply"]
    median = stats.median_days_to_close
    still_open = stats.complaints - closed
    outcomes.add_row(Text("auto-closed, no reply", style="dim"), Text(""), Text(f"{auto_closed:,}"))
    outcomes.add_row(Text("still open at the end", style="dim"), Text(""), Text(f"{still_open:,}"))
    outcomes.add_row(
        Text("median time to close", style="bold"),
        Text(""),
        Text("n/a" if median is None else f"{median:.1f} days"),
    )

    agencies = Table(box=None, header_style="bold", pad_edge=False)
    agencies.add_column("agency")
    agencies.add_column("cases", justify="right")
    agencies.add_column("missed completion", justify="right")
    agencies.add_column("to Ombudsman RI", justify="right")
    for agency, cases, late_share, referred in stats.worst_agencies():
        agencies.add_row(
            agency,
            f"{cases:,}",
            Text(f"{late_share:.0%}", style=_rate_style(1 - late_share)),
            f"{referred:,}",
        )

    console.print(
        Panel(
            Group(
                header,
                legend,
                Panel(stages, title="On time per stage", border_style="green"),
                Panel(ladder, title="Escalations per ladder level", border_style="magenta"),
                Panel(outcomes, title="Outcomes", border_style="cyan"),
                Panel(agencies, title="Worst agencies", border_style="red"),
            ),
            title=title,
            border_style="bold blue",
        )
    )
