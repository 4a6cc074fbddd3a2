"""One pass: fetch → evaluate → plan → apply → record.

``run_pass`` is the whole sync.  With ``apply=False`` it is ``plan``: the same
changes, computed the same way, nothing written anywhere (tracker or store).  With
``apply=True`` it holds the policy's lock, applies each issue's changes, records
what it wrote, refreshes the written issues' versions so the next pass needs no
per-issue request, and moves the cursor only past issues that were processed.

A failed fetch ends the pass before any write.  An error on one issue is recorded
and the others go on; the pass then reports a non-zero exit code.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sla_sync.adapters.base import Cached, Tracked, Tracker

from .errors import AuthError, SlaSyncError, TrackerError
from .model import IssueSla
from .plan import IssuePlan, Written, plan_issue
from .policy import Policy, parse_duration
from .state import Store
from .timers import evaluate

Progress = Callable[[int, int], None]


@dataclass
class Outcome:
    """What a pass did with one issue."""

    key: str
    sla: IssueSla
    plan: IssuePlan
    applied: bool = False
    error: str | None = None


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

    @property
    def changed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.plan.changes]

    @property
    def kept(self) -> list[tuple[str, str]]:
        return [(o.key, k) for o in self.outcomes for k in o.plan.kept]

    @property
    def exit_code(self) -> int:
        return 1 if self.errors else 0

    def counts(self) -> dict[str, Any]:
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
            "kept": len(self.kept),
            "errors": len(self.errors),
            "writes": writes,
        }


def _cache_view(store: Store, policy: str) -> tuple[dict[str, Cached], dict[str, Written]]:
    cached = store.cached(policy)
    return (
        {k: Cached(c.version, c.issue) for k, c in cached.items()},
        {k: c.written for k, c in cached.items()},
    )


def plan_all(tracked: list[Tracked], written: dict[str, Written], policy: Policy, now: int) -> list[Outcome]:
    """Evaluate and plan every fetched issue (pure)."""
    due_field = policy.spec.tracker is not None and policy.spec.tracker.due_field is not None
    out = []
    for t in tracked:
        sla = evaluate(t.issue, policy, now)
        plan = plan_issue(sla, t.observed, written.get(t.issue.key, Written()), policy, due_field=due_field)
        out.append(Outcome(t.issue.key, sla, plan))
    return out


def run_pass(
    tracker: Tracker,
    policy: Policy,
    store: Store,
    now: int,
    *,
    apply: bool,
    run_id: str,
    should_stop: Callable[[], bool] = lambda: False,
    progress: Progress | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> PassResult:
    """One pass; see the module docstring.  ``clock`` measures the pass's duration
    (a monotonic clock; tests inject one)."""
    result = PassResult(run_id, policy.name, "run" if apply else "plan", now)
    tracker.directory.update(store.directory(policy.name))
    if not apply:
        cached, written = _cache_view(store, policy.name)
        fetched = tracker.fetch(store.cursor(policy.name), cached)
        result.fetched, result.refetched = len(fetched.issues), fetched.refetched
        result.errors += fetched.problems
        result.outcomes = plan_all(fetched.issues, written, policy, now)
        return result
    with store.lock(policy.name):
        store.start_run(run_id, policy.name, "run", now)
        try:
            _apply_pass(tracker, policy, store, now, result, should_stop, progress, clock)
        except BaseException as exc:
            status = "failed" if isinstance(exc, SlaSyncError) else "aborted"
            store.finish_run(run_id, now, status, result.counts(), [*result.errors, _describe(exc)])
            raise
        store.save_directory(policy.name, dict(tracker.directory))
        store.finish_run(run_id, now, "partial" if result.errors else "ok", result.counts(), result.errors)
    return result


def _describe(exc: BaseException) -> str:
    return str(exc) or exc.__class__.__name__


def _apply_pass(
    tracker: Tracker,
    policy: Policy,
    store: Store,
    now: int,
    result: PassResult,
    should_stop: Callable[[], bool],
    progress: Progress | None,
    clock: Callable[[], float],
) -> None:
    started = clock()
    cursor = store.cursor(policy.name)
    cached, written = _cache_view(store, policy.name)
    fetched = tracker.fetch(cursor, cached)
    result.fetched, result.refetched = len(fetched.issues), fetched.refetched
    result.errors += fetched.problems
    by_key = {t.issue.key: t for t in fetched.issues}
    store.remember(
        policy.name,
        ((t.version, t.issue, written.get(t.issue.key, Written())) for t in fetched.issues
         if t.issue.key not in cached or cached[t.issue.key].version != t.version),
    )
    result.outcomes = plan_all(fetched.issues, written, policy, now)
    failed: list[Tracked] = []
    applied: list[str] = []
    total = len(result.outcomes)
    for done, outcome in enumerate(result.outcomes, start=1):
        if should_stop():
            result.stopped = True
            failed += [by_key[o.key] for o in result.outcomes[done - 1:]]
            break
        if outcome.plan.changes:
            try:
                tracker.apply(outcome.key, outcome.plan.changes)
            except AuthError:
                raise
            except TrackerError as exc:
                outcome.error = str(exc)
                result.errors.append(str(exc))
                failed.append(by_key[outcome.key])
                continue
            outcome.applied = True
            applied.append(outcome.key)
            store.record_fired(policy.name, outcome.key, outcome.plan.fired, now)
        if outcome.plan.written != written.get(outcome.key, Written()):
            store.set_written(policy.name, outcome.key, outcome.plan.written)
        if progress:
            progress(done, total)
    latest = _refresh(tracker, store, policy, applied, result) if applied else None
    # An issue skipped for odd data has no trustworthy update time: the cursor stays.
    new_cursor = cursor if fetched.problems else _next_cursor(cursor, fetched.cursor, failed)
    if latest is not None and not failed and not fetched.problems and new_cursor is not None and clock() - started < _overlap(policy):
        # Our own writes moved these issues' update time; they are processed and
        # re-read, so the next pass need not list them again.  Safe only while the
        # pass was shorter than the overlap window, which still covers anything a
        # person changed during it.
        new_cursor = max(new_cursor, latest)
    store.set_cursor(policy.name, new_cursor)


def _overlap(policy: Policy) -> int:
    spec = policy.spec.tracker
    return parse_duration(spec.overlap) if spec is not None else 0


def _refresh(tracker: Tracker, store: Store, policy: Policy, keys: list[str], result: PassResult) -> int | None:
    """Re-read written issues so the next pass sees their new version as known;
    the latest update time among them."""
    try:
        fresh = tracker.refresh(keys)
    except TrackerError as exc:  # the next pass refetches them; no harm done
        result.errors.append(f"re-reading written issues failed: {exc}")
        return None
    written = {o.key: o.plan.written for o in result.outcomes}
    store.remember(policy.name, ((t.version, t.issue, written.get(t.issue.key, Written())) for t in fresh))
    stamps = [t.issue.updated_at for t in fresh if t.issue.updated_at is not None]
    return max(stamps) if stamps else None


def _next_cursor(old: int | None, seen: int | None, failed: list[Tracked]) -> int | None:
    """The cursor never moves past an issue that was not processed."""
    if seen is None:
        return old
    if not failed:
        return seen if old is None else max(old, seen)
    pending = [t.issue.updated_at for t in failed if t.issue.updated_at is not None]
    if not pending:
        return old
    return min(seen, min(pending) - 1)
