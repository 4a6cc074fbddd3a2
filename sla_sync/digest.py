"""Digests: one scheduled message per ``digest:`` entry listing the open issues at
risk and breached, and the day's counts.

When one is due (``due_instant``, pure):

=====================================================  ==========================
the latest scheduled instant at or before ``now``...    the pass
=====================================================  ==========================
is no later than the one last sent (the store's)       sends nothing
falls on a holiday of the digest's calendar            sends nothing
otherwise                                              sends it, then records it
=====================================================  ==========================

Only the latest scheduled instant can be due: an earlier one is already a whole
period old (the next one has come), so a digest missed yesterday is never sent
today, and a pass sends at most one per schedule.  The cron expression is read in
the calendar's timezone (UTC without one), so 09:00 stays 09:00 across DST; a
wall-clock time that a fall-back hour repeats counts once (its first occurrence),
one that a spring-forward gap skips fires when the gap ends.

What it lists (``digest_message``, pure): an issue is open while one of its metrics
has not stopped; it is *breached* when an unstopped metric is breached, else *at
risk* when a running metric is at risk.  Breached issues come first, the longest
breached first, then those at risk, the soonest due first.  The day's counts are of
the open issues in view, on the local date of ``now`` in the digest's calendar.

Sending (``send_due_digests``) records the scheduled instant only after the channel
accepted the message; a failure is one line in the pass's errors, and the next
pass tries again.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol
from zoneinfo import ZoneInfo

from .calendar import Calendar
from .model import IssueSla, SlaState, State
from .notify import Message, Sender, SendError, time_left
from .policy import Digest, Policy
from .redact import REDACTOR
from .state import Store

UTC_ZONE = ZoneInfo("UTC")
NEVER = 2**62  # sorts a metric without a due instant last


class Listed(Protocol):
    """What a digest reads of one issue of a pass (``sync.Outcome``)."""

    @property
    def key(self) -> str: ...
    @property
    def sla(self) -> IssueSla: ...
    @property
    def title(self) -> str: ...
    @property
    def assignee(self) -> str | None: ...


class PassView(Protocol):
    """What ``send_due_digests`` reads and adds to of a pass (``sync.PassResult``)."""

    @property
    def outcomes(self) -> Sequence[Listed]: ...
    @property
    def errors(self) -> list[str]: ...


# -- when (pure) -------------------------------------------------------------------------


def schedule_key(digest: Digest) -> str:
    """What the store records a schedule's last digest under: channel, cron and calendar."""
    where = f" in {digest.calendar_name}" if digest.calendar_name else ""
    return f"{digest.channel} {digest.cron}{where}"


def latest_scheduled(cron: str, tz: ZoneInfo, now: int) -> int | None:
    """The latest instant at or before ``now`` that the cron expression names, read
    in ``tz``; a wall-clock time repeated by a fall-back hour counts at its first
    occurrence.  ``None`` when the expression names no date at all (30 February)."""
    from croniter import CroniterBadDateError, croniter  # only policies with a digest need it

    times = croniter(cron, datetime.fromtimestamp(now + 1, tz))  # at or before: strictly before now + 1s
    try:
        latest = times.get_prev(datetime)
    except CroniterBadDateError:
        return None
    try:
        before = times.get_prev(datetime)
    except CroniterBadDateError:
        return int(latest.timestamp())
    if before.replace(tzinfo=None) == latest.replace(tzinfo=None):  # the same wall time, twice
        latest = before
    return int(latest.timestamp())


def due_instant(digest: Digest, last_sent_for: int | None, now: int) -> int | None:
    """The scheduled instant whose digest a pass at ``now`` sends, or ``None`` (see
    the module docstring): the latest one at or before ``now``, if it is later than
    ``last_sent_for`` and not on a holiday of the digest's calendar."""
    calendar = digest.calendar
    latest = latest_scheduled(digest.cron, calendar.tz if calendar is not None else UTC_ZONE, now)
    if latest is None or (last_sent_for is not None and latest <= last_sent_for):
        return None
    if calendar is not None and calendar.is_holiday(calendar.local_date(latest)):
        return None
    return latest


# -- what (pure) -------------------------------------------------------------------------


def _open(sla: IssueSla) -> bool:
    return any(m.stopped_at is None for m in sla.metrics.values())


def _when(metric: SlaState) -> int:
    """When a listed metric breached, or is due; the sort key of both lists."""
    at = metric.breached_at if metric.state is State.BREACHED else metric.due_at
    return NEVER if at is None else at


