"""One pass: fetch → evaluate → plan → apply → record.

``run_pass`` is the whole sync.  With ``apply=False`` it is ``plan``: the same
changes, computed the same way by the same ``fetch_and_plan``, nothing written
anywhere (tracker or store).  With ``apply=True`` it holds the policy's lock,
applies each issue's changes, records what it wrote, re-reads the written issues so
that the next pass knows them (or leaves them to the next pass's delta query, where
that reads them as cheaply or more surely: ``Tracker.rereads_written``), and moves
the cursor only past issues that were processed (``next_cursor``, the whole cursor
rule).

Every error text a pass records (in its result and the run journal) has every
known secret redacted (``redact.REDACTOR``): a tracker's error body may echo the
request's headers.

The pass's store writes are buffered and committed in one transaction when the
pass ends (``Store.pass_writes``), whether it ends well or not; a process killed
mid-pass loses them, which costs requests, never a duplicate write: the markers
on the issues say which steps fired.

A failed fetch ends the pass before any write.  An error on one issue is recorded
and the others go on; the pass then reports a non-zero exit code.

Messages (``notify``): a step's messages are recorded as an intent before its
tracker writes and made ready once they landed (or, after a lost answer or a
killed pass, once the issue's history shows the step fired); after the writes,
the pass sends every ready message through the ``Sender``, each marked sent in
the store just before it goes out and unmarked if the channel reports a failure:
a pass killed while sending never sends a message twice (at worst, one killed in
that very moment is lost).  A failure to send is an error of that issue, retried
by the next pass; it never holds up a tracker write.  Outside the
``notify.quiet_outside`` calendar's working time, ready messages wait, and the
first pass inside it sends them with that pass's figures.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson

from .digest import send_due_digests
from .errors import AuthError, GoneError, PartialWriteError, SlaSyncError, TrackerError
from .evidence import evidence_of
from .model import IssueSla, Written
from .notify import Message, Sender, SendError, in_working_time, next_working_instant, step_message
from .plan import IssuePlan, plan_issue, step_cycles
from .policy import Policy
from .redact import REDACTOR
from .state import CachedIssue, PassWrites, PendingNotice, Remembered, Store
from .timers import evaluate
from .tracker import Cached, Fetched, Tracked, Tracker
from .upcoming import Upcoming, next_change

Progress = Callable[[int, int], None]
V = TypeVar("V")


@dataclass
class Outcome:
    """What a pass did with one issue."""

    key: str
    sla: IssueSla
    plan: IssuePlan
    applied: bool = False
    error: str | None = None
    title: str = ""
    assignee: str | None = None
    fired_before: frozenset[int] = frozenset()  # the steps the evidence says fired in earlier passes
    gone: bool = False  # a write answered "not found" and the issue is no longer in scope: dropped
    upcoming: Upcoming | None = None  # when time alone next changes its plan (after this pass's writes)


@dataclass
class PassResult:
    """A pass's outcome, for the CLI's summary and the run journal."""

    run_id: str
    policy: str
    mode: str
    now: int
    outcomes: list[Outcome] = field(default_factory=list)
    fetched: int = 0
    refetched: int = 0
    errors: list[str] = field(default_factory=list)
    stopped: bool = False
    sent: list[Message] = field(default_factory=list)  # messages the pass sent
    waiting: list[PendingNotice] = field(default_factory=list)  # ready messages not sent (quiet hours, failures)
    quiet: bool = False  # outside notify.quiet_outside's working time: messages wait
    full: bool = True  # a full pass (every open issue listed), or a delta pass
    due: int = 0  # issues a delta pass evaluated because their time came (not fetched)
    tallies: Mapping[str, int] | None = None  # how many mirrored open issues have each ``states_of``, after the pass
    upcoming: Upcoming | None = None  # the pass's ``next_change``

    @property
    def changed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.plan.changes]

    @property
    def kept(self) -> list[tuple[str, str]]:
        return [(o.key, k) for o in self.outcomes for k in o.plan.kept]

    def next_change(self, policy: Policy) -> Upcoming | None:
        """The earliest instant at which some issue's plan changes by time alone
        (labels, due date, a step, the remaining time), or held messages go out."""
        found = [o.upcoming for o in self.outcomes if o.upcoming is not None]
        if self.quiet and self.waiting:
            opens = next_working_instant(policy.notify.quiet, self.now)
            if opens is not None:
                found.append(Upcoming(opens, self.waiting[0].key, "held messages go out"))
        return min(found) if found else None

    @property
    def exit_code(self) -> int:
        return 1 if self.errors else 0

    def counts(self) -> dict[str, Any]:
        forged = sum(len(o.plan.forged) for o in self.outcomes)
        writes: dict[str, int] = {}
        for o in self.outcomes:
            if o.applied:
                for c in o.plan.changes:
                    writes[c.kind] = writes.get(c.kind, 0) + 1
        return {
            "fetched": self.fetched,
            "refetched": self.refetched,
            "issues_changed": len(self.changed),
            "issues_applied": sum(o.applied for o in self.outcomes),
            "steps_fired": sum(len(o.plan.fired) for o in self.outcomes if o.applied or self.mode == "plan"),
            "steps_marked": sum(len(o.plan.marked) for o in self.outcomes if o.applied or self.mode == "plan"),
            "kept": len(self.kept) - forged,
            "forged_markers": forged,
            "errors": len(self.errors),
            "dropped": sum(o.gone for o in self.outcomes),
            "writes": writes,
            "messages_sent": len(self.sent),
            "messages_waiting": len(self.waiting),
        }


@dataclass(frozen=True)
class Planned:
    """What ``fetch_and_plan`` read and decided: the cursor it started from, the
    fetch, the cache it used (read lazily), what sla-sync had written, whether the
    pass was a full one, and the mirrored issues it evaluated because their time came."""

    cursor: int | None
    fetched: Fetched
    cached: Mapping[str, Cached]
    written: Mapping[str, Written]
    full: bool = True
    due: tuple[Tracked, ...] = ()
    gone: tuple[str, ...] = ()  # mirrored issues due by time that are no longer open issues of the project


class _View(Mapping[str, V]):
    """The store's remembered issues seen through ``pick`` (read one key at a time)."""

    def __init__(self, remembered: Remembered, pick: Callable[[CachedIssue], V]) -> None:
        self.remembered, self.pick = remembered, pick

    def __getitem__(self, key: str) -> V:
        return self.pick(self.remembered[key])

    def __contains__(self, key: object) -> bool:
        return key in self.remembered

    def __iter__(self) -> Iterator[str]:
        return iter(self.remembered)

    def __len__(self) -> int:
        return len(self.remembered)


