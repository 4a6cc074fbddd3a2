"""How plans, reports and comparisons look: Rich tables on a terminal, JSON for
machines.  Pure rendering of what the core computed; the commands choose where it
goes.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from typing import TYPE_CHECKING

from ..calendar import iso_utc
from ..compare import Comparison
from ..html_report import render_html
from ..plan import describe_change
from ..report import TOTAL, Report, report_to_json, report_to_rows
from ..values import format_duration
from .app import open_output, out

if TYPE_CHECKING:
    from rich.console import Console

    from ..sync import PassResult

# rich is imported by the functions that draw tables: it is slow to import, and the
# commands that print no table (`evaluate`, `export`, JSON output) never need it.

__all__ = ["compare_tables", "print_plan", "text_console", "write_report"]


def print_plan(result: PassResult, fmt: str) -> None:
    """The changes per issue: a table, or JSON for machines."""
    if fmt == "json":
        doc = {
            "policy": result.policy,
            "now": iso_utc(result.now),
            "fetched": result.fetched,
            "issues": [
                {
                    "key": o.key,
                    "level": o.plan.level,
                    "changes": [
                        {k: v for k, v in {"kind": c.kind, "value": c.value, "values": list(c.values) or None,
                                           "private": c.private if c.kind == "comment" else None,
                                           "step": c.step}.items() if v is not None}
                        for c in o.plan.changes
                    ],
                    "kept": list(o.plan.kept),
                    "messages": [{"step": n.step, "channel": n.channel} for n in o.plan.notices],
                    "marked": list(o.plan.marked),
                    **({"backlog_steps": o.plan.backlog} if o.plan.backlog else {}),
                    "error": o.error,
                }
                for o in result.outcomes if o.plan.changes or o.plan.kept or o.error
            ],
            "messages_waiting": [{"key": n.key, "step": n.step, "channel": n.channel} for n in result.waiting],
            "messages_sent": len(result.sent),
            "next_change": None if result.upcoming is None else {
                "at": iso_utc(result.upcoming.at), "key": result.upcoming.key, "why": result.upcoming.why},
        }
        out(json.dumps(doc, indent=2))
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    table = Table(title=f"{result.policy}: {len(result.changed)} of {result.fetched} issues need changes",
                  title_justify="left")
    table.add_column("issue")
    table.add_column("level")
    table.add_column("changes")
    for o in result.outcomes:
        lines = [describe_change(c) for c in o.plan.changes] + [f"kept: {k}" for k in o.plan.kept]
        lines += [f"message to {n.channel} (step {n.step})" for n in o.plan.notices]
        lines += [f"step {n} marked as fired without its actions (backlog_steps: {o.plan.backlog}: "
                  f"{_why_marked(o.plan.backlog)})" for n in o.plan.marked]
        if o.error:
            lines.append(f"[red]error: {escape(o.error)}[/red]")
        if lines:
            table.add_row(o.key, o.plan.level, "\n".join(escape(x) if not x.startswith("[red]") else x for x in lines))
    if result.changed or result.kept or result.errors:
        console.print(table)
    else:
        console.print(f"{result.policy}: nothing to change in {result.fetched} issues")
    if result.waiting:
        why = ("outside the working time of notify.quiet_outside: the first pass inside it sends them"
               if result.quiet else "the next pass sends them")
        console.print(f"{len(result.waiting)} messages waiting ({why})")


def _why_marked(mode: str | None) -> str:
    if mode == "mark":
        return "several steps were due at once, or the issue is being adopted; recorded, not acted on"
    return "a later step was due at the same time and acted instead"


def text_console(output: str) -> tuple[Console, io.StringIO | None]:
    """A console for a table: the terminal itself, or a buffer for a file."""
    from rich.console import Console

    if output == "-":  # a pipe gets wide lines rather than wrapped cells
        return (Console() if sys.stdout.isatty() else Console(width=200)), None
    buffer = io.StringIO()
    return Console(file=buffer, width=200, color_system=None), buffer


def _report_tables(report: Report, console: Console) -> None:
    from rich.markup import escape
    from rich.table import Table

    since = iso_utc(report.period.since) or "the beginning"
    until = iso_utc(report.period.until) or "any time"
    console.print(f"[bold]{escape(report.policy)}[/bold]: issues created from {since} to {until} (excluded), "
                  f"clocks as of {iso_utc(report.now)}")
    named = [*report.groups.items(), (TOTAL, report.total)]
    summary = Table(title="issues", title_justify="left")
    for column in (report.group_by, "opened", "solved", "at risk", "CSAT answers", "CSAT average"):
        summary.add_column(column, justify="left" if column == report.group_by else "right")
    for name, g in named:
        average = "-" if g.csat.average is None else f"{g.csat.average:.2f}"
        summary.add_row(escape(name), str(g.opened), str(g.solved), str(g.at_risk_open), str(g.csat.answers), average)
    console.print(summary)
    for metric in report.total.metrics:
        table = Table(title=metric, title_justify="left")
        for column in (report.group_by, "met", "breached", "running", "paused", "compliance", "median", "p90"):
            table.add_column(column, justify="left" if column == report.group_by else "right")
        for name, g in named:
            m = g.metrics[metric]
            table.add_row(
                escape(name), str(m.met), str(m.breached), str(m.running), str(m.paused),
                "-" if m.compliance is None else f"{m.compliance * 100:.1f}%",
                "-" if m.median_elapsed_s is None else format_duration(m.median_elapsed_s),
                "-" if m.p90_elapsed_s is None else format_duration(m.p90_elapsed_s),
            )
        console.print(table)


def write_report(report: Report, fmt: str, output: str) -> None:
    if fmt == "table":
        console, buffer = text_console(output)
        _report_tables(report, console)
        if buffer is not None:
            with open_output(output) as out:
                out.write(buffer.getvalue().encode())
        return
    if fmt == "json":
        data = json.dumps(report_to_json(report), indent=2) + "\n"
    elif fmt == "csv":
        text = io.StringIO()
        csv.writer(text, lineterminator="\n").writerows(report_to_rows(report))
        data = text.getvalue()
    else:
        data = render_html(report)
    with open_output(output) as out:
        out.write(data.encode())

def _share_text(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def compare_tables(c: Comparison, console: Console, limit: int) -> None:
    from rich.markup import escape
    from rich.table import Table

    console.print(f"{c.issues} issues, clocks as of {iso_utc(c.now)}: [bold]{escape(c.old_policy)}[/bold] (old) "
                  f"vs [bold]{escape(c.new_policy)}[/bold] (new)")
    table = Table(title="compliance and breaches per level and metric", title_justify="left")
    for column in ("level", "metric", "old compliance", "new compliance", "change",
                   "old breached", "new breached", "change"):
        table.add_column(column, justify="left" if column in ("level", "metric") else "right")
    for r in c.rows:
        change = "-" if r.compliance_change is None else f"{r.compliance_change * 100:+.1f} pp"
        table.add_row(escape(r.level), r.metric, _share_text(r.old.compliance), _share_text(r.new.compliance), change,
                      str(r.old.breached), str(r.new.breached), f"{r.breached_change:+d}")
    console.print(table)
    if not c.flips:
        console.print("no issue changes outcome")
        return
    verb = "outcome flips" if len(c.flips) == 1 else "outcomes flip"
    flips = Table(title=f"{len(c.flips)} {verb} (breached under one policy only)", title_justify="left")
    for column in ("issue", "metric", "old", "new"):
        flips.add_column(column)
    for f in c.flips[:limit]:
        flips.add_row(
            escape(f.key), f.metric,
            f"{escape(f.old_level)} {f.old_state} "
            f"({format_duration(f.old_elapsed_s)} of {format_duration(f.old_target_s)})",
            f"{escape(f.new_level)} {f.new_state} "
            f"({format_duration(f.new_elapsed_s)} of {format_duration(f.new_target_s)})",
        )
    console.print(flips)
    if len(c.flips) > limit:
        console.print(f"and {len(c.flips) - limit} more (--limit, or --format json for all)")

