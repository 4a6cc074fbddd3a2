"""The HTML report: one self-contained page of inline SVG charts (``report --format html``).

``render_html(report)`` is pure and returns the page as text.  The page loads
nothing: no script, no font, no image from anywhere, and its Content-Security-Policy
(``default-src 'none'``) makes the browser refuse any request it might still make.
Every chart is SVG drawn here; a point's exact figures are in its ``<title>``
(the browser shows it on hover).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape

from .calendar import iso_utc
from .report import NO_VALUE, SHARE_BINS, WEEK, GroupStats, Report, Series
from .values import format_duration

PALETTE = ("#2563eb", "#ea580c", "#16a34a", "#9333ea", "#dc2626", "#0891b2", "#ca8a04", "#db2777", "#4b5563")
METRIC_COLOURS = {"first_response": "#2563eb", "workaround": "#ca8a04", "resolution": "#dc2626"}
CUSTOM_COLOURS = ("#7c3aed", "#0d9488", "#db2777", "#65a30d", "#ea580c", "#475569")  # custom metrics, in turn
MET, BREACHED = "#16a34a", "#dc2626"
LABELS = {"first_response": "first response", "workaround": "workaround", "resolution": "resolution"}


def _label(metric: str) -> str:
    return LABELS.get(metric, metric.replace("_", " "))


def _colour(metric: str, metrics: tuple[str, ...]) -> str:
    if metric in METRIC_COLOURS:
        return METRIC_COLOURS[metric]
    custom = [m for m in metrics if m not in METRIC_COLOURS]
    return CUSTOM_COLOURS[custom.index(metric) % len(CUSTOM_COLOURS) if metric in custom else 0]

CSS = """
body{font-family:"DejaVu Sans","Liberation Sans",Arial,sans-serif;margin:24px 32px;color:#111827;background:#fff}
h1{font-size:22px;margin:0 0 4px} \
h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #e5e7eb;padding-bottom:4px}
h3{font-size:14px;margin:12px 0 4px;color:#374151}
p.meta{color:#4b5563;margin:0 0 12px;font-size:13px}
.cards{display:flex;gap:12px;flex-wrap:wrap}
.card{border:1px solid #e5e7eb;border-radius:6px;padding:8px 14px;min-width:110px}
.card b{display:block;font-size:20px} .card span{font-size:12px;color:#4b5563}
.row{display:flex;gap:18px;flex-wrap:wrap;align-items:flex-start}
table{border-collapse:collapse;font-size:12px} th,td{border-bottom:1px solid #e5e7eb;padding:3px 8px;text-align:right}
th:first-child,td:first-child,td.l,th.l{text-align:left} th{background:#f9fafb}
svg text{font-size:11px;fill:#374151} .none{color:#6b7280;font-size:13px}
"""


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _dur(seconds: int | None) -> str:
    return "-" if seconds is None else format_duration(seconds)


def _week_label(week: int) -> str:
    return datetime.fromtimestamp(week, UTC).strftime("%d %b")


def _weeks(series: Series) -> list[int]:
    """Every week from the first to the last that has data, gaps included."""
    seen = set(series.breaches) | set(series.csat)
    for cells in series.compliance.values():
        seen |= set(cells)
    if not seen:
        return []
    return list(range(min(seen), max(seen) + WEEK, WEEK))


# -- SVG pieces -----------------------------------------------------------------------------

W, H, LEFT, RIGHT, TOP, BOTTOM = 560, 220, 44, 12, 12, 34


def _frame(weeks: Sequence[int], y_max: float, y_ticks: Sequence[float], y_text: str) -> list[str]:
    """Axes, grid lines and week labels of a chart."""
    parts = [f'<line x1="{LEFT}" y1="{H - BOTTOM}" x2="{W - RIGHT}" y2="{H - BOTTOM}" stroke="#9ca3af"/>']
    for tick in y_ticks:
        y = _y(tick, y_max)
        parts.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{W - RIGHT}" y2="{y:.1f}" stroke="#f3f4f6"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{escape(y_text.format(tick))}</text>')
    step = max(1, -(-len(weeks) // 10))
    for i, week in enumerate(weeks):
        if i % step == 0:
            parts.append(f'<text x="{_x(i, len(weeks)):.1f}" y="{H - BOTTOM + 16}" text-anchor="middle">'
                         f'{_week_label(week)}</text>')
    return parts


def _x(i: int, n: int) -> float:
    width = W - LEFT - RIGHT
    return LEFT + width * (i + 0.5) / max(n, 1)


def _y(value: float, y_max: float) -> float:
    height = H - TOP - BOTTOM
    return TOP + height * (1 - (value / y_max if y_max else 0))


def _svg(parts: Sequence[str], label: str, width: int = W, height: int = H) -> str:
    body = "".join(parts)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{escape(label)}" '
            f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">{body}</svg>')


def _legend(names: Sequence[tuple[str, str]]) -> str:
    items = "".join(
        f'<span style="margin-right:12px"><span style="display:inline-block;width:10px;height:10px;'
        f'background:{colour};margin-right:4px"></span>{escape(name)}</span>'
        for name, colour in names
    )
    return f'<div style="font-size:12px;margin:2px 0 6px">{items}</div>'


def compliance_chart(series: Series, weeks: list[int], metric: str) -> str:
    """Weekly compliance of one metric, a line per level (issues by creation week)."""
    parts = _frame(weeks, 1.0, (0, 0.25, 0.5, 0.75, 1.0), "{:.0%}")
    legend = []
    for n, level in enumerate(series.levels):
        cells = series.compliance.get((level, metric))
        if not cells:
            continue
        colour = PALETTE[n % len(PALETTE)]
        legend.append((level, colour))
        points = []
        for i, week in enumerate(weeks):
            met, breached = cells.get(week, (0, 0))
            if met + breached == 0:
                continue
            share = met / (met + breached)
            x, y = _x(i, len(weeks)), _y(share, 1.0)
            points.append(f"{x:.1f},{y:.1f}")
            parts.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}"><title>{escape(level)}, week of '
                f'{_week_label(week)}: {share:.0%} ({met} met, {breached} breached)</title></circle>'
            )
        if len(points) > 1:
            parts.insert(0, f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{" ".join(points)}"/>')
    if not legend:
        return f'<p class="none">No {_label(metric)} clock has stopped or breached yet.</p>'
    return _legend(legend) + _svg(parts, f"compliance of {_label(metric)} per level and week")


def breaches_chart(series: Series, weeks: list[int]) -> str:
    """Breaches per week (the week each breach happened), stacked by metric."""
    totals = [sum(series.breaches.get(w, {}).values()) for w in weeks]
    top = max(totals, default=0)
    if top == 0:
        return '<p class="none">No breach in the period.</p>'
    y_max = float(top)
    parts = _frame(weeks, y_max, sorted({0, top // 2, top}), "{:.0f}")
    bar = (W - LEFT - RIGHT) / max(len(weeks), 1) * 0.7
    for i, week in enumerate(weeks):
        base = 0
        for metric in series.metrics:
            count = series.breaches.get(week, {}).get(metric, 0)
            if not count:
                continue
            y0, y1 = _y(base, y_max), _y(base + count, y_max)
            parts.append(
                f'<rect x="{_x(i, len(weeks)) - bar / 2:.1f}" y="{y1:.1f}" width="{bar:.1f}" height="{y0 - y1:.1f}" '
                f'fill="{_colour(metric, series.metrics)}"><title>week of {_week_label(week)}: '
                f'{count} {_label(metric)} breaches</title></rect>'
            )
            base += count
    legend = [(_label(m), _colour(m, series.metrics)) for m in series.metrics]
    return _legend(legend) + _svg(parts, "breaches per week")


def _bin_label(i: int) -> str:
    if i == 0:
        return f"up to {SHARE_BINS[0]}%"
    if i == len(SHARE_BINS):
        return f"over {SHARE_BINS[-1]}%"
    return f"{SHARE_BINS[i - 1]}-{SHARE_BINS[i]}%"


def distribution_chart(series: Series, metric: str, level: str) -> str:
    """Stopped clocks of one metric and level, by elapsed time as a share of the target."""
    counts = series.shares.get((metric, level))
    if not counts or not sum(counts):
        return ""
    width, height, left, bottom, top_pad = 340, 170, 14, 30, 28
    top = max(counts)
    slot = (width - left - 14) / len(counts)
    base = height - bottom
    parts = [f'<line x1="{left}" y1="{base}" x2="{width - 14}" y2="{base}" stroke="#9ca3af"/>']
    met_bins = SHARE_BINS.index(100) + 1
    for i, count in enumerate(counts):
        h = (base - top_pad) * count / top
        x = left + i * slot
        colour = MET if i < met_bins else BREACHED
        parts.append(
            f'<rect x="{x + 2:.1f}" y="{base - h:.1f}" width="{slot - 4:.1f}" height="{h:.1f}" fill="{colour}">'
            f"<title>{_bin_label(i)} of the target: {count}</title></rect>"
        )
        if count:
            parts.append(f'<text x="{x + slot / 2:.1f}" y="{base - h - 3:.1f}" text-anchor="middle">{count}</text>')
    for i, edge in enumerate((0, *SHARE_BINS)):  # the bounds between the bars
        parts.append(f'<text x="{left + i * slot:.1f}" y="{base + 13}" text-anchor="middle">{edge}</text>')
    parts.append(f'<text x="{width - 14:.1f}" y="{base + 26}" text-anchor="end">% of the target</text>')
    target_x = left + met_bins * slot
    parts.append(f'<line x1="{target_x:.1f}" y1="4" x2="{target_x:.1f}" y2="{base}" '
                 'stroke="#111827" stroke-dasharray="4 3"/>')
    parts.append(f'<text x="{target_x + 4:.1f}" y="12">target</text>')
    targets = ", ".join(format_duration(t) for t in series.targets.get((metric, level), ()))
    title = f"{escape(level)}: target {escape(targets)}, {sum(counts)} stopped"
    return f'<div><h3>{title}</h3>{_svg(parts, f"{_label(metric)} of {level} against the target", width, height)}</div>'


def csat_chart(series: Series, weeks: list[int]) -> str:
    """Average CSAT per week of creation, with the number of answers."""
    if not series.csat:
        return '<p class="none">No customer satisfaction answer in the period.</p>'
    averages = {w: s / n for w, (n, s) in series.csat.items() if n}
    y_max = max(5.0, max(averages.values()))
    parts = _frame(weeks, y_max, [0, y_max / 2, y_max], "{:.1f}")
    bar = (W - LEFT - RIGHT) / max(len(weeks), 1) * 0.6
    for i, week in enumerate(weeks):
        if week not in averages:
            continue
        value, answers = averages[week], series.csat[week][0]
        y = _y(value, y_max)
        parts.append(
            f'<rect x="{_x(i, len(weeks)) - bar / 2:.1f}" y="{y:.1f}" width="{bar:.1f}" '
            f'height="{H - BOTTOM - y:.1f}" fill="#0891b2">'
            f'<title>week of {_week_label(week)}: average {value:.2f} from {answers} answers</title></rect>'
        )
        parts.append(f'<text x="{_x(i, len(weeks)):.1f}" y="{y - 3:.1f}" text-anchor="middle">{value:.1f}</text>')
    return _svg(parts, "customer satisfaction per week")


# -- tables -------------------------------------------------------------------------------------


def at_risk_table(series: Series) -> str:
    if not series.at_risk:
        return '<p class="none">No running clock is at risk.</p>'
    rows = "".join(
        f'<tr><td class="l">{escape(r.key)}</td><td class="l">{escape(r.title)}</td>'
        f'<td class="l">{escape(r.level)}</td>'
        f'<td class="l">{LABELS.get(r.metric, r.metric)}</td><td>{_dur(r.elapsed_s)}</td><td>{_dur(r.target_s)}</td>'
        f'<td>{_dur(r.target_s - r.elapsed_s)}</td><td>{iso_utc(r.due_at) or "-"}</td></tr>'
        for r in series.at_risk
    )
    more = series.at_risk_total - len(series.at_risk)
    note = f'<p class="none">and {more} more, due later.</p>' if more > 0 else ""
    return (
        '<table><tr><th>issue</th><th class="l">title</th><th class="l">level</th><th class="l">metric</th>'
        '<th>elapsed</th><th>target</th>'
        f"<th>left</th><th>due (UTC)</th></tr>{rows}</table>{note}"
    )


def groups_table(report: Report) -> str:
    metrics = list(report.total.metrics)
    head = "".join(f"<th>{LABELS.get(m, m)} compliance</th><th>met / breached</th><th>median</th><th>p90</th>"
                   for m in metrics)

    def row(name: str, g: GroupStats, bold: bool = False) -> str:
        cells = "".join(
            f"<td>{_pct(s.compliance)}</td><td>{s.met} / {s.breached}</td>"
            f"<td>{_dur(s.median_elapsed_s)}</td><td>{_dur(s.p90_elapsed_s)}</td>"
            for s in g.metrics.values()
        )
        csat = "-" if g.csat.average is None else f"{g.csat.average:.2f} ({g.csat.answers})"
        tag = "th" if bold else "td"
        return (f'<tr><{tag} class="l">{escape(name)}</{tag}><td>{g.opened}</td><td>{g.solved}</td>'
                f"<td>{g.at_risk_open}</td>{cells}<td>{csat}</td></tr>")

    rows = "".join(row(name, g) for name, g in report.groups.items()) + row("total", report.total, bold=True)
    return (f"<table><tr><th>{escape(report.group_by)}</th><th>opened</th><th>solved</th><th>at risk</th>{head}"
            f"<th>CSAT</th></tr>{rows}</table>")


def _cards(report: Report) -> str:
    t = report.total
    cards = [(str(t.opened), "opened"), (str(t.solved), "solved"), (str(t.at_risk_open), "clocks at risk")]
    cards += [(_pct(m.compliance), f"{LABELS.get(name, name)} on time") for name, m in t.metrics.items()]
    cards.append(("-" if t.csat.average is None else f"{t.csat.average:.2f}", f"CSAT ({t.csat.answers} answers)"))
    return ('<div class="cards">'
            + "".join(f'<div class="card"><b>{escape(v)}</b><span>{escape(k)}</span></div>' for v, k in cards)
            + "</div>")


def render_html(report: Report) -> str:
    """The whole page.  ``report.series`` must be set (``ReportBuilder(series=True)``)."""
    series = report.series
    if series is None:
        raise ValueError("the HTML report needs the series: build the report with series=True")
    weeks = _weeks(series)
    since = iso_utc(report.period.since) or "the beginning"
    until = iso_utc(report.period.until) or "now"
    sections = [
        f"<h1>SLA report: {escape(report.policy)}</h1>",
        f'<p class="meta">Issues created from {since} to {until} (excluded); clocks as of {iso_utc(report.now)}. '
        f"Weeks start on Monday, 00:00 UTC.</p>",
        _cards(report),
        "<h2>Compliance per level over time</h2>",
        '<p class="meta">Met / (met + breached), issues by the week they were created.</p>',
        '<div class="row">' + "".join(
            f"<div><h3>{_label(m)}</h3>{compliance_chart(series, weeks, m)}</div>" for m in series.metrics
        ) + "</div>",
        "<h2>Breaches per week</h2>",
        '<p class="meta">Each breach in the week its target was passed.</p>',
        breaches_chart(series, weeks),
        "<h2>Time to first response and to resolution against the targets</h2>",
        '<p class="meta">Stopped clocks by elapsed working time as a share of their target: '
        'green met, red breached.</p>',
    ]
    for metric in ("first_response", "resolution"):
        if metric not in series.metrics:
            continue
        charts = "".join(distribution_chart(series, metric, level) for level in series.levels)
        sections.append(f"<h3>{_label(metric)}</h3>"
                        + (f'<div class="row">{charts}</div>' if charts else '<p class="none">No stopped clock.</p>'))
    sections += [
        "<h2>Customer satisfaction over time</h2>",
        '<p class="meta">Average score of the solved issues that have an answer, by the week they were created.</p>',
        csat_chart(series, weeks),
        f"<h2>Issues at risk now ({series.at_risk_total})</h2>",
        at_risk_table(series),
        f"<h2>By {escape(report.group_by)}</h2>",
        groups_table(report),
    ]
    if report.unmapped_csat:
        values = ", ".join(f"{escape(v)} ({n})" for v, n in report.unmapped_csat.items())
        sections.append(f'<p class="none">CSAT values with no number (add them to report.csat_values): {values}</p>')
    csp = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="data:,">'
        f"<title>SLA report: {escape(report.policy)}</title><style>{CSS}</style></head>\n<body>\n"
        + "\n".join(sections)
        + f'\n<p class="meta">Generated by sla-sync. Groups without a value are shown as {escape(NO_VALUE)}.</p>'
        '\n</body></html>\n'
    )
