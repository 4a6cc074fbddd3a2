"""The reading commands: ``export``, ``report``, ``explain`` and ``compare``.

They register on ``cli.app`` (``cli.py`` imports this module at its end).  Each reads
issues either from a live tracker (the policy's ``tracker`` section,
``Tracker.fetch_all``) or from an export (``--input FILE``, neutral JSON Lines),
streams them through the pure core (``timers``, ``report``, ``explain``,
``compare``) and prints or writes what comes out.  Bad input is a ``UserError``:
a message naming the file, line or flag, exit 2.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from .adapters.base import Tracked, Tracker
from .calendar import iso_utc

# cli.py imports this module at its end, once every name imported here is defined there.
from .cli import InputError, NowOpt, app, err, open_input, open_output, open_tracker, parse_now, read_policy
from .compare import CompareBuilder, Comparison, comparison_to_json
from .errors import TrackerError, UserError
from .explain import compact, explanation_lines, explanation_to_json
from .explain import explain as explain_issue
from .html_report import render_html
from .model import Issue
from .neutral import LineError, dump_line, issue_to_json, read_issues
from .policy import Policy, format_duration
from .report import GROUP_BY, TOTAL, Period, Report, ReportBuilder, report_to_json, report_to_rows
from .timers import evaluate as evaluate_issue

REPORT_FORMATS = ("table", "csv", "json", "html")

InputOpt = Annotated[
    str | None,
    typer.Option("--input", "-i", help="Neutral issues (JSON Lines, e.g. from `sla-sync export`); - for stdin. Default: fetch from the policy's tracker."),
]
SinceOpt = Annotated[
    str | None, typer.Option(help="Only issues created at or after this date (YYYY-MM-DD, 00:00 UTC) or ISO instant.")
]
UntilOpt = Annotated[
    str | None, typer.Option(help="Only issues created before this date or instant. Default: --now.")
]
OutputOpt = Annotated[str, typer.Option("--output", "-o", help="Where to write; - for stdout.")]
PolicyOpt = Annotated[Path, typer.Option("--policy", "-p", help="The policy file.", show_default=False)]


# -- shared pieces ---------------------------------------------------------------------------


def parse_bound(value: str | None, flag: str) -> int | None:
    """``--since``/``--until``: a date (00:00 UTC that day) or an ISO instant with a timezone."""
    if value is None:
        return None
    text = value.strip()
    try:
        if len(text) == 10:
            return int(datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC).timestamp())
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise UserError(f"{flag} {value!r}: write a date like 2026-11-01 or an instant like 2026-11-01T00:00:00Z") from None
    if moment.tzinfo is None:
        raise UserError(f"{flag} {value!r} has no timezone: add Z or an offset like +01:00, or write a date")
    return int(moment.timestamp() // 1)


def period_of(since: str | None, until: str | None, now: int) -> Period:
    """``[--since, --until)``; ``--until`` defaults to ``--now``.  An empty period is a mistake."""
    start = parse_bound(since, "--since")
    end = parse_bound(until, "--until") if until is not None else now
    if start is not None and end is not None and start >= end:
        bound = f"--until {until}" if until is not None else f"--now ({iso_utc(now)}, the default --until)"
        raise UserError(f"--since {since} is not before {bound}: the period would be empty")
    return Period(start, end)


def choice(value: str, allowed: tuple[str, ...], flag: str) -> str:
    if value not in allowed:
        raise UserError(f"{flag} {value!r}: use one of {', '.join(allowed)}")
    return value


def _strict(items: Iterator[tuple[int, Issue | LineError]]) -> Iterator[Issue]:
    for _, item in items:
        if isinstance(item, LineError):
            raise InputError(f"{item}\n(fix the line: every command but `evaluate --skip-invalid` stops at a bad line)")
        yield item


@contextmanager
def issue_source(policy: Policy, input_name: str | None, since: int | None) -> Iterator[Iterator[Issue]]:
    """The issues to read: an export (``--input``), or the policy's live tracker."""
    if input_name is not None:
        with open_input(input_name) as (stream, source):
            yield _strict(read_issues(stream, source))
        return
    yield (tracked.issue for tracked in fetch_all(open_tracker(policy), since))


def fetch_all(tracker: Tracker, since: int | None) -> Iterator[Tracked]:
    """``tracker.fetch_all``, or a clear message for an adapter without it."""
    if getattr(tracker, "fetch_all", None) is None:
        raise UserError(f"the {tracker.kind} adapter cannot list every issue yet (Tracker.fetch_all): "
                        "read an export with --input instead")
    return tracker.fetch_all(since)


