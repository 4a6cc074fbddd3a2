"""The console entry point: user errors are a message and exit 2, never a traceback."""

from __future__ import annotations

import sys

import typer
from typer._completion_classes import completion_init
from typer.exceptions import TyperException

from ..errors import SlaSyncError, UserError
from ..positions import PolicyError
from . import notify_commands, reading, sync_commands
from .app import COMPLETE_VAR, InputError, app, err

COMMANDS = (sync_commands, reading, notify_commands)  # importing them registers their commands on ``app``

__all__ = ["COMMANDS", "app", "main"]


def main() -> None:
    """Run the command line; exit 2 on bad input, 1 when a tracker failed for good."""
    completion_init()  # typer's answers to the completion scripts of ``--show-completion``
    try:
        code = app(standalone_mode=False, complete_var=COMPLETE_VAR)  # the variable the scripts set
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
