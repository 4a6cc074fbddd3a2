"""Domain objects: the neutral issue, its events, SLA states and changes.

Everything here is frozen.  What ``evaluate`` builds for every issue (``Event``,
``Issue``, ``SlaState``, ``IssueSla``) is a frozen ``msgspec.Struct``: a dozen
times cheaper to build than a frozen dataclass, with the same constructor (the
fields in the same order, positional or by name), equality, hashing and
immutability; ``dataclasses.replace``, ``fields`` and ``asdict`` still work on them
(``_as_dataclass``).  The rest are frozen dataclasses.  Instants are ``int`` seconds
since the Unix epoch (UTC): the clocks work in whole seconds, and integers keep them
exact and fast.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

import msgspec

METRICS: tuple[str, ...] = ("first_response", "workaround", "resolution")

_S = TypeVar("_S", bound=type)


def _as_dataclass(cls: _S) -> _S:
    """Give a Struct a dataclass's field table (that of a dataclass twin with the same
    fields), so that ``dataclasses.replace``, ``fields`` and ``asdict`` work on it as
    they did when the class was a dataclass; ``msgspec.structs.replace`` is the fast
    way.  Nothing else changes: the Struct builds, compares and hashes itself."""
    names: tuple[str, ...] = cls.__struct_fields__  # type: ignore[attr-defined]
    twin = dataclasses.make_dataclass(cls.__name__, [(name, Any) for name in names])
    table = {f.name: f for f in dataclasses.fields(twin)}
    setattr(cls, "__dataclass_fields__", table)  # noqa: B010 - at run time only
    return cls


# gc=False: these objects hold no reference cycles (scalars, strings, tuples of them,
# a decoded JSON object), so the garbage collector need not track them.
@_as_dataclass
class Event(msgspec.Struct, frozen=True, gc=False):
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


@_as_dataclass
class Issue(msgspec.Struct, frozen=True, gc=False):
    """A tracker issue in the neutral form every adapter maps into.

    ``fields`` takes part in equality, not in the hash (a dict is not hashable)."""

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
    fields: dict[str, Any] = msgspec.field(default_factory=dict)
    events: tuple[Event, ...] = ()

    def __hash__(self) -> int:
        return hash((self.key, self.created_at, self.status, self.title, self.priority, self.type, self.project,
                     self.labels, self.assignee, self.milestone, self.due_date, self.updated_at, self.events))


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
    NOT_STARTED = "not_started"  # a custom metric none of whose start events happened yet


@_as_dataclass
class SlaState(msgspec.Struct, frozen=True, gc=False):
    """One metric's clock at ``now`` (seconds are whole working seconds).  A custom
    metric's (``metrics:``) is that of its current cycle, with how many cycles it
    had and how many of them breached; a built-in one has ``None`` there."""

    metric: str
    state: State
    at_risk: bool
    target_s: int
    elapsed_s: int
    remaining_s: int
    due_at: int | None
    breached_at: int | None
    stopped_at: int | None
    cycles: int | None = None
    breached_cycles: int | None = None
    started_at: int | None = None  # a custom metric's: when its current cycle opened


@_as_dataclass
class IssueSla(msgspec.Struct, frozen=True, gc=False):
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
    it, if any, and ``cycle`` the cycle it fired in, for a step on a repeating
    metric (a step's comment is recognised by both).
    """

    kind: ChangeKind
    value: str | None = None
    values: tuple[str, ...] = ()
    private: bool = True
    step: int | None = None
    cycle: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", ChangeKind(self.kind))
