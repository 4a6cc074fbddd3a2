"""Domain objects: the neutral issue, its events, SLA states and changes.

Everything here is a frozen dataclass.  Instants are ``int`` seconds since the Unix
epoch (UTC): the clocks work in whole seconds, and integers keep them exact and fast.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

METRICS: tuple[str, ...] = ("first_response", "workaround", "resolution")


@dataclass(frozen=True, slots=True)
class Event:
    """One entry of an issue's history.

    ``kind`` is ``comment`` (``public``, ``by_agent``), ``status`` (``from_``/``to``),
    ``label`` (``added``/``removed``) or ``field`` (``field``, ``from_``/``to``).
    ``by_self`` says the tracker's own API user made it (the adapter compares user
    ids, never display names): the only evidence sla-sync believes is its own.
    """

    at: int
    kind: str
    public: bool = False
    by_agent: bool = False
    author: str | None = None
    by_self: bool = False
    from_: str | None = None
    to: str | None = None
    field: str | None = None
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Issue:
    """A tracker issue in the neutral form every adapter maps into."""

    key: str
    created_at: int
    status: str
    title: str = ""
    priority: str | None = None
    type: str | None = None
    project: str | None = None
    labels: tuple[str, ...] = ()
    assignee: str | None = None
    milestone: str | None = None
    due_date: str | None = None
    updated_at: int | None = None
    fields: dict[str, Any] = field(default_factory=dict, hash=False, compare=True)
    events: tuple[Event, ...] = ()


@dataclass(frozen=True)
class Observed:
    """The tracker's current values of what sla-sync manages on one issue."""

    due_date: str | None = None
    labels: frozenset[str] = frozenset()
    assignee: str | None = None
    due_instant: str | None = None
    remaining: str | None = None  # the remaining-time field's value, as ``format_hours`` writes it
    health_status: str | None = None  # GitLab: on_track, needs_attention or at_risk


@dataclass(frozen=True)
class Written:
    """What sla-sync last wrote to an issue (from the state store)."""

    due_date: str | None = None
    assignee: str | None = None
    due_instant: str | None = None


class State(StrEnum):
    """The state of one SLA metric."""

    RUNNING = "running"
    PAUSED = "paused"
    MET = "met"
    BREACHED = "breached"


@dataclass(frozen=True, slots=True)
class SlaState:
    """One metric's clock at ``now`` (seconds are whole working seconds)."""

    metric: str
    state: State
    at_risk: bool
    target_s: int
    elapsed_s: int
    remaining_s: int
    due_at: int | None
    breached_at: int | None
    stopped_at: int | None


@dataclass(frozen=True, slots=True)
class IssueSla:
    """An issue's level and the state of each metric its level defines."""

    key: str
    level: str
    metrics: dict[str, SlaState]
    rule: int | None = None
    timezone: str = "UTC"  # of the calendar the clocks ran on (the revision in force)


class ChangeKind(StrEnum):
    """What a ``Change`` writes; every adapter handles each one (an exhaustive ``match``)."""

    DUE_DATE = "due_date"  # value: YYYY-MM-DD
    DUE_INSTANT = "due_instant"  # value: an ISO instant, into the tracker's datetime field
    ADD_LABELS = "add_labels"  # values
    REMOVE_LABELS = "remove_labels"  # values
    ASSIGN = "assign"  # value: a login or group name
    WATCHERS = "watchers"  # values: logins or group names
    COMMENT = "comment"  # value: the text; private
    REMAINING = "remaining"  # value: working hours left, a decimal number (negative once breached)
    HEALTH_STATUS = "health_status"  # value: on_track, needs_attention or at_risk (GitLab)


@dataclass(frozen=True, slots=True)
class Change:
    """One write the plan asks of a tracker, for one issue.

    ``kind`` is a ``ChangeKind`` (a plain string is converted; an unknown one is a
    ``ValueError``).  ``step`` names the escalation step (1-based) that asked for
    it, if any.
    """

    kind: ChangeKind
    value: str | None = None
    values: tuple[str, ...] = ()
    private: bool = True
    step: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", ChangeKind(self.kind))