def is_full(policy: Policy, cursor: int | None, last_full: int | None, now: int, forced: bool) -> bool:
    """Whether a pass lists every open issue (a full reconciliation) rather than only
    those updated since the cursor: the first pass (or with a lost store), ``--full``,
    ``tracker.reconcile_every: 0``, or the last full pass is that old."""
    return (forced or cursor is None or last_full is None or policy.reconcile_s == 0
            or now - last_full >= policy.reconcile_s)


def states_of(sla: IssueSla) -> str:
    """An issue's level and metric states, as the mirror keeps them for the gauges."""
    return orjson.dumps([sla.level, [[m, s.state.value, s.at_risk] for m, s in sla.metrics.items()]]).decode()


def plan_all(
    tracked: list[Tracked], written: Mapping[str, Written], policy: Policy, now: int,
    fired: Mapping[str, Mapping[int, int]] | None = None, *,
    known: Collection[str] | None = None, cursor: int | None = None,
) -> list[Outcome]:
    """Evaluate and plan every fetched issue (pure); ``fired`` is what the store
    recorded of the steps fired, the rest of the evidence is in each history.
    ``known`` are the issues the store remembers (``None``: evidence of adoption
    is not looked for): one it does not, created before ``cursor`` (or with no
    cursor yet), is being adopted (``writeback.backlog_steps``)."""
    out = []
    for t in tracked:
        sla = evaluate(t.issue, policy, now)
        adopted = known is not None and t.issue.key not in known and (cursor is None or t.issue.created_at <= cursor)
        evidence = evidence_of(t.issue, policy, (fired or {}).get(t.issue.key), step_cycles(policy, sla),
                               backlog=adopted)
        plan = plan_issue(sla, t.observed, written.get(t.issue.key, Written()), policy, evidence)
        upcoming = next_change(sla, t.issue.created_at, evidence.fired | set(plan.fired), policy, now,
                               waiting=evidence.stale)
        out.append(Outcome(t.issue.key, sla, plan, title=t.issue.title, assignee=t.issue.assignee,
                           fired_before=evidence.fired, upcoming=upcoming))
    return out


