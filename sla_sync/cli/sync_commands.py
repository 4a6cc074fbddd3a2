"""The sync commands: ``check``, ``evaluate``, ``plan``, ``run``, ``watch`` and ``schema``."""

from __future__ import annotations

import json
import logging
import os
import signal
from collections.abc import Callable
from pathlib import Path
from threading import Event
from time import time as wall_clock
from typing import TYPE_CHECKING, Annotated

import typer

from ..errors import LockedError, TrackerError, UserError
from ..neutral import LineError, SlaWriter, read_issues
from ..notify import check_channels
from ..policy import Policy
from ..positions import PolicyError, read_yaml
from ..schema import json_schema
from ..timers import Clocks
from ..values import parse_duration
from .app import (
    InputError,
    LogFormatOpt,
    NowOpt,
    StateOpt,
    app,
    err,
    open_input,
    open_output,
    out,
    parse_now,
    progress_reporter,
    read_policy,
    setup_logs,
    tracker_for,
)
from .render import print_plan

if TYPE_CHECKING:
    from ..observe import Metrics
    from ..state import Store
    from ..sync import PassResult

# The passes' modules (the state store and SQLAlchemy, the sync, Prometheus) are
# imported inside the commands that run passes: `evaluate` and `check` never load them.


@app.command()
def check(
    files: Annotated[list[Path], typer.Argument(help="Policy files to validate.", show_default=False)],
    online: Annotated[
        bool,
        typer.Option("--online", help="Also connect to each tracker (project, custom fields, users and groups) "
                                      "and check each notification channel's secret and URL (nothing is sent)."),
    ] = False,
) -> None:
    """Validate policy files: every problem as FILE:LINE:COL: message.

    With --online, also check each policy against its tracker and print what an
    admin must add. Exits 0 when everything is fine, 2 otherwise.
    """
    bad = 0
    read: list[tuple[Path, Policy]] = []
    for path in files:
        try:
            policy = read_policy(path)
        except PolicyError as exc:
            bad += 1
            for problem in exc.problems:
                typer.echo(str(problem))
            continue
        if (clash := shared_name(read, path, policy)) is not None:
            bad += 1
            typer.echo(clash)
            continue
        read.append((path, policy))
        custom = f", {len(policy.custom)} custom metrics" if policy.custom else ""
        typer.echo(
            f"{path}: ok ({len(policy.levels)} levels, {len(policy.rules)} rules, "
            f"{len(policy.calendars)} calendars, {len(policy.steps)} escalation steps{custom})"
        )
        if online:
            todo, warnings = check_online_with_warnings(policy)
            for line in [*todo, *warnings]:
                out(f"{path}: tracker: {line}")
            if todo:
                bad += 1
            else:
                typer.echo(f"{path}: tracker: project, fields, users and groups are all in place")
    if bad:
        err(f"{bad} of {len(files)} policy files have problems")
        raise typer.Exit(2)


def shared_name(earlier: list[tuple[Path, Policy]], path: Path, policy: Policy) -> str | None:
    """``FILE:LINE:COL: name: ...`` when an earlier file of the same command has
    this policy's name (logs, metrics and the run journal tell policies apart by
    it), else ``None``."""
    for other, seen in earlier:
        if seen.name == policy.name:
            try:
                line, col = read_yaml(str(path), path.read_text(encoding="utf-8")).where(("name",))
            except (OSError, UnicodeDecodeError, PolicyError):
                line, col = 1, 1
            return (f"{path}:{line}:{col}: name: {policy.name!r} is also the name of {other}: give each policy "
                    "file its own name (logs, metrics and the state store tell policies apart by it)")
    return None


def read_policies(paths: list[Path]) -> list[Policy]:
    """The policy files of a ``run`` or ``watch``; two with one name are a ``UserError``."""
    read: list[tuple[Path, Policy]] = []
    for path in paths:
        policy = read_policy(path)
        if (clash := shared_name(read, path, policy)) is not None:
            raise InputError(clash)
        read.append((path, policy))
    return [policy for _, policy in read]


def check_online(policy: Policy) -> list[str]:
    """What an admin must add on the tracker (and to the notification channels:
    each secret set, each URL one Apprise can read; nothing is sent) for this
    policy to work."""
    return check_online_with_warnings(policy)[0]


