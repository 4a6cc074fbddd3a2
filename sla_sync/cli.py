"""The ``sla-sync`` command line: the only module that prints.

Exit codes: 0 success; 1 done, but some input was skipped or some issue failed;
2 bad input or settings (the message says which file, line and key, and what to do).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib.metadata import entry_points
from pathlib import Path
from typing import IO, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from typer.exceptions import TyperException

from sla_sync.adapters.base import AdapterOptions, Tracker, load_factory, read_secret

from .calendar import iso_utc
from .errors import AuthError, LockedError, SlaSyncError, TrackerError, UserError
from .model import Change
from .neutral import LineError, dump_line, parse_instant, read_issues, sla_to_json
from .observe import LOGGER, Metrics, add_secret, configure_logging
from .plan import managed_labels, marker
from .policy import Policy, PolicyError, json_schema, load_policy, parse_duration
from .state import Store, default_location
from .sync import PassResult, run_pass
from .timers import evaluate as evaluate_issue

app = typer.Typer(
    name="sla-sync",
    help=(
        "Service-level agreements on the issue tracker you already use.\n\n"
        "Reads issues, classifies them with a policy file, runs the SLA clocks on "
        "business calendars and (with a tracker) writes due dates, labels and "
        "escalations back. Exit codes: 0 ok, 1 partly done, 2 bad input."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


BUILTIN_KINDS = ("redmine", "gitlab", "jira")


class InputError(UserError):
    """A bad input line; its message starts with FILE:LINE."""


def known_kinds() -> list[str]:
    """Tracker kinds of the installed adapters (entry-point group ``sla_sync.adapters``)."""
    found = {ep.name for ep in entry_points(group="sla_sync.adapters")}
    return sorted(found | set(BUILTIN_KINDS))


def err(message: str) -> None:
    """A line on standard error."""
    typer.echo(message, err=True)


def parse_now(value: str | None) -> int:
    """``--now``: an ISO instant with a timezone; default the current time."""
    if value is None:
        return int(datetime.now(UTC).timestamp())
    try:
        return parse_instant(value, "--now")
    except ValueError as exc:
        raise UserError(str(exc)) from None


def read_policy(path: Path) -> Policy:
    """Load a policy file, with the installed tracker kinds known."""
    return load_policy(path, known_kinds())


@contextmanager
def open_input(name: str) -> Iterator[tuple[IO[bytes], str]]:
    """``-`` is standard input; a missing file is a ``UserError``."""
    if name == "-":
        yield sys.stdin.buffer, "<stdin>"
        return
    try:
        stream = open(name, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise UserError(f"{name}: cannot read it: {exc.strerror}") from None
    with stream:
        yield stream, name


@contextmanager
def open_output(name: str) -> Iterator[IO[bytes]]:
    """``-`` is standard output.  A file is written beside its target and moved
    into place only when the command succeeds, so a failed run never leaves a
    half-written file or destroys the previous one."""
    if name == "-":
        yield sys.stdout.buffer
        sys.stdout.flush()
        return
    target = Path(name)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent or ".")
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)  # as an ordinary new file would be, not mkstemp's 0600
    except OSError as exc:
        raise UserError(f"{name}: cannot write there: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as stream:
            yield stream
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@app.command()
def check(
    files: Annotated[list[Path], typer.Argument(help="Policy files to validate.", show_default=False)],
    online: Annotated[
        bool,
        typer.Option("--online", help="Also connect to each tracker: project, custom fields, users and groups."),
    ] = False,
) -> None:
    """Validate policy files: every problem as FILE:LINE:COL: message.

    With --online, also check each policy against its tracker and print what an
    admin must add. Exits 0 when everything is fine, 2 otherwise.
    """
    bad = 0
    for path in files:
        try:
            policy = read_policy(path)
        except PolicyError as exc:
            bad += 1
            for problem in exc.problems:
                typer.echo(str(problem))
            continue
        typer.echo(
            f"{path}: ok ({len(policy.levels)} levels, {len(policy.rules)} rules, "
            f"{len(policy.calendars)} calendars, {len(policy.steps)} escalation steps)"
        )
        if online:
            todo = check_online(policy)
            for line in todo:
                typer.echo(f"{path}: tracker: {line}")
            if todo:
                bad += 1
            else:
                typer.echo(f"{path}: tracker: project, fields, users and groups are all in place")
    if bad:
        err(f"{bad} of {len(files)} policy files have problems")
        raise typer.Exit(2)


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
    at = parse_now(now)
    skipped = 0
    with open_input(input_name) as (stream, source), open_output(output) as out:
        for _, item in read_issues(stream, source):
            if isinstance(item, LineError):
                if not skip_invalid:
                    raise InputError(f"{item}\n(fix the line, or pass --skip-invalid to skip bad lines)")
                err(str(item))
                skipped += 1
                continue
            out.write(dump_line(sla_to_json(evaluate_issue(item, policy, at))))
    if skipped:
        err(f"skipped {skipped} invalid line{'s' if skipped != 1 else ''}")
        raise typer.Exit(1)


StateOpt = Annotated[
    str | None,
    typer.Option("--state", help="State store: an SQLite file or a postgresql:// URL. Default: $SLA_SYNC_STATE or ~/.local/state/sla-sync/state.sqlite."),
]
NowOpt = Annotated[
    str | None, typer.Option(help="Pretend it is this instant (ISO 8601 with timezone), for simulations. Default: now.")
]


def open_tracker(policy: Policy) -> Tracker:
    """The policy's tracker adapter, with the API key from the environment or a file."""
    return open_tracker_with_secret(policy)[0]