@contextmanager
def tracker_failures() -> Iterator[None]:
    """A tracker that fails for good (after the retries) is one line and exit 1;
    rejected credentials are a ``UserError`` (exit 2) and pass through."""
    try:
        yield
    except TrackerError as exc:
        if isinstance(exc, UserError):
            raise
        err(f"sla-sync: {exc}")
        raise typer.Exit(1) from None


@contextmanager
def counter(label: str) -> Iterator[Progress | None]:
    """A live count on a terminal (stderr), nothing otherwise."""
    if not sys.stderr.isatty():
        yield None
        return
    with Progress(
        SpinnerColumn(), TextColumn("{task.description}: {task.completed} issues"), TimeElapsedColumn(),
        console=Console(stderr=True), transient=True,
    ) as bar:
        yield bar


def _text_console(output: str) -> tuple[Console, io.StringIO | None]:
    """A console for a table: the terminal itself, or a buffer for a file."""
    if output == "-":  # a pipe gets wide lines rather than wrapped cells
        return (Console() if sys.stdout.isatty() else Console(width=200)), None
    buffer = io.StringIO()
    return Console(file=buffer, width=200, color_system=None), buffer


# -- export ------------------------------------------------------------------------------------


@app.command()
def export(
    policy_path: Annotated[Path, typer.Argument(metavar="POLICY", help="The policy file (with a tracker section).")],
    output: OutputOpt = "-",
    since: SinceOpt = None,
) -> None:
    """Write the tracker's issues, with their history, as neutral JSON Lines.

    Streams page by page (memory stays flat); a file is written beside its target
    and moved into place only when the export is complete.
    """
    start = parse_bound(since, "--since")
    policy = read_policy(policy_path)
    tracker = open_tracker(policy)
    count = 0
    with tracker_failures(), counter(f"{policy.name}: exporting") as bar, open_output(output) as out:
        task = bar.add_task(f"{policy.name}: exporting", total=None) if bar is not None else None
        for tracked in fetch_all(tracker, start):
            out.write(dump_line(issue_to_json(tracked.issue)))
            count += 1
            if bar is not None and task is not None:
                bar.update(task, completed=count)
    err(f"{policy.name}: exported {count} issue{'s' if count != 1 else ''}")


# -- report ------------------------------------------------------------------------------------


def build_report(
    policy: Policy, input_name: str | None, now: int, period: Period, group_by: str, series: bool
) -> Report:
    builder = ReportBuilder(policy, group_by, period, now, series=series)
    with issue_source(policy, input_name, period.since) as issues:
        for issue in issues:
            if period.holds(issue.created_at):
                builder.add(issue, evaluate_issue(issue, policy, now))
    return builder.result()


def _report_tables(report: Report, console: Console) -> None:
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
        console, buffer = _text_console(output)
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


@app.command()
def report(
    policy_path: PolicyOpt,
    input_name: InputOpt = None,
    now: NowOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    group_by: Annotated[str, typer.Option("--group-by", help="level, assignee, month, milestone or type.")] = "level",
    fmt: Annotated[str, typer.Option("--format", help="table, csv, json or html.")] = "table",
    output: OutputOpt = "-",
) -> None:
    """Counts, compliance, elapsed times and CSAT of the issues created in a period.

    Per group and in total: opened, solved, at_risk_open, CSAT answers and average,
    and per metric met, breached, running, paused, compliance, median and 90th
    percentile of elapsed working time over stopped clocks.
    """
    choice(group_by, GROUP_BY, "--group-by")
    choice(fmt, REPORT_FORMATS, "--format")
    at = parse_now(now)
    period = period_of(since, until, at)
    policy = read_policy(policy_path)
    with tracker_failures():
        result = build_report(policy, input_name, at, period, group_by, series=fmt == "html")
    for value, n in result.unmapped_csat.items():
        err(f"{policy.source}: report.csat_values has no number for the CSAT value {value!r} ({n} issues): add it")
    write_report(result, fmt, output)


# -- explain -----------------------------------------------------------------------------------


