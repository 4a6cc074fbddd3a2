"""The ``sla-sync`` command line: the only package that prints.

- ``app``: the typer application, the options the commands share, and the I/O
  helpers (input and output files, ``--now``, policies, error lines);
- ``sync_commands``: ``check``, ``evaluate``, ``plan``, ``run``, ``watch``, ``schema``;
- ``reading``: ``export``, ``report``, ``explain``, ``compare``;
- ``render``: tables and JSON documents of plans, reports and comparisons;
- ``main``: the console entry point (exit codes, no tracebacks).

Exit codes: 0 success; 1 done, but some input was skipped or some issue failed;
2 bad input or settings (the message says which file, line and key, and what to do).
"""

from __future__ import annotations

from .main import app, main

__all__ = ["app", "main"]
