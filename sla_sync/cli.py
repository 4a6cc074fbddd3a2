"""The ``sla-sync`` command line: the only module that prints.

Exit codes: 0 success; 1 done, but some input was skipped or some issue failed;
2 bad input or settings (the message says which file, line and key, and what to do).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib.metadata import entry_points
from pathlib import Path
from typing import IO, Annotated

import typer
from typer.exceptions import TyperException

from .errors import UserError
from .neutral import LineError, dump_line, parse_instant, read_issues, sla_to_json
from .policy import Policy, PolicyError, json_schema, load_policy
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
) -> None:
    """Validate policy files: every problem as FILE:LINE:COL: message.

    Exits 0 when every file is valid, 2 otherwise.
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
                    raise UserError(f"{item}\n(fix the line, or pass --skip-invalid to skip bad lines)")
                err(str(item))
                skipped += 1
                continue
            out.write(dump_line(sla_to_json(evaluate_issue(item, policy, at))))
    if skipped:
        err(f"skipped {skipped} invalid line{'s' if skipped != 1 else ''}")
        raise typer.Exit(1)


@app.command()
def schema() -> None:
    """Print the policy file's JSON Schema (for editors: see the README)."""
    typer.echo(json.dumps(json_schema(), indent=2))


def main() -> None:
    """Console entry point: user errors are a message and exit 2, never a traceback."""
    try:
        code = app(standalone_mode=False)
    except UserError as exc:
        err(f"sla-sync: {exc}" if not isinstance(exc, PolicyError) else str(exc))
        sys.exit(2)
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


if __name__ == "__main__":  # pragma: no cover
    main()