def _breached(sla: IssueSla) -> list[SlaState]:
    """The unstopped breached metrics, the longest breached first."""
    found = [m for m in sla.metrics.values() if m.state is State.BREACHED and m.stopped_at is None]
    return sorted(found, key=lambda m: (_when(m), m.metric))


def _at_risk(sla: IssueSla) -> list[SlaState]:
    """The running metrics at risk, the soonest due first."""
    found = [m for m in sla.metrics.values() if m.state is State.RUNNING and m.at_risk]
    return sorted(found, key=lambda m: (_when(m), m.metric))


def _local(instant: int, tz: ZoneInfo) -> str:
    return datetime.fromtimestamp(instant, tz).strftime("%Y-%m-%d %H:%M %Z")


def _metric_part(metric: SlaState, tz: ZoneInfo) -> str:
    """``resolution 2h over (target 8h)``, ``first_response 10m left of 1h, due 2026-11-03 12:10 UTC``."""
    shown = metric.due_at is not None and metric.state is not State.BREACHED
    due = f", due {_local(metric.due_at, tz)}" if shown and metric.due_at is not None else ""
    return f"{metric.metric} {time_left(metric)}{due}"


def _entry(policy: Policy, item: Listed, metrics: list[SlaState], tz: ZoneInfo) -> list[str]:
    title = f" {item.title}" if item.title else ""
    parts = ", ".join(_metric_part(m, tz) for m in metrics)
    who = f"assignee {item.assignee}" if item.assignee else "unassigned"
    lines = [f"- {item.key}{title} [{item.sla.level}]: {parts}; {who}"]
    link = policy.tracker.issue_url(item.key) if policy.tracker is not None else None
    return lines + ([f"  {link}"] if link else [])


def digest_message(
    policy: Policy, outcomes: Sequence[Listed], now: int, channel: str, calendar: Calendar | None
) -> Message:
    """The digest of a pass's issues at ``now`` for one channel; ``calendar`` gives
    the timezone of its day and of the due times (UTC without one)."""
    tz = calendar.tz if calendar is not None else UTC_ZONE
    day = datetime.fromtimestamp(now, tz).date()
    opened = [o for o in outcomes if _open(o.sla)]
    breached: list[tuple[Listed, list[SlaState]]] = []
    risky: list[tuple[Listed, list[SlaState]]] = []
    for o in opened:
        over, near = _breached(o.sla), _at_risk(o.sla)
        if over:
            breached.append((o, over + near))
        elif near:
            risky.append((o, near))
    breached.sort(key=lambda pair: (_when(pair[1][0]), pair[0].key))
    risky.sort(key=lambda pair: (_when(pair[1][0]), pair[0].key))
    today = sum(any(m.breached_at is not None and datetime.fromtimestamp(m.breached_at, tz).date() == day
                    for m in o.sla.metrics.values()) for o in opened)
    lines: list[str] = []
    for heading, group in ((f"Breached ({len(breached)}), the longest breached first:", breached),
                           (f"At risk ({len(risky)}), the soonest due first:", risky)):
        if group:
            lines.append(heading)
            lines += [line for o, metrics in group for line in _entry(policy, o, metrics, tz)]
    lines += [] if lines else ["No issue at risk or breached."]
    lines += ["", f"{day.isoformat()} ({tz.key}): {len(opened)} open, {len(risky)} at risk, "
                  f"{len(breached)} breached, {today} breached today."]
    title = f"[{policy.name}] SLA digest {day.isoformat()}: {len(risky)} at risk, {len(breached)} breached"
    return Message(channel, title, "\n".join(lines))


# -- sending -----------------------------------------------------------------------------


def send_due_digests(policy: Policy, store: Store, sender: Sender, result: PassView, now: int) -> int:
    """Send each schedule's due digest (at most one each) built from the pass's
    issues, recording it once the channel accepted it; a failure is a line in
    ``result.errors`` and is tried again next pass.  Returns how many were sent."""
    sent = 0
    for digest in policy.digests:
        schedule = schedule_key(digest)
        due = due_instant(digest, store.digest_sent_for(policy.state_key, schedule), now)
        if due is None:
            continue
        try:
            sender.send(digest_message(policy, result.outcomes, now, digest.channel, digest.calendar))
        except SendError as exc:
            result.errors.append(REDACTOR(f"digest {digest.number} ({schedule}): {exc}"))
            continue
        store.set_digest_sent_for(policy.state_key, schedule, due)
        sent += 1
    return sent