def open_tracker_with_secret(policy: Policy) -> tuple[Tracker, str]:
    """The adapter and its secret (for the logs' redaction filter, never for output)."""
    spec = policy.spec.tracker
    if spec is None:
        raise UserError(f"{policy.source}: the policy has no `tracker` section; add one to talk to a tracker")
    secret = read_secret(spec, os.environ)
    agents = spec.agents
    options = AdapterOptions(
        agents_users=tuple(agents.users) if agents else (),
        agents_groups=tuple(agents.groups) if agents else (),
        max_wait=spec.max_wait,
    )
    return load_factory(spec.kind)(spec, secret, options), secret


def check_online(policy: Policy) -> list[str]:
    """What an admin must add on the tracker for this policy to work."""
    spec = policy.spec
    if spec.tracker is None:
        return ["the policy has no `tracker` section: nothing to check online"]
    prefix = spec.writeback.label_prefix
    labels = sorted(managed_labels(prefix, policy.levels)) + [marker(prefix, s.number) for s in policy.steps]
    labels += [lbl for s in spec.escalate for lbl in s.add_labels if lbl not in labels]
    agents = spec.tracker.agents
    names = list(agents.users) + list(agents.groups) if agents else []
    for step in spec.escalate:
        names += [n for n in (step.assign, *step.watchers) if n and n not in names]
    return open_tracker(policy).check(labels, names)


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


def _change_text(change: Change) -> str:
    step = f" (step {change.step})" if change.step else ""
    if change.kind == "comment":
        where = "private" if change.private else "public"
        return f"{where} note{step}: {change.value}"
    if change.values:
        return f"{change.kind.replace('_', ' ')}{step}: {', '.join(change.values)}"
    return f"{change.kind.replace('_', ' ')}{step}: {change.value}"


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
                    "error": o.error,
                }
                for o in result.outcomes if o.plan.changes or o.plan.kept or o.error
            ],
        }
        typer.echo(json.dumps(doc, indent=2))
        return
    console = Console()
    table = Table(title=f"{result.policy}: {len(result.changed)} of {result.fetched} issues need changes", title_justify="left")
    table.add_column("issue")
    table.add_column("level")
    table.add_column("changes")
    for o in result.outcomes:
        lines = [_change_text(c) for c in o.plan.changes] + [f"kept: {k}" for k in o.plan.kept]
        if o.error:
            lines.append(f"[red]error: {escape(o.error)}[/red]")
        if lines:
            table.add_row(o.key, o.plan.level, "\n".join(escape(x) if not x.startswith("[red]") else x for x in lines))
    if result.changed or result.kept or result.errors:
        console.print(table)
    else:
        console.print(f"{result.policy}: nothing to change in {result.fetched} issues")


