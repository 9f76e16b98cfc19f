"""``lapor whatif --html``: the what-if summary as one self-contained HTML file.

No script, no font, no stylesheet or image from elsewhere: the charts are SVG drawn here, so the
report opens offline, in a mail attachment or an archive, and reads the same without JavaScript.
Every text that comes from data (agency codes, case ids, reasons) is escaped.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from html import escape

from engine.apps.audit.whatif import CHANGES, WhatIfSummary, referral_targets, rung_label
from engine.domain.model import Model

__all__ = ["render_html"]

_COLOURS = {
    "earlier": "#c0392b",
    "later": "#2471a3",
    "newly": "#e67e22",
    "no_longer": "#1e8449",
    "gained": "#8e44ad",
    "lost": "#17a589",
    "bar": "#566573",
}
_LABELS = {
    "earlier": "earlier",
    "later": "later",
    "newly": "newly escalates",
    "no_longer": "no longer escalates",
    "same": "same instant",
    "none": "neither escalates",
}
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 70em; color: #1c2833; }
h1 { font-size: 1.4em; } h2 { font-size: 1.1em; margin-top: 2em; }
table { border-collapse: collapse; margin: .5em 0; }
th, td { padding: .2em .7em; border-bottom: 1px solid #d5d8dc; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.note { color: #566573; font-size: .9em; }
svg text { font-size: 12px; fill: #1c2833; }
"""
_GROUP_COLUMNS = ("cases", "changed", "earlier", "later", "newly", "no_longer", "diverged")


def render_html(summary: WhatIfSummary, model: Model) -> str:
    """The whole report as one HTML document."""
    counts = summary.overall
    final = referral_targets(model)
    title = f"What if {model.name} {model.version} had decided the recorded cases"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f'<p class="note">Model {escape(model.hash[:12])}; both models compared up to '
        f"{escape(summary.until.isoformat())}. {counts['cases']:,} case(s) compared, "
        f"<strong>{counts['changed']:,} changed</strong>. Escalation instants are the moments "
        "deadlines lapsed; &Delta; is new minus old in working days (hari kerja).</p>",
        "<h2>Overall</h2>",
        _overall_table(summary, final),
        "<h2>Earlier and later escalations per agency</h2>",
        _stacked_bars(summary.per_agency, ("earlier", "later", "newly", "no_longer")),
        "<h2>Shift of the first escalation (working days)</h2>",
        _histogram(summary.delta_working_days),
        f"<h2>Referrals gained and lost per region ({escape(final)})</h2>",
        _stacked_bars(
            summary.per_region,
            ("referral_gained", "referral_lost"),
            colours={"referral_gained": "gained", "referral_lost": "lost"},
        ),
        "<h2>Per agency</h2>",
        _group_table(summary.per_agency, "agency"),
        "<h2>Per region</h2>",
        _group_table(summary.per_region, "region"),
        "<h2>Per ladder rung (first reached)</h2>",
        _rung_table(summary),
        "<h2>Most changed cases</h2>",
        _top_table(summary),
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def _overall_table(summary: WhatIfSummary, final: str) -> str:
    counts = summary.overall
    rows = [(f"escalation: {_LABELS[c]}", counts[c]) for c in CHANGES]
    rows += [
        (f"referral gained ({final})", counts["referral_gained"]),
        (f"referral lost ({final})", counts["referral_lost"]),
        ("inputs the new model refuses (diverges)", counts["diverged"]),
    ]
    rows += [
        (f"skipped: pinned to {n}", k) for n, k in sorted(summary.skipped_other_workflow.items())
    ]
    rows += [("skipped: unreadable", summary.unreadable), ("could not be re-run", summary.failed)]
    body = "".join(f"<tr><td>{escape(label)}</td><td>{value:,}</td></tr>" for label, value in rows)
    failures = "".join(f'<p class="note">{escape(f)}</p>' for f in summary.failures)
    return f"<table><tr><th></th><th>cases</th></tr>{body}</table>{failures}"


def _legend(keys: Sequence[str], colours: Mapping[str, str]) -> str:
    items = []
    x = 0
    for key in keys:
        label = _LABELS.get(key, key.replace("referral_", "referral "))
        items.append(
            f'<rect x="{x}" y="0" width="12" height="12" fill="{colours[key]}"/>'
            f'<text x="{x + 16}" y="11">{escape(label)}</text>'
        )
        x += 24 + 7 * len(label)
    return f'<svg width="{x}" height="16" role="img" aria-label="legend">{"".join(items)}</svg>'


