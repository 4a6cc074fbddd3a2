"""The one seam between the sync and a tracker: the ``Tracker`` protocol.

A tracker adapter translates its tracker into neutral ``Issue``s (with the values
sla-sync manages, as ``Observed``) and applies ``Change``s back.  It owns its
client library, its retries (tenacity, bounded, with an injectable wait) and its
error messages.  Adapters are found by ``tracker.kind`` through the entry-point
group ``sla_sync.adapters``: an entry point names a factory
``(spec: TrackerSpec, secret: str, options: AdapterOptions) -> Tracker``.

This module imports no tracker library, no HTTP client and no retry library: the
sync sees only these types.  The adapters' shared toolkit (retries, fetch
assembly, secrets, request counting) is ``sla_sync.adapters.base``.

Errors an adapter raises (all from ``sla_sync.errors``):

- ``AuthError``: the credentials were rejected ("authentication failed for <url>");
- ``TrackerError``: a request failed for good after the retries, or the tracker
  answered something unusable; the message names the tracker, the issue if any,
  and what to do.  An error while fetching aborts the pass before any write.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Protocol, runtime_checkable

from .errors import UserError
from .model import Change, Issue, Observed
from .policy import Policy
from .schema import TrackerSpec


@dataclass(frozen=True)
class Tracked:
    """A fetched issue: the neutral issue, the managed values, and its version.

    ``version`` changes whenever the issue changes on the tracker (Redmine's
    ``updated_on``); an unchanged version lets the sync reuse cached history.
    """

    issue: Issue
    observed: Observed
    version: str
    open: bool = True


@dataclass(frozen=True)
class Cached:
    """What the state store remembers of an issue between passes."""

    version: str
    issue: Issue


@dataclass(frozen=True)
class Fetched:
    """The result of one fetch: the issues and the new cursor candidate.

    ``cursor`` is the latest ``updated`` instant seen (epoch seconds); the sync
    moves its stored cursor there only when every issue was processed.
    ``refetched`` counts the issues whose history was fetched anew.
    """

    issues: list[Tracked]
    cursor: int | None
    refetched: int = 0
    problems: list[str] = field(default_factory=list)  # issues skipped: odd data from the tracker


@dataclass(frozen=True)
class AdapterOptions:
    """Knobs the sync and the tests hand to an adapter."""

    agents_users: tuple[str, ...] = ()
    agents_groups: tuple[str, ...] = ()
    sleep: Callable[[float], None] | None = None  # None: time.sleep; tests inject a fake
    max_wait: float = 60.0  # the longest single back-off wait, in seconds
    remaining_field: str | None = None  # writeback.remaining_field: the number field for the time left
    remaining_step_s: int = 3600  # writeback.remaining_step (an integer field needs whole hours)
    health_status: bool = False  # writeback.health_status (GitLab)
    milestones: bool = False  # the policy reads the milestone: GitLab reads its history (``Policy.uses_milestones``)


@runtime_checkable
class Tracker(Protocol):
    """A tracker as the sync sees it: fetch, apply, and an online check."""

    kind: str
    url: str
    rereads_written: bool
    """Whether the sync re-reads the issues it wrote at the end of the pass (their
    rows and history, ``refresh``), so that the next pass knows them; otherwise the
    cursor stays before the writes and the next pass's delta query reads them back,
    a person's change in between too.  Re-read (GitLab): their rows in one list
    query per 100, and the history only of those whose row shows a change that is
    not sla-sync's (``refresh``'s ``before``).  Left to the next pass: Jira, whose
    search embeds the changelog and the comments (no request of its own), and
    Redmine, whose ``updated_on`` has whole seconds: a read in the second of the
    write would not be trusted (``read_version``) and would be read again by the
    next pass, two reads where the next pass's one does."""
    directory: dict[str, str]
    """Names the adapter resolved to tracker ids ("user:alice" → "5"); the sync
    keeps them in the state store between passes so that steady passes need no
    look-ups."""

    def fetch(self, since: int | None, cached: Mapping[str, Cached]) -> Fetched:
        """Every open issue, and every issue updated at or after ``since`` (the
        sync has already taken the overlap window off it), each once.  History
        (events) is fetched only for issues whose version differs from
        ``cached``; the others reuse it."""
        ...

    def fetch_changed(self, since: int, cached: Mapping[str, Cached]) -> Fetched:
        """A delta pass's one query: every issue updated at or after ``since``, in
        any status (open, resolved, closed), each once; history as in ``fetch``."""
        ...

    def in_scope(self, keys: Sequence[str]) -> set[str]:
        """Which of these issues are still open issues of the policy's project (list
        queries of up to 100 keys each; Jira: keys-only searches of 1,000): before a
        delta pass acts on issues it did not fetch, so one moved, deleted, closed or
        hidden since is never written."""
        ...

    def fetch_all(self, since: int | None) -> Iterator[Tracked]:
        """Every issue (open or not) created at or after ``since`` (all when
        ``None``), with its history, lazily: what ``sla-sync export`` streams."""
        ...

    def refresh(self, keys: Iterable[str], before: Mapping[str, Tracked] | None = None) -> list[Tracked]:
        """Fetch these issues anew, with their history (after writes when
        ``rereads_written``, and ``explain KEY``).  A key with no issue behind it
        (deleted, never there, out of the API user's sight) is left out, not an
        error; a key the tracker cannot even parse (Redmine: not a number) raises
        ``UserError``.  ``before``: after writes, the copies the pass planned on;
        an adapter that can tell from an issue's row that nothing but its own
        writes changed it may build its history from the copy and the writes'
        answers instead of reading it (GitLab)."""
        ...

    def apply(self, key: str, changes: Sequence[Change]) -> None:
        """Write the changes to one issue.  A step's comment and its marker label
        are written so that a retry or a crash never writes the comment twice."""
        ...

    def check(self, spec_labels: Sequence[str], names: Sequence[str]) -> list[str]:
        """Online check: what an admin must add or fix; empty when all is set."""
        ...