def summary(result: PassResult) -> str:
    c = result.counts()
    writes = ", ".join(f"{k} {v}" for k, v in sorted(c["writes"].items())) or "none"
    line = (
        f"{result.policy}: {c['fetched']} issues fetched ({c['refetched']} with new history), "
        f"{c['issues_applied']} updated, {c['steps_fired']} escalation steps fired, writes: {writes}, "
        f"{c['kept']} manual changes kept, {c['errors']} errors"
    )
    return line + (" (stopped early)" if result.stopped else "")


@contextmanager
def progress_reporter(label: str) -> Iterator[Callable[[int, int], None]]:
    """A progress bar on a terminal, nothing otherwise (the summary line follows)."""
    if not sys.stderr.isatty():
        yield lambda done, total: None
        return
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=Console(stderr=True), transient=True,
    ) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


LogFormatOpt = Annotated[str, typer.Option("--log-format", help="plain or json log lines on stderr")]


def setup_logs(fmt: str) -> None:
    if fmt not in ("plain", "json"):
        raise UserError(f"--log-format {fmt!r}: use plain or json")
    configure_logging(fmt)


def one_pass(
    policy: Policy,
    store: Store,
    now: int,
    *,
    apply: bool,
    metrics: Metrics | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> PassResult:
    """One pass with its logs and metrics."""
    tracker, secret = open_tracker_with_secret(policy)
    add_secret(secret)
    run_id = new_run_id()
    log = logging.LoggerAdapter(logging.getLogger(LOGGER), {"run_id": run_id, "policy": policy.name, "issue": "-"})
    started = time.monotonic()
    try:
        with progress_reporter(f"{policy.name}: applying") as progress:
            result = run_pass(tracker, policy, store, now, apply=apply, run_id=run_id,
                              should_stop=should_stop, progress=progress)
    except SlaSyncError as exc:  # shown once: by main(), or logged by watch
        kind = "auth" if isinstance(exc, AuthError) else "locked" if isinstance(exc, LockedError) else "fetch"
        if metrics is not None:
            metrics.failed(policy.name, kind, time.monotonic() - started)
        raise
    if metrics is not None:
        metrics.observe(result, time.monotonic() - started, time.time())
    if apply:
        log_outcomes(log, result)
    return result


def log_outcomes(log: logging.LoggerAdapter[logging.Logger], result: PassResult) -> None:
    """A line per written issue, per error and per kept manual change, then the summary."""
    base = dict(log.extra or {})
    for o in result.outcomes:
        extra = {**base, "issue": o.key}
        if o.applied:
            log.logger.info("wrote %s", "; ".join(_change_text(c) for c in o.plan.changes),
                            extra={**extra, "changes": [c.kind for c in o.plan.changes]})
        if o.error:
            log.logger.error("%s", o.error, extra={**extra, "kind": "issue"})
        for note in o.plan.kept:
            log.logger.warning("%s", note, extra=extra)
    log.info("%s", summary(result))


@app.command()
def plan(
    policy_path: Annotated[Path, typer.Argument(metavar="POLICY", help="The policy file (with a tracker section).")],
    now: NowOpt = None,
    state: StateOpt = None,
    fmt: Annotated[str, typer.Option("--format", help="table or json")] = "table",
    log_format: LogFormatOpt = "plain",
) -> None:
    """Fetch, evaluate and show the changes a run would make, writing nothing."""
    if fmt not in ("table", "json"):
        raise UserError(f"--format {fmt!r}: use table or json")
    setup_logs(log_format)
    policy = read_policy(policy_path)
    store = Store(state or default_location())
    result = one_pass(policy, store, parse_now(now), apply=False)
    print_plan(result, fmt)


@app.command()
def run(
    policy_paths: Annotated[list[Path], typer.Argument(metavar="POLICY...", help="Policy files (each with a tracker section).")],
    now: NowOpt = None,
    state: StateOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only show the plan (same as `sla-sync plan`).")] = False,
    fmt: Annotated[str, typer.Option("--format", help="table or json (the plan's format)")] = "table",
    metrics_file: Annotated[
        Path | None, typer.Option(help="Write Prometheus metrics here after the run (node-exporter textfile).")
    ] = None,
    log_format: LogFormatOpt = "plain",
) -> None:
    """Apply the plan: due dates, SLA labels, escalations. Exit 1 if some issue failed."""
    setup_logs(log_format)
    policies = [read_policy(p) for p in policy_paths]
    store = Store(state or default_location())
    metrics = Metrics()
    worst = 0
    try:
        for policy in policies:
            result = one_pass(policy, store, parse_now(now), apply=not dry_run, metrics=metrics)
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
    policy_paths: Annotated[list[Path], typer.Argument(metavar="POLICY...", help="Policy files (each with a tracker section).")],
    every: Annotated[str, typer.Option(help="Time between passes: 30s, 5m, 1h.")] = "5m",
    now: NowOpt = None,
    state: StateOpt = None,
    passes: Annotated[int | None, typer.Option(help="Stop after this many passes (default: run until stopped).")] = None,
    metrics_port: Annotated[int | None, typer.Option(help="Serve Prometheus metrics on this port at /metrics.")] = None,
    metrics_addr: Annotated[str, typer.Option(help="Address for --metrics-port.")] = "0.0.0.0",
    log_format: LogFormatOpt = "plain",
) -> None:
    """Run passes every --every until SIGTERM or Ctrl-C; a stop waits for the write in flight."""
    try:
        interval = parse_duration(every)
    except ValueError as exc:
        raise UserError(f"--every: {exc}") from None
    setup_logs(log_format)
    policies = [read_policy(p) for p in policy_paths]
    store = Store(state or default_location())
    metrics = Metrics()
    if metrics_port is not None:
        try:
            metrics.serve(metrics_port, metrics_addr)
        except OSError as exc:
            raise UserError(f"--metrics-port {metrics_port}: cannot listen: {exc.strerror}") from None
    stop = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        err(f"sla-sync: {signal.Signals(signum).name}: stopping after the write in flight")
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    count, worst = 0, 0
    try:
        while not stop.is_set():
            for policy in policies:
                if stop.is_set():
                    break
                try:
                    result = one_pass(policy, store, parse_now(now), apply=True, metrics=metrics, should_stop=stop.is_set)
                except (TrackerError, LockedError) as exc:
                    logging.getLogger(LOGGER).error(
                        "pass failed: %s", exc, extra={"run_id": "-", "policy": policy.name, "issue": "-"}
                    )
                    worst = max(worst, 1)  # the next pass tries again
                    continue
                worst = max(worst, result.exit_code)
            count += 1
            if passes is not None and count >= passes:
                break
            stop.wait(interval)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if worst:
        raise typer.Exit(worst)