def check_online_with_warnings(policy: Policy) -> tuple[list[str], list[str]]:
    """``check_online``, and what the custom metrics read of the history that the
    tracker cannot supply (its adapter's ``HISTORY_GAPS``): warnings, not failures."""
    from ..custom import history_needed

    if policy.tracker is None:
        return ["the policy has no `tracker` section: nothing to check online"], []
    tracker = tracker_for(policy)
    todo = tracker.check(policy.tracker_labels, policy.tracker_names) + check_channels(policy, os.environ)
    gaps: dict[str, str] = getattr(tracker, "HISTORY_GAPS", {})
    warnings = [f"warning: {', '.join(metrics)} read{'s' if len(metrics) == 1 else ''} "
                f"{kind.replace('_', ' ')} changes, which {policy.tracker.kind} cannot give: {gaps[kind]}"
                for kind, metrics in history_needed(policy.custom).items() if kind in gaps]
    return todo, warnings


FullOpt = Annotated[bool, typer.Option(
    "--full", help="List every open issue (a full reconciliation) instead of only those updated since the last pass.")]


def _pass(policy: Policy, store: Store, now: int, *, apply: bool, metrics: Metrics | None = None,
          full: bool = False, should_stop: Callable[[], bool] = lambda: False) -> PassResult:
    """One pass with the environment's secrets and, on a terminal, a progress bar."""
    from ..runner import one_pass

    with progress_reporter(f"{policy.name}: applying") as progress:
        return one_pass(policy, store, now, apply=apply, env=os.environ, metrics=metrics, full=full,
                        should_stop=should_stop, progress=progress)


@app.command()
def evaluate(
    policy_path: Annotated[Path, typer.Option("--policy", "-p", help="The policy file.", show_default=False)],
    input_name: Annotated[str, typer.Option("--input", "-i", help="Neutral issues, JSON Lines; - for stdin.")] = "-",
    now: Annotated[
        str | None, typer.Option(help="Evaluate at this instant (ISO 8601 with timezone). Default: now.")
    ] = None,
    output: Annotated[str, typer.Option("--output", "-o", help="Where to write; - for stdout.")] = "-",
    skip_invalid: Annotated[
        bool, typer.Option("--skip-invalid", help="Skip bad lines (counted on stderr, exit 1) instead of stopping.")
    ] = False,
) -> None:
    """Run the SLA clocks over neutral issues (JSON Lines), offline.

    Writes one JSON object per issue: key, level and, per metric, state, at_risk,
    target_s, elapsed_s, remaining_s, due_at, breached_at, stopped_at. Streams:
    memory stays flat whatever the input size.
    """
    policy = read_policy(policy_path)
    clocks = Clocks(policy, parse_now(now))
    skipped = 0
    with open_input(input_name) as (stream, source), open_output(output) as out, SlaWriter(out) as lines:
        for _, item in read_issues(stream, source):
            if isinstance(item, LineError):
                if not skip_invalid:
                    raise InputError(f"{item}\n(fix the line, or pass --skip-invalid to skip bad lines)")
                err(str(item))
                skipped += 1
                continue
            lines.write(clocks(item))
    if skipped:
        err(f"skipped {skipped} invalid line{'s' if skipped != 1 else ''}")
        raise typer.Exit(1)


@app.command()
def plan(
    policy_path: Annotated[Path, typer.Argument(metavar="POLICY", help="The policy file (with a tracker section).")],
    now: NowOpt = None,
    state: StateOpt = None,
    fmt: Annotated[str, typer.Option("--format", help="table or json")] = "table",
    log_format: LogFormatOpt = "plain",
    full: FullOpt = False,
) -> None:
    """Fetch, evaluate and show the changes a run would make, writing nothing."""
    if fmt not in ("table", "json"):
        raise UserError(f"--format {fmt!r}: use table or json")
    setup_logs(log_format)
    policy = read_policy(policy_path)
    from ..state import Store, default_location

    store = Store(state or default_location())
    result = _pass(policy, store, parse_now(now), apply=False, full=full)
    print_plan(result, fmt)