TrackerFactory = Callable[[TrackerSpec, str, AdapterOptions], Tracker]


def load_factory(kind: str) -> TrackerFactory:
    """The adapter factory registered for ``kind`` (entry-point group ``sla_sync.adapters``)."""
    found = {ep.name: ep for ep in entry_points(group="sla_sync.adapters")}
    if kind not in found:
        known = ", ".join(sorted(found)) or "none"
        raise UserError(f"no adapter for tracker kind {kind!r} (installed: {known}); "
                        "install its plugin or fix tracker.kind")
    factory: TrackerFactory = found[kind].load()
    return factory


def tracker_spec(policy: Policy) -> TrackerSpec:
    """The policy's ``tracker`` section, or a ``UserError`` that says to add one."""
    spec = policy.tracker
    if spec is None:
        raise UserError(f"{policy.source}: the policy has no `tracker` section; add one to talk to a tracker")
    return spec


def tracker_secret(policy: Policy, env: Mapping[str, str]) -> str:
    """The API key or token of the policy's tracker (from ``env`` or a file)."""
    from .adapters.base import read_secret  # the toolkit: imported only to talk to a tracker

    return read_secret(tracker_spec(policy), env)


def open_tracker(
    policy: Policy, env: Mapping[str, str], sleep: Callable[[float], None] | None = None
) -> Tracker:
    """The policy's tracker adapter, with its secret read from ``env`` or a file.

    The one place that turns a policy's tracker settings into ``AdapterOptions``;
    ``sleep`` receives the retries' back-off waits (tests inject a recorder)."""
    spec = tracker_spec(policy)
    agents = spec.agents
    options = AdapterOptions(
        agents_users=tuple(agents.users) if agents else (),
        agents_groups=tuple(agents.groups) if agents else (),
        sleep=sleep,
        max_wait=spec.max_wait,
        remaining_field=policy.writeback.remaining_field,
        remaining_step_s=policy.writeback.remaining_step_s,
        health_status=policy.writeback.health_status,
        milestones=policy.uses_milestones,
    )
    return load_factory(spec.kind)(spec, tracker_secret(policy, env), options)