def fetch_since(cursor: int | None, overlap_s: int) -> int | None:
    """Where an incremental fetch starts: the cursor minus the overlap window."""
    return None if cursor is None else cursor - overlap_s


def fetch_and_plan(tracker: Tracker, policy: Policy, store: Store, now: int, result: PassResult, *,
                   full: bool = False) -> Planned:
    """The part ``plan`` and ``run`` share: fetch since the cursor, reuse cached
    history, evaluate and plan into ``result``.  A full pass (``is_full``) lists
    every open issue; a delta pass reads only the issues updated since the cursor,
    plus, from the store's mirror, the open issues whose plan time alone changes
    by now.  Nothing else is read or loaded."""
    key = policy.state_key
    tracker.directory.update(store.directory(key))
    cursor = store.cursor(key)
    full = is_full(policy, cursor, store.last_full(key), now, full)
    remembered = store.remembered(key)
    cached: Mapping[str, Cached] = _View(remembered, lambda hit: Cached(hit.version, hit.issue))
    since = fetch_since(cursor, policy.overlap_s)
    fetched = tracker.fetch(since, cached) if full or since is None else tracker.fetch_changed(since, cached)
    seen = {t.issue.key for t in fetched.issues}
    candidates = [] if full else store.due(key, now, skip=seen)
    present = tracker.in_scope([m.remembered.issue.key for m in candidates]) if candidates else set()
    due = tuple(Tracked(m.remembered.issue, m.observed, m.remembered.version)
                for m in candidates if m.remembered.issue.key in present)
    gone = tuple(m.remembered.issue.key for m in candidates if m.remembered.issue.key not in present)
    written: Mapping[str, Written] = _View(remembered, lambda hit: hit.written)
    result.fetched, result.refetched, result.full, result.due = len(fetched.issues), fetched.refetched, full, len(due)
    result.errors += [REDACTOR(p) for p in fetched.problems]
    evaluated = [*fetched.issues, *due]
    result.outcomes = plan_all(evaluated, written, policy, now, store.fired_of(key, (t.issue.key for t in evaluated)),
                               known=remembered, cursor=cursor)
    if policy.notify.channels:
        result.quiet = not in_working_time(policy.notify.quiet, now)
    return Planned(cursor, fetched, cached, written, full, due, gone)


