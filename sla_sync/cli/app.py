"""The typer application, the options the commands share, and the I/O helpers.

Every command module registers on ``app``; this module imports none of them.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, entry_points, version
from pathlib import Path
from typing import IO, Annotated

import typer
from typer._completion_shared import get_completion_script, install

from ..calendar import iso_utc
from ..errors import TrackerError, UserError
from ..neutral import parse_timestamp
from ..policy import Policy, load_policy
from ..redact import REDACTOR
from ..report import Period
from ..tracker import Tracker
from ..values import NoTimezoneError, parse_instant

app = typer.Typer(
    name="sla-sync",
    help=(
        "Service-level agreements on the issue tracker you already use.\n\n"
        "Reads issues, classifies them with a policy file, runs the SLA clocks on "
        "business calendars and (with a tracker) writes due dates, labels and "
        "escalations back. Exit codes: 0 ok, 1 partly done, 2 bad input."
    ),
    no_args_is_help=True,
    # typer's own completion options (add_completion) are flags: they ignore a shell named
    # after them and guess it from the process tree.  The callback below defines both
    # options with the shell as their value, on typer's own scripts and installer.
    add_completion=False,
    pretty_exceptions_enable=False,
)

PROG = "sla-sync"
COMPLETE_VAR = "_SLA_SYNC_COMPLETE"  # what typer's scripts set when the shell asks for completions
SHELLS = ("bash", "zsh", "fish", "powershell", "pwsh")

BUILTIN_KINDS = ("redmine", "gitlab", "jira")

# -- the application's own options: --version, shell completion --------------------------


def version_line(lookup: Callable[[str], str] = version) -> str:
    """``sla-sync X.Y.Z``, from the installed distribution; ``0+unknown`` when run from
    a source tree that was never installed."""
    try:
        return f"{PROG} {lookup(PROG)}"
    except PackageNotFoundError:
        return f"{PROG} 0+unknown"


def completion_shell(value: str, flag: str) -> str:
    """A shell typer writes completion for, or a ``UserError`` naming the flag and the shells."""
    if value not in SHELLS:
        raise UserError(f"{flag} {value!r}: name your shell, one of {', '.join(SHELLS)}")
    return value


def _show_version(value: bool) -> None:
    if value:
        out(version_line())
        raise typer.Exit(0)


def _show_completion(ctx: typer.Context, value: str | None) -> None:
    if value is None or ctx.resilient_parsing:
        return
    shell = completion_shell(value, "--show-completion")
    out(get_completion_script(prog_name=PROG, complete_var=COMPLETE_VAR, shell=shell))
    raise typer.Exit(0)


def _install_completion(ctx: typer.Context, value: str | None) -> None:
    if value is None or ctx.resilient_parsing:
        return
    shell = completion_shell(value, "--install-completion")
    _shell, path = install(shell=shell, prog_name=PROG, complete_var=COMPLETE_VAR)
    out(f"{shell} completion installed in {path}; it takes effect in a new shell")
    raise typer.Exit(0)


@app.callback()
def _options(
    _version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_show_version,
            is_eager=True,
            expose_value=False,
            help="Print sla-sync's version and exit.",
        ),
    ] = False,
    _install: Annotated[
        str | None,
        typer.Option(
            "--install-completion",
            metavar="SHELL",
            callback=_install_completion,
            is_eager=True,
            expose_value=False,
            help=f"Install tab completion for SHELL ({', '.join(SHELLS)}).",
        ),
    ] = None,
    _show: Annotated[
        str | None,
        typer.Option(
            "--show-completion",
            metavar="SHELL",
            callback=_show_completion,
            is_eager=True,
            expose_value=False,
            help="Print the completion script for SHELL, to copy it or customize the installation.",
        ),
    ] = None,
) -> None:
    # No docstring: the application's help above is the one ``--help`` shows.
    pass


# -- options more than one command takes ---------------------------------------------------

StateOpt = Annotated[
    str | None,
    typer.Option("--state",
                 help="State store: an SQLite file or a postgresql:// URL. "
                      "Default: $SLA_SYNC_STATE or ~/.local/state/sla-sync/state.sqlite."),
]
NowOpt = Annotated[
    str | None, typer.Option(help="Pretend it is this instant (ISO 8601 with timezone), for simulations. Default: now.")
]
LogFormatOpt = Annotated[str, typer.Option("--log-format", help="plain or json log lines on stderr")]
InputOpt = Annotated[
    str | None,
    typer.Option("--input", "-i",
                 help="Neutral issues (JSON Lines, e.g. from `sla-sync export`); - for stdin. "
                      "Default: fetch from the policy's tracker."),
]
SinceOpt = Annotated[
    str | None, typer.Option(help="Only issues created at or after this date (YYYY-MM-DD, 00:00 UTC) or ISO instant.")
]
UntilOpt = Annotated[
    str | None, typer.Option(help="Only issues created before this date or instant. Default: --now.")
]
OutputOpt = Annotated[str, typer.Option("--output", "-o", help="Where to write; - for stdout.")]
PolicyOpt = Annotated[Path, typer.Option("--policy", "-p", help="The policy file.", show_default=False)]


class InputError(UserError):
    """A bad input line; its message starts with FILE:LINE."""


def known_kinds() -> list[str]:
    """Tracker kinds of the installed adapters (entry-point group ``sla_sync.adapters``)."""
    found = {ep.name for ep in entry_points(group="sla_sync.adapters")}
    return sorted(found | set(BUILTIN_KINDS))


def err(message: str) -> None:
    """A line on standard error, with every known secret redacted."""
    typer.echo(REDACTOR(message), err=True)


def out(text: str) -> None:
    """Text on standard output, with every known secret redacted."""
    typer.echo(REDACTOR(text))


def tracker_for(policy: Policy) -> Tracker:
    """The policy's tracker, from the environment, its secret known to the redactor."""
    from ..runner import open_redacted  # the pass's modules (the state store, the sync): not for offline commands

    return open_redacted(policy, os.environ)


