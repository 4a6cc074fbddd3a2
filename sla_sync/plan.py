"""Desired vs observed → the changes one issue needs.  Pure: no I/O, no clock.

``plan_issue`` takes what the clocks say (``IssueSla``), what the tracker holds now
(``Observed``) and what sla-sync wrote last time (``Written``, from the state
store), and returns the ``Change``s plus what it decided not to touch.

The rules, as a decision table per managed value:

- due date: the local date (in the level's calendar timezone) of the ``due_at`` of
  the metric named by ``writeback.due_date``; left alone while that metric is
  paused or met.  A date a person set is kept (``on_manual_change: keep``, the
  default) and reported, or overwritten (``override``): a person's date is one
  that differs from what the store says sla-sync wrote, or, when the store does
  not know, one the tracker's history says a person set (``Evidence``).
- labels: ``<prefix><level>``, ``<prefix>at-risk`` while a running metric is at
  risk, ``<prefix>breached`` once a metric is breached; other levels' labels and
  stale state labels are removed.  Nothing else is ever removed, but a forged marker.

  ========================  ==============  ===========================================
  step N                    marker on issue  the plan
  ========================  ==============  ===========================================
  fired (store or history)  yes             nothing
  fired (store or history)  no              the marker is put back (a person removed it)
  not fired, due            no              the actions, and the marker
  not fired, due            yes (forged)    the actions; the forged marker taken off
                                            (sla-sync's own goes on next pass); reported
  not fired, not due        yes (forged)    nothing; reported
  not fired, not due        no              nothing
  ========================  ==============  ===========================================

  "Fired" is ``Evidence.fired``: the steps the state store recorded, and those whose
  marker the history shows sla-sync's own API user added, so neither a lost store
  nor a marker a customer set makes a step fire twice or never.  A step's
  condition needs its metric not stopped.

  A step on a repeating metric fires once per cycle: "fired" means fired in the
  metric's current cycle (the store records the cycle; the history shows its
  marker added since the cycle opened).  When a new cycle opens, sla-sync's marker
  of the earlier one comes off (``Evidence.stale``), and the step fires, marker
  and all, on a later pass: a firing always adds its marker anew, which is what
  makes it visible in the history.
- assignee: once a step assigned someone, a person's later reassignment is kept
  (or undone with ``override``).
- several steps due at once (``writeback.backlog_steps``): when more than one
  unfired step is due, or the issue is one sla-sync adopts (``Evidence.backlog``:
  never seen, older than the store's last pass) with a step due, the pass catches
  up: ``last`` runs only the last due step's actions and marks the earlier ones as
  fired (their markers go on, nothing else); ``all`` runs every due step in order;
  ``mark`` marks every due step without acting.  One step coming due in the
  ordinary course always acts.
- notifications: each acting step's ``notify`` channels get one message
  (``IssuePlan.notices``); the sync sends them after the tracker writes landed.
- remaining time (``writeback.remaining_field``): the working time left of the
  ``due_date`` metric in hours, rounded down to ``remaining_step``, while that
  metric runs, is paused or is breached; written only when that value changes.
- health status (GitLab, ``writeback.health_status``): ``at_risk`` once a metric
  is breached, ``needs_attention`` while a running one is at risk, else
  ``on_track``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from .evidence import Evidence
from .model import Change, ChangeKind, IssueSla, Observed, SlaState, State, Written
from .policy import Policy, Step, managed_labels, marker


@dataclass(frozen=True, order=True)
class Notice:
    """One message a fired step sends: to one channel (``cycle``: the cycle it
    fired in, for a step on a repeating metric, else 0)."""

    step: int
    channel: str
    cycle: int = 0


@dataclass(frozen=True)
class IssuePlan:
    """The changes one issue needs, and the manual changes respected."""

    key: str
    level: str
    changes: tuple[Change, ...] = ()
    kept: tuple[str, ...] = ()
    fired: tuple[int, ...] = ()
    written: Written = field(default_factory=Written)
    forged: tuple[int, ...] = ()  # steps whose marker is on the issue but not by sla-sync (reported in ``kept``)
    marked: tuple[int, ...] = ()  # steps recorded as fired without their actions (``backlog_steps``); also in fired
    notices: tuple[Notice, ...] = ()  # the messages the acting steps send, after the writes landed
    backlog: str | None = None  # the backlog_steps mode a catch-up used, if the pass caught up
    cycles: Mapping[int, int] = field(default_factory=dict)  # step → its current cycle, for steps on repeating metrics

    @property
    def empty(self) -> bool:
        return not self.changes


def step_cycles(policy: Policy, sla: IssueSla) -> dict[int, tuple[int, int]]:
    """Step → (its metric's current cycle, when it opened), for each step on a
    repeating metric that has started one (a step fires once per cycle; the
    others once per issue)."""
    out = {}
    for step in policy.steps:
        metric = sla.metrics.get(step.metric)
        if step.repeats and metric is not None and metric.cycles and metric.started_at is not None:
            out[step.number] = (metric.cycles, metric.started_at)
    return out


def step_due(step: Step, metric: SlaState | None) -> bool:
    """Whether an escalation step's condition holds for its metric now."""
    if metric is None or metric.stopped_at is not None or metric.state is State.NOT_STARTED:
        return False
    if step.share is None:
        return metric.state is State.BREACHED
    return metric.elapsed_s * 100 >= step.share * metric.target_s


def _due_date(sla: IssueSla, policy: Policy) -> tuple[str | None, str | None]:
    """The desired due date and exact instant, or ``None`` to leave them alone."""
    metric = sla.metrics.get(policy.writeback.due_metric)
    if metric is None or metric.due_at is None or metric.state not in (State.RUNNING, State.BREACHED):
        return None, None
    local = datetime.fromtimestamp(metric.due_at, ZoneInfo(sla.timezone))  # the revision's calendar
    return local.date().isoformat(), datetime.fromtimestamp(metric.due_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _respect(
    what: str, desired: str | None, observed: str | None, written: str | None, override: bool,
    *, by_person: bool = False,
) -> tuple[bool, str | None]:
    """Write ``desired``?  And the report line when a person's value is kept.

    A person's value is one that differs from what sla-sync wrote, or, when the
    store does not know what it wrote, one the tracker's history says a person set."""
    if desired is None or desired == observed:
        return False, None
    if override:
        return True, None
    if written is not None and observed != written:
        return False, f"{what} changed by hand to {observed or 'nothing'} (sla-sync wrote {written}): kept"
    if written is None and by_person and observed is not None:
        return False, f"{what} set by hand to {observed} (not by sla-sync): kept"
    return True, None


def plan_issue(
    sla: IssueSla, observed: Observed, written: Written, policy: Policy, evidence: Evidence | None = None
) -> IssuePlan:
    """The changes that bring one issue to the state the policy asks for.

    ``evidence`` is what the history and the store say sla-sync did (which steps
    it fired, whether a person set the due date); without it, nothing is ours."""
    evidence = evidence if evidence is not None else Evidence()
    wb = policy.writeback
    prefix, override = wb.label_prefix, wb.override
    changes: list[Change] = []
    kept: list[str] = []
    new_written = written

    due, instant = _due_date(sla, policy)
    write, note = _respect("due date", due, observed.due_date, written.due_date, override,
                           by_person=evidence.due_date_by_person)
    if write:
        changes.append(Change(ChangeKind.DUE_DATE, value=due))
        new_written = Written(due, new_written.assignee, new_written.due_instant)
    kept += [note] if note else []
    if wb.due_field:
        write, note = _respect("due instant", instant, observed.due_instant, written.due_instant, override)
        if write:
            changes.append(Change(ChangeKind.DUE_INSTANT, value=instant))
            new_written = Written(new_written.due_date, new_written.assignee, instant)
        kept += [note] if note else []

    add: list[str] = []
    remove: list[str] = []
    if wb.labels:
        states = sla.metrics.values()
        desired = {f"{prefix}{sla.level}"}
        if any(m.state is State.RUNNING and m.at_risk for m in states):
            desired.add(f"{prefix}at-risk")
        if any(m.state is State.BREACHED for m in states):
            desired.add(f"{prefix}breached")
        owned = managed_labels(prefix, policy.levels)
        add += sorted(desired - observed.labels)
        remove += sorted((observed.labels & owned) - desired)

    fired: list[int] = []
    forged_steps: list[int] = []
    step_changes: list[Change] = []
    notices: list[Notice] = []
    assignee = written.assignee
    due_steps: list[Step] = []
    cycles = {n: c for n, (c, _) in step_cycles(policy, sla).items()}
    for step in policy.steps:
        mark = marker(prefix, step.number)
        if step.number in evidence.stale and mark in observed.labels:
            remove.append(mark)  # an earlier cycle's: off now, the step may fire in this cycle on a later pass
            continue
        if step.number in evidence.fired:
            if mark not in observed.labels and mark not in add:
                add.append(mark)  # a person removed it: put sla-sync's record back, nothing fires again
            continue
        if mark in observed.labels:
            forged_steps.append(step.number)
            kept.append(f"forged or manual marker {mark} ignored (sla-sync did not set it)")
        if step_due(step, sla.metrics.get(step.metric)):
            due_steps.append(step)
    backlog = wb.backlog if len(due_steps) > 1 or (evidence.backlog and due_steps) else None
    acting = _acting(due_steps, backlog)
    for step in due_steps:
        cycle = cycles.get(step.number)
        mark = marker(prefix, step.number)
        fired.append(step.number)
        spec = step.spec
        if step in acting:
            add += [lbl for lbl in spec.add_labels if lbl not in observed.labels and lbl not in add]
        if step.number in forged_steps:
            remove.append(mark)  # not sla-sync's: taken off now, sla-sync's own marker goes on next pass
        elif mark not in add:
            add.append(mark)
        if step not in acting:
            continue
        if spec.watchers:
            step_changes.append(Change(ChangeKind.WATCHERS, values=tuple(spec.watchers), step=step.number,
                                       cycle=cycle))
        if spec.assign:
            step_changes.append(Change(ChangeKind.ASSIGN, value=spec.assign, step=step.number, cycle=cycle))
            assignee = spec.assign
        if spec.comment:
            step_changes.append(Change(ChangeKind.COMMENT, value=spec.comment, private=spec.private, step=step.number,
                                       cycle=cycle))
        notices += [Notice(step.number, channel, cycle or 0) for channel in spec.notify]
    if not fired and written.assignee is not None and observed.assignee != written.assignee:
        if override:
            step_changes.append(Change(ChangeKind.ASSIGN, value=written.assignee))
        else:
            kept.append(f"assignee changed by hand to {observed.assignee or 'nobody'} "
                        f"(an escalation assigned {written.assignee}): kept")
            assignee = None  # the person owns it now; stop watching it
    if assignee != written.assignee:
        new_written = Written(new_written.due_date, assignee, new_written.due_instant)

    if add:
        changes.append(Change(ChangeKind.ADD_LABELS, values=tuple(add)))
    if remove:
        changes.append(Change(ChangeKind.REMOVE_LABELS, values=tuple(remove)))
    changes += _sla_fields(sla, observed, policy)
    changes += step_changes
    marked = tuple(s.number for s in due_steps if s not in acting)
    return IssuePlan(sla.key, sla.level, tuple(changes), tuple(kept), tuple(fired), new_written, tuple(forged_steps),
                     marked, tuple(notices), backlog, cycles)


def _acting(due: list[Step], backlog: str | None) -> list[Step]:
    """The due steps whose actions run (the others are only marked as fired)."""
    if backlog is None or backlog == "all":
        return due
    return due[-1:] if backlog == "last" else []


def format_hours(seconds: int) -> str:
    """Seconds as decimal hours, the way the remaining-time field holds them: ``3``,
    ``-1``, ``0.5``, ``1.25`` (two decimals at most)."""
    text = f"{seconds / 3600:.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def remaining_value(metric: SlaState | None, step_s: int) -> str | None:
    """The remaining-time field's value for the ``due_date`` metric: working hours
    left, rounded down to a whole ``step_s`` (so that it changes once per step), or
    ``None`` to leave the field alone (no such metric, or met)."""
    if metric is None or metric.state in (State.MET, State.NOT_STARTED):
        return None
    return format_hours(metric.remaining_s // step_s * step_s)


def health_of(sla: IssueSla) -> str:
    """GitLab's health status for an issue's SLA state."""
    states = sla.metrics.values()
    if any(m.state is State.BREACHED for m in states):
        return "at_risk"
    if any(m.state is State.RUNNING and m.at_risk for m in states):
        return "needs_attention"
    return "on_track"


def _same_number(a: str | None, b: str | None) -> bool:
    if a is None or b is None:
        return a == b
    try:
        return float(a) == float(b)
    except ValueError:
        return False


def _sla_fields(sla: IssueSla, observed: Observed, policy: Policy) -> list[Change]:
    """The remaining-time field and the health status, where the policy writes them
    (sla-sync owns both outright: a person's value is overwritten)."""
    wb = policy.writeback
    out: list[Change] = []
    if wb.remaining_field and wb.due_metric != "none":
        value = remaining_value(sla.metrics.get(wb.due_metric), wb.remaining_step_s)
        if value is not None and not _same_number(value, observed.remaining):
            out.append(Change(ChangeKind.REMAINING, value=value))
    if wb.health_status:
        health = health_of(sla)
        if health != observed.health_status:
            out.append(Change(ChangeKind.HEALTH_STATUS, value=health))
    return out


def describe_change(change: Change) -> str:
    """One change in words, as the plan table and the log lines show it."""
    cycle = f", cycle {change.cycle}" if change.cycle else ""
    step = f" (step {change.step}{cycle})" if change.step else ""
    if change.kind is ChangeKind.COMMENT:
        where = "private" if change.private else "public"
        return f"{where} note{step}: {change.value}"
    if change.kind is ChangeKind.REMAINING:
        return f"time left: {change.value}h (the remaining-time field)"
    if change.kind is ChangeKind.HEALTH_STATUS:
        return f"health status: {str(change.value).replace('_', ' ')}"
    if change.values:
        return f"{change.kind.replace('_', ' ')}{step}: {', '.join(change.values)}"
    return f"{change.kind.replace('_', ' ')}{step}: {change.value}"