def run_pass(
    tracker: Tracker,
    policy: Policy,
    store: Store,
    now: int,
    *,
    apply: bool,
    run_id: str,
    full: bool = False,
    should_stop: Callable[[], bool] = lambda: False,
    progress: Progress | None = None,
    clock: Callable[[], float] = time.monotonic,
    sender: Sender | None = None,
    tallies: bool = True,
) -> PassResult:
    """One pass; see the module docstring.  ``clock`` measures the pass's duration
    (a monotonic clock; tests inject one): the run journal's ``finished_at`` is
    ``now`` plus that duration.  ``sender`` delivers the policy's messages
    (without one, they stay queued in the store).  ``tallies``: count every
    mirrored issue's states for the gauges (``PassResult.tallies``), which only
    metrics need: the one part of a quiet pass that reads the whole mirror."""
    result = PassResult(run_id, policy.name, "run" if apply else "plan", now)
    if not apply:
        fetch_and_plan(tracker, policy, store, now, result, full=full)
        if policy.notify.channels:
            result.waiting = store.pending_notices(policy.state_key)
        result.upcoming = _upcoming(result, store, policy, now)
        return result
    with store.lock(policy.state_key):
        started = clock()
        store.start_run(run_id, policy.state_key, "run", now)
        with store.pass_writes(policy.state_key) as writes:
            try:
                planned = _apply_pass(tracker, policy, store, writes, now, result, should_stop, progress, clock,
                                      started, full)
                if sender is not None:
                    _send(policy, store, sender, planned, now, result)
                    if policy.digests:
                        send_due_digests(policy, store, sender, result, now)
                elif policy.notify.channels:
                    result.waiting = store.pending_notices(policy.state_key)
            except BaseException as exc:
                status = "failed" if isinstance(exc, SlaSyncError) else "aborted"
                writes.finish_run(run_id, _finished(now, clock, started), status, result.counts(),
                                  [*result.errors, REDACTOR(_describe(exc))])
                raise
            writes.save_directory(dict(tracker.directory))
            writes.finish_run(run_id, _finished(now, clock, started), "partial" if result.errors else "ok",
                              result.counts(), result.errors)
        if tallies:
            result.tallies = store.tallies(policy.state_key)  # the pass's writes are committed
        result.upcoming = _upcoming(result, store, policy, now)
    return result


def _upcoming(result: PassResult, store: Store, policy: Policy, now: int) -> Upcoming | None:
    """The pass's next change: its own issues' and held messages', or the mirror's."""
    found = [u for u in (result.next_change(policy), mirrored_upcoming(store, policy, now)) if u is not None]
    return min(found) if found else None


def mirrored_upcoming(store: Store, policy: Policy, now: int) -> Upcoming | None:
    """The next change of the issues the pass did not evaluate: the mirror's earliest
    instant after ``now``, and why (its remembered copy evaluated anew)."""
    found = store.next_due(policy.state_key, now)
    if found is None:
        return None
    key, at = found
    hit = store.remembered(policy.state_key).get(key)
    if hit is not None:
        sla = evaluate(hit.issue, policy, now)
        evidence = evidence_of(hit.issue, policy, store.fired_of(policy.state_key, [key]).get(key),
                               step_cycles(policy, sla))
        upcoming = next_change(sla, hit.issue.created_at, evidence.fired, policy, now, waiting=evidence.stale)
        if upcoming is not None and upcoming.at == at:
            return upcoming
    return Upcoming(at, key, "its SLA changes by time")


def _finished(now: int, clock: Callable[[], float], started: float) -> int:
    return now + round(clock() - started)


def _describe(exc: BaseException) -> str:
    return str(exc) or exc.__class__.__name__