def _stacked_bars(
    groups: Mapping[str, Counter[str]],
    keys: Sequence[str],
    *,
    colours: Mapping[str, str] | None = None,
) -> str:
    """One horizontal bar per group, its segments the counts of ``keys``; groups with none of
    them are left out."""
    palette = {k: _COLOURS[(colours or {}).get(k, k)] for k in keys}
    rows = sorted(
        ((name, [counts[k] for k in keys]) for name, counts in groups.items()),
        key=lambda row: (-sum(row[1]), row[0]),
    )
    rows = [row for row in rows if sum(row[1])]
    if not rows:
        return '<p class="note">None.</p>'
    widest = max(sum(values) for _, values in rows)
    label_w, bar_w, row_h = 180, 520, 20
    shapes = []
    for index, (name, values) in enumerate(rows):
        y = index * row_h
        shapes.append(f'<text x="0" y="{y + 14}">{escape(name)}</text>')
        x = float(label_w)
        for key, value in zip(keys, values, strict=True):
            width = bar_w * value / widest
            if value:
                shapes.append(
                    f'<rect x="{x:.1f}" y="{y + 3}" width="{width:.1f}" height="{row_h - 6}" '
                    f'fill="{palette[key]}"><title>{escape(name)}: {value:,} '
                    f"{escape(_LABELS.get(key, key))}</title></rect>"
                )
            x += width
        shapes.append(f'<text x="{x + 6:.1f}" y="{y + 14}">{sum(values):,}</text>')
    height = len(rows) * row_h
    chart = (
        f'<svg width="{label_w + bar_w + 80}" height="{height}" role="img" '
        f'aria-label="stacked bars">{"".join(shapes)}</svg>'
    )
    return f"<div>{_legend(keys, palette)}</div><div>{chart}</div>"


def _histogram(deltas: Counter[int]) -> str:
    if not deltas:
        return '<p class="note">No case escalates under both models.</p>'
    low, high = min(min(deltas), 0), max(max(deltas), 0)
    span = high - low + 1
    tallest = max(deltas.values())
    bar_w = max(6, min(40, 640 // span))
    plot_h, base = 200, 220
    shapes = [f'<line x1="0" y1="{base}" x2="{span * bar_w}" y2="{base}" stroke="#566573"/>']
    for offset, days in enumerate(range(low, high + 1)):
        count = deltas.get(days, 0)
        x = offset * bar_w
        height = plot_h * count / tallest
        colour = _COLOURS["earlier" if days < 0 else "later" if days > 0 else "bar"]
        if count:
            shapes.append(
                f'<rect x="{x + 1}" y="{base - height:.1f}" width="{bar_w - 2}" '
                f'height="{height:.1f}" fill="{colour}"><title>{days:+d} hk: {count:,} '
                "case(s)</title></rect>"
            )
        if days == 0 or span <= 25 or days % 5 == 0:
            shapes.append(
                f'<text x="{x + bar_w / 2:.1f}" y="{base + 15}" text-anchor="middle">'
                f"{days:+d}</text>"
            )
    shapes.append(f'<text x="0" y="12">{tallest:,} case(s)</text>')
    return (
        f'<svg width="{span * bar_w + 10}" height="{base + 25}" role="img" '
        f'aria-label="histogram of the shift in working days">{"".join(shapes)}</svg>'
        '<p class="note">Left of zero: the new model escalates earlier; right: later.</p>'
    )


def _group_table(groups: Mapping[str, Counter[str]], what: str) -> str:
    head = "".join(f"<th>{escape(c.replace('_', ' '))}</th>" for c in _GROUP_COLUMNS)
    rows = []
    for name, counts in sorted(groups.items(), key=lambda item: (-item[1]["changed"], item[0])):
        cells = "".join(f"<td>{counts[c]:,}</td>" for c in _GROUP_COLUMNS)
        referrals = f"+{counts['referral_gained']:,} / &minus;{counts['referral_lost']:,}"
        rows.append(f"<tr><td>{escape(name)}</td>{cells}<td>{referrals}</td></tr>")
    return (
        f"<table><tr><th>{escape(what)}</th>{head}<th>referral +/&minus;</th></tr>"
        f"{''.join(rows)}</table>"
    )


def _rung_table(summary: WhatIfSummary) -> str:
    head = "".join(f"<th>{escape(_LABELS[c])}</th>" for c in CHANGES)
    rows = "".join(
        f"<tr><td>{escape(rung_label(rung))}</td>"
        + "".join(f"<td>{counts[c]:,}</td>" for c in CHANGES)
        + "</tr>"
        for rung, counts in sorted(summary.per_rung.items())
    )
    return f"<table><tr><th>rung</th>{head}</tr>{rows}</table>"


def _top_table(summary: WhatIfSummary) -> str:
    rows = []
    for diff in summary.top:
        old, new, delta = diff.old.first, diff.new.first, diff.delta_working_days
        divergence = diff.divergence
        cells = (
            diff.case_id,
            diff.agency or "",
            _LABELS[diff.change],
            "" if old is None else old.isoformat(),
            "" if new is None else new.isoformat(),
            "" if delta is None else f"{delta:+d}",
            diff.referral or "",
            ""
            if divergence is None
            else f"record {divergence.record}: {divergence.code}: {divergence.reason}",
        )
        rows.append("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in cells) + "</tr>")
    head = (
        "<tr><th>case</th><th>agency</th><th>change</th><th>old first escalation</th>"
        "<th>new first escalation</th><th>&Delta; hk</th><th>referral</th>"
        "<th>diverges at</th></tr>"
    )
    return f"<table>{head}{''.join(rows)}</table>" if rows else '<p class="note">None.</p>'
