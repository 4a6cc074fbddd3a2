"""A pass as the commands run it: the tracker opened with its secret, the pass,
then its log lines and metrics.  ``sync`` is the pass itself; this module adds
what surrounds it (``observe``'s logs and metrics, the tracker's secret kept out
of every line)."""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Mapping

from .calendar import iso_utc
from .errors import AuthError, LockedError, SlaSyncError, UserError
from .notify import AppriseSender, Sender, channel_url
from .observe import LOGGER, Metrics, add_secret
from .plan import describe_change
from .policy import Policy
from .state import Store
from .sync import PassResult, Progress, run_pass
from .tracker import Tracker, open_tracker, tracker_secret


def new_run_id() -> str:
    """A short random id that every log line of the pass carries."""
    return uuid.uuid4().hex[:12]


def open_redacted(policy: Policy, env: Mapping[str, str]) -> Tracker:
    """The policy's tracker, with its secret (and Jira Cloud's account e-mail, for
    the Basic form) known to the redactor before any request is made."""
    user_env = getattr(policy.tracker, "user_env", None)  # Jira Cloud's e-mail: Basic base64(e-mail:token)
    add_secret(tracker_secret(policy, env), env.get(user_env) if user_env else None)
    return open_tracker(policy, env)


def open_sender(policy: Policy, env: Mapping[str, str]) -> Sender | None:
    """The policy's channels behind Apprise, every URL that can be read already
    known to the redactor (one that cannot is an error of the messages for it,
    when the pass sends them); ``None`` without channels."""
    if not policy.notify.channels:
        return None
    for name in policy.notify.channels:
        with contextlib.suppress(UserError):  # reported, per message, by the pass that tries to send
            channel_url(policy.notify, name, env)
    return AppriseSender(policy.notify, env)


def one_pass(
    policy: Policy,
    store: Store,
    now: int,
    *,
    apply: bool,
    env: Mapping[str, str],
    metrics: Metrics | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    progress: Progress | None = None,
    full: bool = False,
) -> PassResult:
    """One pass with its logs and metrics; the secret comes from ``env`` or a file."""
    tracker = open_redacted(policy, env)
    sender = open_sender(policy, env) if apply else None
    run_id = new_run_id()
    log = logging.LoggerAdapter(logging.getLogger(LOGGER), {"run_id": run_id, "policy": policy.name, "issue": "-"})
    started = time.monotonic()
    try:
        result = run_pass(tracker, policy, store, now, apply=apply, run_id=run_id, full=full,
                          should_stop=should_stop, progress=progress, sender=sender, tallies=metrics is not None)
    except SlaSyncError as exc:  # shown once: by the command line, or logged by watch
        kind = "auth" if isinstance(exc, AuthError) else "locked" if isinstance(exc, LockedError) else "fetch"
        if metrics is not None:
            metrics.failed(policy.name, kind, time.monotonic() - started)
        raise
    if metrics is not None:
        metrics.observe(result, time.monotonic() - started, time.time())
    if apply:
        log_outcomes(log, result)
    return result


def summary(result: PassResult) -> str:
    """The pass in one line: what was fetched, updated, fired, written, kept, failed."""
    c = result.counts()
    writes = ", ".join(f"{k} {v}" for k, v in sorted(c["writes"].items())) or "none"
    marked = f" ({c['steps_marked']} of them only marked: backlog_steps)" if c["steps_marked"] else ""
    line = (
        f"{result.policy}: {c['fetched']} issues fetched ({c['refetched']} with new history), "
        f"{c['issues_applied']} updated, {c['steps_fired']} escalation steps fired{marked}, writes: {writes}, "
        f"{c['kept']} manual changes kept, {c['errors']} errors"
    )
    if c["forged_markers"]:
        line += f", {c['forged_markers']} forged or manual markers ignored"
    if c["dropped"]:
        line += f", {c['dropped']} dropped (not found on the tracker when written: deleted or moved)"
    if c["messages_sent"] or c["messages_waiting"]:
        held = " (outside working time)" if result.quiet else ""
        line += f", {c['messages_sent']} messages sent, {c['messages_waiting']} waiting{held}"
    line += ", full pass" if result.full else f", delta pass ({result.due} more issues due by time)"
    if result.stopped:
        line += " (stopped early)"
    if result.upcoming is not None:
        u = result.upcoming
        line += f"; next change due {iso_utc(u.at)} ({u.key}: {u.why})"
    return line


def wake_after(every: float, upcoming: int | None, now: float, margin: float = 1.0) -> float:
    """How long ``watch`` sleeps after a pass: ``every``, or less when the next
    change (``PassResult.upcoming``, an instant) comes sooner; ``margin`` seconds
    after it, so the pass that wakes finds the threshold crossed.  Never negative."""
    if upcoming is None:
        return every
    return max(0.0, min(every, upcoming - now + margin))


def log_outcomes(log: logging.LoggerAdapter[logging.Logger], result: PassResult) -> None:
    """A line per written issue, per error and per kept manual change, then the summary."""
    base = dict(log.extra or {})
    for o in result.outcomes:
        extra = {**base, "issue": o.key}
        if o.applied:
            log.logger.info("wrote %s", "; ".join(describe_change(c) for c in o.plan.changes),
                            extra={**extra, "changes": [c.kind for c in o.plan.changes]})
        if o.error:
            log.logger.error("%s", o.error, extra={**extra, "kind": "issue"})
        for note in o.plan.kept:
            log.logger.warning("%s", note, extra=extra)
    log.info("%s", summary(result))