@app.command()
def schema() -> None:
    """Print the policy file's JSON Schema (for editors: see the README)."""
    typer.echo(json.dumps(json_schema(), indent=2))


def main() -> None:
    """Console entry point: user errors are a message and exit 2, never a traceback."""
    try:
        code = app(standalone_mode=False)
    except UserError as exc:
        err(str(exc) if isinstance(exc, (PolicyError, InputError)) else f"sla-sync: {exc}")
        sys.exit(2)
    except SlaSyncError as exc:  # a tracker failed for good: nothing was written after it
        err(f"sla-sync: {exc}")
        sys.exit(1)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err("aborted")
        sys.exit(130)
    except KeyboardInterrupt:
        err("interrupted")
        sys.exit(130)
    except BrokenPipeError:
        sys.stderr.close()
        sys.exit(0)
    except TyperException as exc:  # usage errors: shown with the usage, exit 2
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            err(f"sla-sync: {exc.format_message()}")
        sys.exit(exc.exit_code)
    sys.exit(code if isinstance(code, int) else 0)


from . import cli_reports  # noqa: E402,F401  (registers export, report, explain and compare)

if __name__ == "__main__":  # pragma: no cover
    # `python -m sla_sync.cli` runs this file as __main__; the commands of
    # cli_reports register on the module proper, so run that one.
    from sla_sync.cli import main as installed_main

    installed_main()
