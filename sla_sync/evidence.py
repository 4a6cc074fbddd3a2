"""Is this evidence ours?  The one place that decides what sla-sync believes.

sla-sync believes only what its own API user produced: a step marker counts as a
fired step when the issue's history shows that sla-sync's user added it, or when
the state store recorded the step as fired; a due date or an assignee is
sla-sync's when the history shows sla-sync's user set it.  Anything else is a
person's: a value is respected, a marker is ignored (and reported).

The adapters say who did what (``Event.by_self``: the event's author is the
tracker's API user, compared by user id, never by display name); this module
reads it.  Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
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


def markers_added_by_us(issue: Issue, policy: Policy) -> frozenset[int]:
    """The steps whose marker label sla-sync's own user added at some time."""
    wanted = {marker(policy.writeback.label_prefix, s.number): s.number for s in policy.steps}
    return frozenset(wanted[label] for e in issue.events if e.kind == "label" and e.by_self
                     for label in e.added if label in wanted)


def set_by_person(issue: Issue, name: str, current: str | None) -> bool:
    """Whether a person set the current value of ``due_date`` or ``assignee``:
    the last change of it in the history was not sla-sync's, or, with no change
    recorded, the issue was created with it (by its author)."""
    if current is None:
        return False
    changes = [e for e in issue.events if e.kind == "field" and e.field == name]
    return not changes[-1].by_self if changes else True


def evidence_of(issue: Issue, policy: Policy, recorded: Iterable[int] = (), *, backlog: bool = False) -> Evidence:
    """The evidence for one issue: its history, and the steps the store recorded.
    ``backlog``: the store has never seen the issue, and it is older than the
    store's cursor (or the store is new): an existing issue being adopted."""
    return Evidence(
        fired=markers_added_by_us(issue, policy) | frozenset(recorded),
        due_date_by_person=set_by_person(issue, "due_date", issue.due_date),
        assignee_by_person=set_by_person(issue, "assignee", issue.assignee),
        backlog=backlog,
    )