def find_issue(policy: Policy, input_name: str | None, key: str) -> Issue:
    if input_name is None:
        try:
            found = [t.issue for t in open_tracker(policy).refresh([key])]
        except ValueError:  # a key the tracker cannot even parse (Redmine: not a number)
            raise UserError(f"issue {key!r}: not a key of this tracker (Redmine: the issue number)") from None
        if not found:
            raise UserError(f"issue {key} is not on the tracker")
        return found[0]
    with open_input(input_name) as (stream, source):
        for _, item in read_issues(stream, source):
            if isinstance(item, Issue) and item.key == key:
                return item
    raise UserError(f"{source}: no issue with the key {key!r}: check the key (as in the export's \"key\")")


@app.command()
def explain(
    key: Annotated[str, typer.Argument(metavar="KEY", help="The issue's key, e.g. SUP-42 (Redmine: the number).", show_default=False)],
    policy_path: PolicyOpt,
    input_name: InputOpt = None,
    now: NowOpt = None,
    fmt: Annotated[str, typer.Option("--format", help="text or json.")] = "text",
    brief: Annotated[
        bool, typer.Option("--compact", help="One segment per status instead of one per working interval.")
    ] = False,
) -> None:
    """Why an issue's clocks say what they say.

    The rule that classified it (each condition and the issue's value), and per
    metric the timeline as segments (running, outside working hours, paused,
    stopped) with the elapsed time at each change, the due instant and the breach
    instant, in the calendar's local time and in UTC.
    """
    choice(fmt, ("text", "json"), "--format")
    if not key.strip():
        raise UserError("give the issue's key, e.g. `sla-sync explain SUP-42 --policy FILE --input FILE`")
    at = parse_now(now)
    policy = read_policy(policy_path)
    with tracker_failures():
        issue = find_issue(policy, input_name, key.strip())
    result = explain_issue(issue, policy, at)
    if brief:
        result = replace(result, metrics=tuple(replace(m, segments=compact(m.segments)) for m in result.metrics))
    if fmt == "json":
        typer.echo(json.dumps(explanation_to_json(result), indent=2))
    else:
        typer.echo("\n".join(explanation_lines(result)))


# -- compare -----------------------------------------------------------------------------------


def _share_text(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _compare_tables(c: Comparison, console: Console, limit: int) -> None:
    console.print(f"{c.issues} issues, clocks as of {iso_utc(c.now)}: [bold]{escape(c.old_policy)}[/bold] (old) "
                  f"vs [bold]{escape(c.new_policy)}[/bold] (new)")
    table = Table(title="compliance and breaches per level and metric", title_justify="left")
    for column in ("level", "metric", "old compliance", "new compliance", "change", "old breached", "new breached", "change"):
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
            f"{escape(f.old_level)} {f.old_state} ({format_duration(f.old_elapsed_s)} of {format_duration(f.old_target_s)})",
            f"{escape(f.new_level)} {f.new_state} ({format_duration(f.new_elapsed_s)} of {format_duration(f.new_target_s)})",
        )
    console.print(flips)
    if len(c.flips) > limit:
        console.print(f"and {len(c.flips) - limit} more (--limit, or --format json for all)")


@app.command()
def compare(
    old_path: Annotated[Path, typer.Argument(metavar="OLD", help="The policy file in force.")],
    new_path: Annotated[Path, typer.Argument(metavar="NEW", help="The proposed policy file.")],
    input_name: InputOpt = None,
    now: NowOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    fmt: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
    output: OutputOpt = "-",
    limit: Annotated[int, typer.Option(help="Flips listed in the table (json lists all).")] = 50,
) -> None:
    """What a change of policy would do to compliance, breaches and each issue.

    Per level and metric, compliance and the breach count under OLD and NEW and
    the change, then the issues whose outcome flips (breached under one policy
    only).  Without --input, the issues come from OLD's tracker.
    """
    choice(fmt, ("table", "json"), "--format")
    at = parse_now(now)
    period = period_of(since, until, at)
    old, new = read_policy(old_path), read_policy(new_path)
    levels = [*old.levels, *(n for n in new.levels if n not in old.levels)]
    builder = CompareBuilder(str(old_path), str(new_path), levels, period, at)
    with tracker_failures(), issue_source(old, input_name, period.since) as issues:
        for issue in issues:
            if builder.period.holds(issue.created_at):
                builder.add(issue, evaluate_issue(issue, old, at), evaluate_issue(issue, new, at))
    result = builder.result()
    if fmt == "json":
        with open_output(output) as out:
            out.write((json.dumps(comparison_to_json(result), indent=2) + "\n").encode())
        return
    console, buffer = _text_console(output)
    _compare_tables(result, console, limit)
    if buffer is not None:
        with open_output(output) as out:
            out.write(buffer.getvalue().encode())