@app.command()
def run(
    policy_paths: Annotated[list[Path],
                            typer.Argument(metavar="POLICY...", help="Policy files (each with a tracker section).")],
    now: NowOpt = None,
    state: StateOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only show the plan (same as `sla-sync plan`).")] = False,
    fmt: Annotated[str, typer.Option("--format", help="table or json (the plan's format)")] = "table",
    metrics_file: Annotated[
        Path | None, typer.Option(help="Write Prometheus metrics here after the run (node-exporter textfile).")
    ] = None,
    log_format: LogFormatOpt = "plain",
    full: FullOpt = False,
) -> None:
    """Apply the plan: due dates, SLA labels, escalations. Exit 1 if some issue failed.

    A pass reads only the issues updated since the last one (and, from the state
    store, those whose SLA changes by time now); once tracker.reconcile_every has
    passed since the last full pass (and on the first one, or with --full) it lists
    every open issue, to catch issues deleted, moved or hidden since.
    """
    setup_logs(log_format)
    policies = read_policies(policy_paths)
    from ..observe import Metrics
    from ..state import Store, default_location

    store = Store(state or default_location())
    metrics = Metrics()
    worst = 0
    try:
        for policy in policies:
            result = _pass(policy, store, parse_now(now), apply=not dry_run, metrics=metrics, full=full)
            print_plan(result, fmt)
            worst = max(worst, result.exit_code)
    finally:
        if metrics_file is not None:
            try:
                metrics.write_textfile(str(metrics_file))
            except OSError as exc:
                err(f"sla-sync: cannot write the metrics file {metrics_file}: {exc.strerror}")
                worst = max(worst, 1)
    if worst:
        raise typer.Exit(worst)


@app.command()
def watch(
    policy_paths: Annotated[list[Path],
                            typer.Argument(metavar="POLICY...", help="Policy files (each with a tracker section).")],
    every: Annotated[str, typer.Option(help="Time between passes: 30s, 5m, 1h.")] = "5m",
    now: NowOpt = None,
    state: StateOpt = None,
    passes: Annotated[int | None,
                      typer.Option(help="Stop after this many passes (default: run until stopped).")] = None,
    metrics_port: Annotated[int | None, typer.Option(help="Serve Prometheus metrics on this port at /metrics.")] = None,
    metrics_addr: Annotated[str, typer.Option(help="Address for --metrics-port.")] = "0.0.0.0",
    log_format: LogFormatOpt = "plain",
) -> None:
    """Run passes every --every until SIGTERM or Ctrl-C; a stop waits for the write in flight.

    Between passes it sleeps --every, or less: until the next instant at which some
    issue's plan changes by time alone (a step's threshold, at risk, a breach, held
    messages), so a step fires within seconds of its threshold. With --now (a
    simulation) it always sleeps --every.
    """
    try:
        interval = parse_duration(every)
    except ValueError as exc:
        raise UserError(f"--every: {exc}") from None
    setup_logs(log_format)
    policies = read_policies(policy_paths)
    from ..observe import LOGGER, Metrics
    from ..runner import wake_after
    from ..state import Store, default_location

    store = Store(state or default_location())
    metrics = Metrics()
    if metrics_port is not None:
        try:
            metrics.serve(metrics_port, metrics_addr)
        except OSError as exc:
            raise UserError(f"--metrics-port {metrics_port}: cannot listen: {exc.strerror}") from None
    stop = Event()

    def request_stop(signum: int, _frame: object) -> None:
        err(f"sla-sync: {signal.Signals(signum).name}: stopping after the write in flight")
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    count, worst = 0, 0
    try:
        while not stop.is_set():
            upcoming: list[int] = []
            for policy in policies:
                if stop.is_set():
                    break
                try:
                    result = _pass(policy, store, parse_now(now), apply=True, metrics=metrics, should_stop=stop.is_set)
                except (TrackerError, LockedError) as exc:
                    logging.getLogger(LOGGER).error(
                        "pass failed: %s", exc, extra={"run_id": "-", "policy": policy.name, "issue": "-"}
                    )
                    worst = max(worst, 1)  # the next pass tries again
                    continue
                worst = max(worst, result.exit_code)
                if result.upcoming is not None:
                    upcoming.append(result.upcoming.at)
            count += 1
            if passes is not None and count >= passes:
                break
            stop.wait(interval if now is not None else wake_after(interval, min(upcoming, default=None), wall_clock()))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if worst:
        raise typer.Exit(worst)


@app.command()
def schema() -> None:
    """Print the policy file's JSON Schema (for editors: see the README)."""
    typer.echo(json.dumps(json_schema(), indent=2))