def _apply_pass(
    tracker: Tracker,
    policy: Policy,
    store: Store,
    writes: PassWrites,
    now: int,
    result: PassResult,
    should_stop: Callable[[], bool],
    progress: Progress | None,
    clock: Callable[[], float],
    started: float,
    full: bool,
) -> Planned:
    planned = fetch_and_plan(tracker, policy, store, now, result, full=full)
    fetched, cached, written = planned.fetched, planned.cached, planned.written
    by_key = {t.issue.key: t for t in (*fetched.issues, *planned.due)}
    writes.remember(
        (t.version, t.issue, written.get(t.issue.key, Written())) for t in fetched.issues
        if t.issue.key not in cached or cached[t.issue.key].version != t.version
    )
    failed: list[Tracked] = []
    applied: list[str] = []
    total = len(result.outcomes)
    for done, outcome in enumerate(result.outcomes, start=1):
        if should_stop():
            result.stopped = True
            failed += [by_key[o.key] for o in result.outcomes[done - 1:]]
            break
        notices = outcome.plan.notices
        if notices:  # an intent, committed before the writes: a killed pass cannot lose the message
            store.queue_notices(policy.state_key, outcome.key, [(n.step, n.channel, n.cycle) for n in notices],
                                now)
        if outcome.plan.changes:
            try:
                tracker.apply(outcome.key, outcome.plan.changes)
            except AuthError:
                raise
            except TrackerError as exc:
                if isinstance(exc, GoneError) and not _still_there(tracker, outcome.key):
                    outcome.gone = True  # deleted or moved away: dropped, not an error
                    continue
                outcome.error = REDACTOR(str(exc))  # an error body may echo the request's headers
                result.errors.append(outcome.error)
                failed.append(by_key[outcome.key])
                if isinstance(exc, PartialWriteError) and exc.steps_landed:
                    # the notes and markers did land
                    writes.record_fired(outcome.key, outcome.plan.fired, now, outcome.plan.cycles)
                    store.notices_ready(policy.state_key, outcome.key, {n.step for n in notices})
                continue
            outcome.applied = True
            applied.append(outcome.key)
            writes.record_fired(outcome.key, outcome.plan.fired, now, outcome.plan.cycles)
        if notices:
            store.notices_ready(policy.state_key, outcome.key, {n.step for n in notices})
        if outcome.plan.written != written.get(outcome.key, Written()):
            writes.set_written(outcome.key, outcome.plan.written)
        if progress:
            progress(done, total)
    # without a re-read the cursor stays before the writes, and the next pass's delta
    # query reads them back, a person's change too (``Tracker.rereads_written``)
    latest, fresh = (_refresh(tracker, writes, {k: by_key[k] for k in applied}, result)
                     if applied and tracker.rereads_written else (None, []))
    writes.set_cursor(next_cursor(planned.cursor, fetched, failed, latest, clock() - started, policy.overlap_s))
    _update_mirror(store, writes, planned, result, {t.issue.key: t for t in fresh}, by_key,
                   {t.issue.key for t in failed}, now)
    return planned


def _still_there(tracker: Tracker, key: str) -> bool:
    """Whether an issue whose write answered "not found" is still an open issue in
    scope (the 404 was about something else, say a watcher); if that cannot be
    told, it is (the write's error is reported and the next pass tries again)."""
    try:
        return key in tracker.in_scope([key])
    except TrackerError:
        return True


def _update_mirror(store: Store, writes: PassWrites, planned: Planned, result: PassResult,
                   fresh: Mapping[str, Tracked], by_key: Mapping[str, Tracked], failed: set[str], now: int) -> None:
    """Each evaluated open issue into the mirror with its next instant; closed ones
    out; after a full pass, the mirrored issues it did not list (deleted, moved, out
    of view, closed without an update) out for good."""
    rows, closed, gone = [], [], list(planned.gone)
    for outcome in result.outcomes:
        if outcome.gone:
            gone.append(outcome.key)
            continue
        if outcome.key in failed and result.stopped and outcome.key not in fresh:
            continue  # not reached: the mirror keeps what it had
        tracked = fresh.get(outcome.key) or by_key[outcome.key]
        if not tracked.open:
            closed.append(outcome.key)
            continue
        upcoming = outcome.upcoming.at if outcome.upcoming is not None else None
        rows.append((outcome.key, tracked.observed, now if outcome.key in failed else upcoming,
                     states_of(outcome.sla)))
    writes.mirror(rows)
    writes.forget(closed)
    writes.forget(gone, remembered=True)
    if planned.full and not result.stopped and not planned.fetched.problems:
        listed = {t.issue.key for t in planned.fetched.issues}
        writes.forget(sorted(store.mirror_keys(writes.policy) - listed), remembered=True)
        writes.set_last_full(now)


