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
- assignee: once a step assigned someone, a person's later reassignment is kept
  (or undone with ``override``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from .evidence import Evidence
from .model import Change, ChangeKind, IssueSla, Observed, SlaState, State, Written
from .policy import Policy, Step, managed_labels, marker


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

    @property
    def empty(self) -> bool:
        return not self.changes


def step_due(step: Step, metric: SlaState | None) -> bool:
    """Whether an escalation step's condition holds for its metric now."""
    if metric is None or metric.stopped_at is not None:
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
    assignee = written.assignee
    for step in policy.steps:
        mark = marker(prefix, step.number)
        if step.number in evidence.fired:
            if mark not in observed.labels and mark not in add:
                add.append(mark)  # a person removed it: put sla-sync's record back, nothing fires again
            continue
        forged = mark in observed.labels
        if forged:
            forged_steps.append(step.number)
            kept.append(f"forged or manual marker {mark} ignored (sla-sync did not set it)")
        if not step_due(step, sla.metrics.get(step.metric)):
            continue
        fired.append(step.number)
        spec = step.spec
        add += [lbl for lbl in spec.add_labels if lbl not in observed.labels and lbl not in add]
        if forged:
            remove.append(mark)  # not sla-sync's: taken off now, sla-sync's own marker goes on next pass
        elif mark not in add:
            add.append(mark)
        if spec.watchers:
            step_changes.append(Change(ChangeKind.WATCHERS, values=tuple(spec.watchers), step=step.number))
        if spec.assign:
            step_changes.append(Change(ChangeKind.ASSIGN, value=spec.assign, step=step.number))
            assignee = spec.assign
        if spec.comment:
            step_changes.append(Change(ChangeKind.COMMENT, value=spec.comment, private=spec.private, step=step.number))
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
    changes += step_changes
    return IssuePlan(sla.key, sla.level, tuple(changes), tuple(kept), tuple(fired), new_written, tuple(forged_steps))


def describe_change(change: Change) -> str:
    """One change in words, as the plan table and the log lines show it."""
    step = f" (step {change.step})" if change.step else ""
    if change.kind is ChangeKind.COMMENT:
        where = "private" if change.private else "public"
        return f"{where} note{step}: {change.value}"
    if change.values:
        return f"{change.kind.replace('_', ' ')}{step}: {', '.join(change.values)}"
    return f"{change.kind.replace('_', ' ')}{step}: {change.value}"