def parse_now(value: str | None) -> int:
    """``--now``: an ISO instant with a timezone; default the current time."""
    if value is None:
        return int(datetime.now(UTC).timestamp())
    try:
        return parse_timestamp(value, "--now")
    except ValueError as exc:
        raise UserError(str(exc)) from None


def parse_bound(value: str | None, flag: str) -> int | None:
    """``--since``/``--until``: a date (00:00 UTC that day) or an ISO instant with a timezone."""
    if value is None:
        return None
    try:
        return parse_instant(value)
    except NoTimezoneError:
        raise UserError(f"{flag} {value!r} has no timezone: add Z or an offset like +01:00, or write a date") from None
    except ValueError:
        raise UserError(
            f"{flag} {value!r}: write a date like 2026-11-01 or an instant like 2026-11-01T00:00:00Z"
        ) from None


def period_of(since: str | None, until: str | None, now: int) -> Period:
    """``[--since, --until)``; ``--until`` defaults to ``--now``.  An empty period is a mistake."""
    start = parse_bound(since, "--since")
    end = parse_bound(until, "--until") if until is not None else now
    if start is not None and end is not None and start >= end:
        bound = f"--until {until}" if until is not None else f"--now ({iso_utc(now)}, the default --until)"
        raise UserError(f"--since {since} is not before {bound}: the period would be empty")
    return Period(start, end)


def choice(value: str, allowed: tuple[str, ...], flag: str) -> str:
    """``value`` if it is one of ``allowed``, else a ``UserError`` naming the flag."""
    if value not in allowed:
        raise UserError(f"{flag} {value!r}: use one of {', '.join(allowed)}")
    return value


def read_policy(path: Path) -> Policy:
    """Load a policy file, with the installed tracker kinds known."""
    return load_policy(path, known_kinds())


def setup_logs(fmt: str) -> None:
    """``--log-format``: plain or JSON log lines on stderr."""
    if fmt not in ("plain", "json"):
        raise UserError(f"--log-format {fmt!r}: use plain or json")
    from ..observe import configure_logging  # with Prometheus and the sync: only the commands that log passes

    configure_logging(fmt)


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
def progress_reporter(label: str) -> Iterator[Callable[[int, int], None]]:
    """A progress bar on a terminal, nothing otherwise (the summary line follows)."""
    if not sys.stderr.isatty():
        yield lambda done, total: None
        return
    from rich.console import Console  # rich only on a terminal: it is slow to import
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=Console(stderr=True), transient=True,
    ) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


@contextmanager
def counter(label: str) -> Iterator[Callable[[int], None]]:
    """A live count on a terminal (stderr), nothing otherwise."""
    if not sys.stderr.isatty():
        yield lambda count: None
        return
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(
        SpinnerColumn(), TextColumn("{task.description}: {task.completed} issues"), TimeElapsedColumn(),
        console=Console(stderr=True), transient=True,
    ) as bar:
        task = bar.add_task(label, total=None)

        def update(count: int) -> None:
            bar.update(task, completed=count)

        yield update