def _send(policy: Policy, store: Store, sender: Sender, planned: Planned, now: int, result: PassResult) -> None:
    """Send the ready messages (see the module docstring), each marked sent at once."""
    by_key = {o.key: o for o in result.outcomes}
    for intent in store.notice_intents(policy.state_key):  # writes under way when a pass ended
        outcome = by_key.get(intent.key)
        if outcome is not None and intent.step in outcome.fired_before:  # the history shows they landed
            store.notices_ready(policy.state_key, intent.key, [intent.step])
    result.waiting = store.pending_notices(policy.state_key)
    if result.quiet or not result.waiting:
        return
    steps = {s.number: s for s in policy.steps}
    waiting: list[PendingNotice] = []
    for notice in result.waiting:
        step = steps.get(notice.step)
        if step is None or notice.channel not in policy.notify.channels:  # the policy no longer has it
            store.mark_sent(policy.state_key, notice.key, notice.step, notice.channel, now)
            continue
        outcome = by_key.get(notice.key)
        sla, title = (outcome.sla, outcome.title) if outcome is not None else _remembered(planned, notice.key,
                                                                                           policy, now)
        message = step_message(policy, notice.key, title, sla, step, notice.channel)
        store.mark_sent(policy.state_key, notice.key, notice.step, notice.channel, now)  # at most once
        try:
            sender.send(message)
        except SendError as exc:
            store.mark_sent(policy.state_key, notice.key, notice.step, notice.channel, None)  # retried next pass
            error = REDACTOR(f"{notice.key}: step {notice.step}: {exc}")
            result.errors.append(error)
            if outcome is not None:
                outcome.error = f"{outcome.error}; {error}" if outcome.error else error
            waiting.append(notice)
            continue
        result.sent.append(message)
    result.waiting = waiting


def _remembered(planned: Planned, key: str, policy: Policy, now: int) -> tuple[IssueSla | None, str]:
    """The figures of an issue this pass did not fetch, from the store's copy."""
    cached = planned.cached.get(key)
    if cached is None:
        return None, ""
    return evaluate(cached.issue, policy, now), cached.issue.title


def _refresh(tracker: Tracker, writes: PassWrites, before: Mapping[str, Tracked],
             result: PassResult) -> tuple[int | None, list[Tracked]]:
    """Re-read written issues (``before``: the copies the pass planned on) so the
    next pass sees their new version as known; the latest update time among them,
    and the issues as re-read."""
    try:
        fresh = tracker.refresh(list(before), before)
    except TrackerError as exc:  # the next pass refetches them; no harm done
        result.errors.append(REDACTOR(f"re-reading written issues failed: {exc}"))
        return None, []
    written = {o.key: o.plan.written for o in result.outcomes}
    writes.remember((t.version, t.issue, written.get(t.issue.key, Written())) for t in fresh)
    stamps = [t.issue.updated_at for t in fresh if t.issue.updated_at is not None]
    return (max(stamps) if stamps else None), fresh


def next_cursor(
    old: int | None,
    fetched: Fetched,
    failed: list[Tracked],
    latest_written: int | None,
    pass_seconds: float,
    overlap_s: int,
) -> int | None:
    """The cursor after a pass: the whole rule, in one place (pure).

    - An issue skipped for odd data has no trustworthy update time: the cursor stays.
    - The cursor never moves past an issue that was not processed (a write failed,
      or the pass stopped early): it stops just before the oldest such issue.
    - Otherwise it moves to the latest update seen, never backwards.
    - Our own writes moved the written issues' update time; they are processed
      and re-read, so the next pass need not list them again: the cursor may move
      past them too, but only while the pass was shorter than the overlap window,
      which still covers anything a person changed during it.
    """
    if fetched.problems:
        return old
    new = _advance(old, fetched.cursor, failed)
    if latest_written is not None and not failed and new is not None and pass_seconds < overlap_s:
        new = max(new, latest_written)
    return new


def _advance(old: int | None, seen: int | None, failed: list[Tracked]) -> int | None:
    if seen is None:
        return old
    if not failed:
        return seen if old is None else max(old, seen)
    pending = [t.issue.updated_at for t in failed if t.issue.updated_at is not None]
    if not pending:
        return old
    return min(seen, min(pending) - 1)
