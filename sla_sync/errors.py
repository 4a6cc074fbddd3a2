"""The exception tree of sla-sync.

``SlaSyncError``
    the root: anything sla-sync raises on purpose.
``UserError(SlaSyncError)``
    the user can fix it (a policy file, an input line, a flag, a setting); the CLI
    prints the message, with no traceback, and exits 2.
``TrackerError(SlaSyncError)``
    a tracker refused or failed a request after the retries; the message names the
    tracker, the issue where there is one, and what to do.
``PartialWriteError(TrackerError)``
    part of one issue's changes was refused, the rest written (``steps_landed``).
``GoneError(TrackerError)``
    the tracker answered "not found" about an issue (deleted, moved, out of view).
``AuthError(TrackerError, UserError)``
    the tracker rejected the credentials ("authentication failed for <url>").
``LockedError(UserError)``
    another pass holds the lock of the same policy.
"""

from __future__ import annotations


class SlaSyncError(Exception):
    """Root of every error sla-sync raises on purpose."""


class UserError(SlaSyncError):
    """An error the user can fix; shown as its message, exit code 2."""


class TrackerError(SlaSyncError):
    """A tracker request failed for good (after the bounded retries)."""


class PartialWriteError(TrackerError):
    """The tracker refused part of an issue's changes and the rest was written;
    ``steps_landed`` says the step notes and marker labels were among what landed."""

    def __init__(self, message: str, *, steps_landed: bool) -> None:
        super().__init__(message)
        self.steps_landed = steps_landed


class GoneError(TrackerError):
    """The tracker answered "not found" (404) about one issue: deleted, moved to
    another project, or no longer visible to the API user."""


class AuthError(TrackerError, UserError):
    """The tracker rejected the API key or token."""


class LockedError(UserError):
    """Another pass holds the lock of this policy."""
