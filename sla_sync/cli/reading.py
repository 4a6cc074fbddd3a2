"""The reading commands: ``export``, ``report``, ``explain`` and ``compare``.

Each reads issues either from a live tracker (the policy's ``tracker`` section,
``Tracker.fetch_all``) or from an export (``--input FILE``, neutral JSON Lines),
streams them through the pure core (``timers``, ``report``, ``explain``,
``compare``) and prints or writes what comes out.  Bad input is a ``UserError``:
a message naming the file, line or flag, exit 2.  None of them writes to the
tracker.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from ..compare import CompareBuilder, comparison_to_json
from ..errors import UserError
from ..explain import compact, explanation_lines, explanation_to_json
from ..explain import explain as explain_issue
from ..model import Issue
from ..neutral import LineError, dump_line, issue_to_json, read_issues
from ..policy import Policy
from ..report import GROUP_BY, Period, Report, ReportBuilder
from ..timers import evaluate as evaluate_issue
from .app import (
    InputError,
    InputOpt,
    NowOpt,
    OutputOpt,
    PolicyOpt,
    SinceOpt,
    UntilOpt,
    app,
    choice,
    counter,
    err,
    open_input,
    open_output,
    parse_bound,
    parse_now,
    period_of,
    read_policy,
    tracker_failures,
    tracker_for,
)
from .render import compare_tables, text_console, write_report

REPORT_FORMATS = ("table", "csv", "json", "html")


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
    yield (tracked.issue for tracked in tracker_for(policy).fetch_all(since))


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
    tracker = tracker_for(policy)
    count = 0
    with tracker_failures(), counter(f"{policy.name}: exporting") as update, open_output(output) as out:
        for tracked in tracker.fetch_all(start):
            out.write(dump_line(issue_to_json(tracked.issue)))
            count += 1
            update(count)
    err(f"{policy.name}: exported {count} issue{'s' if count != 1 else ''}")


def build_report(
    policy: Policy, input_name: str | None, now: int, period: Period, group_by: str, series: bool
) -> Report:
    builder = ReportBuilder(policy, group_by, period, now, series=series)
    with issue_source(policy, input_name, period.since) as issues:
        for issue in issues:
            if period.holds(issue.created_at):
                builder.add(issue, evaluate_issue(issue, policy, now))
    return builder.result()


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


def find_issue(policy: Policy, input_name: str | None, key: str) -> Issue:
    if input_name is None:
        found = [t.issue for t in tracker_for(policy).refresh([key])]
        if not found:
            raise UserError(f"issue {key} is not on the tracker (deleted, or out of the API user's sight): "
                            "check the key, e.g. SUP-42 (Redmine, GitLab: the number)")
        return found[0]
    with open_input(input_name) as (stream, source):
        for _, item in read_issues(stream, source):
            if isinstance(item, Issue) and item.key == key:
                return item
    raise UserError(f"{source}: no issue with the key {key!r}: check the key (as in the export's \"key\")")


@app.command()
def explain(
    key: Annotated[str, typer.Argument(metavar="KEY", help="The issue's key, e.g. SUP-42 (Redmine: the number).",
                                       show_default=False)],
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
    console, buffer = text_console(output)
    compare_tables(result, console, limit)
    if buffer is not None:
        with open_output(output) as out:
            out.write(buffer.getvalue().encode())
