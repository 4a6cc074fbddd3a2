"""Is this evidence ours?  The one place that decides what sla-sync believes.

sla-sync believes only what its own API user produced: a step marker counts as a
fired step when the issue's history shows that sla-sync's user added it, or when
the state store recorded the step as fired; a due date or an assignee is
sla-sync's when the history shows sla-sync's user set it.  Anything else is a
person's: a value is respected, a marker is ignored (and reported).  A step on a
repeating metric fires once per cycle: it counts as fired when the store recorded
it in the metric's current cycle, or the history shows sla-sync's user adding its
marker since that cycle opened.

The adapters say who did what (``Event.by_self``: the event's author is the
tracker's API user, compared by user id, never by display name); this module
reads it.  Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .model import Issue
from .policy import Policy, marker


@dataclass(frozen=True)
class Evidence:
    """What one issue's history and the store say sla-sync did to it."""

    fired: frozenset[int] = frozenset()  # steps sla-sync fired (store, or its own marker in the history)
    due_date_by_person: bool = False  # the current due date was set by someone else
    assignee_by_person: bool = False  # the current assignee was set by someone else
    backlog: bool = False  # sla-sync meets the issue for the first time, created before its last pass
    stale: frozenset[int] = frozenset()  # steps on repeating metrics whose marker on the issue is sla-sync's
    # from an earlier cycle (taken off when a new cycle opens)


def _marker_adds(issue: Issue, policy: Policy) -> dict[int, list[tuple[int, bool]]]:
    """Step → (when, by sla-sync's user) of each event that added its marker."""
    wanted = {marker(policy.writeback.label_prefix, s.number): s.number for s in policy.steps}
    out: dict[int, list[tuple[int, bool]]] = {}
    for e in issue.events:
        if e.kind == "label":
            for label in e.added:
                if label in wanted:
                    out.setdefault(wanted[label], []).append((e.at, e.by_self))
    return out


def markers_added_by_us(issue: Issue, policy: Policy, cycles: Mapping[int, tuple[int, int]] | None = None,
                        ) -> frozenset[int]:
    """The steps whose marker label sla-sync's own user added at some time; for a
    step on a repeating metric, since its current cycle opened (``cycles``: step →
    (cycle, when it opened), see ``plan.step_cycles``)."""
    cycles = cycles or {}
    repeating = {s.number for s in policy.steps if s.repeats}
    out = set()
    for step, adds in _marker_adds(issue, policy).items():
        since = cycles[step][1] if step in cycles else None
        if step in repeating and since is None:
            continue  # no cycle yet: nothing of it can have fired
        if any(mine and (since is None or at >= since) for at, mine in adds):
            out.add(step)
    return frozenset(out)


def recorded_fired(policy: Policy, recorded: Mapping[int, int], cycles: Mapping[int, tuple[int, int]],
                   ) -> frozenset[int]:
    """The steps the store recorded as fired (step → the cycle it fired in, 0 for a
    step that fires once per issue) that count now: a step on a repeating metric
    only if it fired in the metric's current cycle."""
    repeating = {s.number for s in policy.steps if s.repeats}
    return frozenset(n for n, cycle in recorded.items()
                     if n not in repeating or (n in cycles and cycles[n][0] == cycle))


def set_by_person(issue: Issue, name: str, current: str | None) -> bool:
    """Whether a person set the current value of ``due_date`` or ``assignee``:
    the last change of it in the history was not sla-sync's, or, with no change
    recorded, the issue was created with it (by its author)."""
    if current is None:
        return False
    changes = [e for e in issue.events if e.kind == "field" and e.field == name]
    return not changes[-1].by_self if changes else True


def evidence_of(issue: Issue, policy: Policy, recorded: Mapping[int, int] | None = None,
                cycles: Mapping[int, tuple[int, int]] | None = None, *, backlog: bool = False) -> Evidence:
    """The evidence for one issue: its history, and the steps the store recorded
    (step → cycle, see ``recorded_fired``); ``cycles``: the current cycle of each
    step on a repeating metric (``plan.step_cycles``).  ``backlog``: the store has
    never seen the issue, and it is older than the store's cursor (or the store is
    new): an existing issue being adopted."""
    cycles, recorded = cycles or {}, recorded or {}
    fired = markers_added_by_us(issue, policy, cycles) | recorded_fired(policy, recorded, cycles)
    adds = _marker_adds(issue, policy)
    stale = frozenset(s.number for s in policy.steps if s.repeats and s.number not in fired
                      and ((s.number in adds and adds[s.number][-1][1]) or s.number in recorded))
    return Evidence(
        fired=fired,
        stale=stale,
        due_date_by_person=set_by_person(issue, "due_date", issue.due_date),
        assignee_by_person=set_by_person(issue, "assignee", issue.assignee),
        backlog=backlog,
    )
