"""The sync's pass, driven directly by the in-memory tracker (``tests/fakes/memory.py``).

A stopped pass, a pass where one issue's write is refused, the cursor rule
(``next_cursor``, a pure function) and the run journal's times.  Instants are
given, the pass's duration comes from an injected clock, retry waits go to a
recorder: nothing reads the real clock or sleeps.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import pytest

from sla_sync.model import Event, Issue, Observed
from sla_sync.policy import parse_policy
from sla_sync.runner import summary
from sla_sync.state import Store
from sla_sync.sync import PassResult, next_cursor, run_pass
from sla_sync.tracker import AdapterOptions, Fetched, Tracked
from tests.fakes.memory import Memory, MemoryTracker
from tests.support import HOUR, MINUTE, ts

POLICY = parse_policy(
    """
name: sync-memory
tracker:
  kind: memory
  url: memory://helpdesk
  project: helpdesk
  api_key_env: SLA_SYNC_TEST_MEMORY_TOKEN
  agents: {users: [alice]}
  overlap: 5m
calendars:
  always: {timezone: UTC, hours: 24x7}
levels:
  P3: {calendar: always, first_response: 8h, resolution: 80h}
classify:
  - level: P3
""",
    "<sync-memory>",
)
START = ts("2026-11-02T08:00:00Z")
NOW = START + 4 * HOUR  # the oldest issue is 4h old: half its first-response target
OURS = "sla-sync"


class Clock:
    """A monotonic clock the test drives: its readings in turn, then the last one again."""

    def __init__(self, *readings: float) -> None:
        self.readings = list(readings)

    def __call__(self) -> float:
        return self.readings.pop(0) if len(self.readings) > 1 else self.readings[0]


class Sleeps(list[float]):
    """An injected sleep that records the waits instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def issues(count: int) -> tuple[Memory, list[str]]:
    """A tracker with ``count`` open issues by a customer, an hour apart."""
    memory = Memory(projects=("helpdesk",), users=("alice", "erin"))
    keys = [memory.create(f"Issue {n}", priority="Normal", by="erin", at=START + n * HOUR) for n in range(count)]
    return memory, keys


def one_pass(memory: Memory, store: Store, now: int, *, should_stop: Callable[[], bool] = lambda: False,
             clock: Callable[[], float] | None = None) -> PassResult:
    memory.now = now  # the tracker's own clock: sla-sync's writes land at the pass's now
    tracker = MemoryTracker(memory, url="memory://helpdesk", project="helpdesk", secret=memory.token,
                            options=AdapterOptions(agents_users=("alice",), sleep=Sleeps()))
    return run_pass(tracker, POLICY, store, now, apply=True, run_id=f"run-{now}", should_stop=should_stop,
                    clock=clock or Clock(0.0))


def stop_after(count: int) -> Callable[[], bool]:
    """A ``should_stop`` that says stop once ``count`` issues were let through."""
    asked = itertools.count()
    return lambda: next(asked) >= count


def our_label_writes(memory: Memory, key: str) -> list[Event]:
    return [e for e in memory.issues[key].history if e.kind == "label" and e.author == OURS]


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(str(tmp_path / "state.sqlite"))


# -- should_stop ---------------------------------------------------------------------------------


@pytest.mark.parametrize("done", [0, 1, 3])
def test_a_stopped_pass_leaves_the_rest_unwritten_and_the_next_pass_finishes_them(store: Store, done: int) -> None:
    memory, keys = issues(4)
    first = one_pass(memory, store, NOW, should_stop=stop_after(done))

    assert first.stopped
    assert [bool(memory.issues[k].labels) for k in keys] == [n < done for n in range(4)]
    cursor = store.cursor(POLICY.state_key)
    assert cursor is None or cursor < memory.issues[keys[done]].updated_at  # not past the first one left

    memory.counts.clear()
    second = one_pass(memory, store, NOW + MINUTE)
    assert not second.stopped and second.errors == []
    assert all(memory.issues[k].labels == {"sla:P3"} for k in keys)
    assert memory.counts["PUT"] == 4 - done  # only the ones left over
    assert [len(our_label_writes(memory, k)) for k in keys] == [1, 1, 1, 1]  # none written twice


# -- partial failure -----------------------------------------------------------------------------


def test_a_refused_write_leaves_the_others_written_and_the_next_pass_retries_it(store: Store) -> None:
    memory, keys = issues(3)
    memory.fail_next(422, method="PUT")  # the first write (the oldest issue's) is refused for good
    first = one_pass(memory, store, NOW)

    assert [o.key for o in first.outcomes if o.error] == [keys[0]]
    assert len(first.errors) == 1 and keys[0] in first.errors[0] and first.exit_code == 1
    assert [memory.issues[k].labels for k in keys] == [set(), {"sla:P3"}, {"sla:P3"}]
    assert memory.counts["PUT"] == 3  # a 422 is not retried
    run = store.runs(POLICY.state_key)[0]
    assert (run.status, run.errors) == ("partial", first.errors)
    cursor = store.cursor(POLICY.state_key)
    assert cursor is None or cursor < memory.issues[keys[0]].updated_at  # not past the failed issue

    memory.counts.clear()
    second = one_pass(memory, store, NOW + MINUTE)
    assert second.errors == [] and second.exit_code == 0
    assert memory.counts["PUT"] == 1  # the failed one only
    assert all(memory.issues[k].labels == {"sla:P3"} for k in keys)
    assert store.runs(POLICY.state_key)[0].status == "ok"


# -- the run journal -----------------------------------------------------------------------------


@pytest.mark.parametrize("seconds", [0, 42, 3 * HOUR])
def test_the_journal_finishes_at_now_plus_the_duration_the_clock_measured(store: Store, seconds: int) -> None:
    memory, _ = issues(2)
    one_pass(memory, store, NOW, clock=Clock(1000.0, 1000.0 + seconds))
    run = store.runs(POLICY.state_key)[0]
    assert (run.started_at, run.finished_at, run.status) == (NOW, NOW + seconds, "ok")


# -- the cursor rule -----------------------------------------------------------------------------


def tracked(key: str, updated_at: int | None) -> Tracked:
    return Tracked(Issue(key, created_at=START, status="New", updated_at=updated_at), Observed(), str(updated_at))


OLD, SEEN, OVERLAP = START + HOUR, START + 2 * HOUR, 5 * MINUTE
FAILED = [tracked("MEM-2", START + 90 * MINUTE), tracked("MEM-3", START + 100 * MINUTE)]
ODD = ["memory tracker: an issue with unreadable data was skipped"]


@pytest.mark.parametrize(
    ("old", "seen", "problems", "failed", "written", "seconds", "expected"),
    [
        # nothing went wrong: up to the latest update seen
        (OLD, SEEN, [], [], None, 10, SEEN),
        (None, SEEN, [], [], None, 10, SEEN),
        # nothing seen: stays
        (OLD, None, [], [], None, 10, OLD),
        # an issue skipped for odd data: stays, whatever else happened
        (OLD, SEEN, ODD, [], None, 10, OLD),
        (OLD, SEEN, ODD, [], SEEN + 60, 10, OLD),
        # issues not processed (a write failed, the pass stopped): just before the oldest of them
        (OLD, SEEN, [], FAILED, None, 10, START + 90 * MINUTE - 1),
        (OLD, SEEN, [], FAILED, SEEN + 60, 10, START + 90 * MINUTE - 1),  # our writes do not help
        (SEEN + HOUR, SEEN, [], FAILED, None, 10, START + 90 * MINUTE - 1),  # even behind the old cursor
        (OLD, SEEN, [], [tracked("MEM-4", None)], None, 10, OLD),  # no update time to go by: stays
        # our own writes: past them only without failures and in a pass shorter than the overlap
        (OLD, SEEN, [], [], SEEN + 60, 10, SEEN + 60),
        (OLD, SEEN, [], [], SEEN + 60, OVERLAP, SEEN),
        (OLD, SEEN, [], [], SEEN + 60, OVERLAP + 1, SEEN),
        # otherwise never backwards
        (SEEN + HOUR, SEEN, [], [], None, 10, SEEN + HOUR),
        (SEEN + HOUR, SEEN, [], [], SEEN + 60, 10, SEEN + HOUR),
    ],
)
def test_the_cursor_moves_only_past_what_was_processed(
    old: int | None, seen: int | None, problems: list[str], failed: list[Tracked], written: int | None,
    seconds: float, expected: int | None,
) -> None:
    fetched = Fetched([], seen, problems=problems)
    assert next_cursor(old, fetched, failed, written, seconds, OVERLAP) == expected


@pytest.mark.parametrize(("seconds", "past_our_writes"), [(10, True), (10 * MINUTE, False)])
def test_the_cursor_passes_our_own_writes_only_after_a_pass_shorter_than_the_overlap(
    store: Store, seconds: int, past_our_writes: bool
) -> None:
    memory, keys = issues(2)
    before = max(memory.issues[k].updated_at for k in keys)
    one_pass(memory, store, NOW, clock=Clock(0.0, seconds))
    after = max(memory.issues[k].updated_at for k in keys)
    assert after > before  # the writes moved the issues' update time
    assert store.cursor(POLICY.state_key) == (after if past_our_writes else before)


# -- evidence: only sla-sync's own markers count ---------------------------------------------------

ESCALATING = parse_policy(
    """
name: sync-memory-steps
tracker: {kind: memory, url: "memory://helpdesk", project: helpdesk, api_key_env: SLA_SYNC_TEST_MEMORY_TOKEN}
calendars:
  always: {timezone: UTC, hours: 24x7}
levels:
  P3: {calendar: always, resolution: 2h}
classify:
  - level: P3
escalate:
  - when: resolution 50%
    assign: alice
""",
    "<sync-memory-steps>",
)


def escalating_pass(memory: Memory, store: Store, now: int) -> PassResult:
    memory.now = now
    tracker = MemoryTracker(memory, url="memory://helpdesk", project="helpdesk", secret=memory.token,
                            options=AdapterOptions(sleep=Sleeps()))
    return run_pass(tracker, ESCALATING, store, now, apply=True, run_id=f"steps-{now}", clock=Clock(0.0))


def test_a_forged_marker_is_reported_in_the_summary_and_the_step_fires(store: Store) -> None:
    memory, (key,) = issues(1)
    memory.relabel(key, add=["sla:escalated-1"], by="erin")
    result = escalating_pass(memory, store, START + HOUR + MINUTE)  # 50 % of 2h is past
    assert memory.issues[key].assignee == "alice"
    assert result.counts()["forged_markers"] == 1
    assert summary(result).split("; ")[0].endswith(", 1 forged or manual markers ignored, full pass")


def test_the_summary_says_when_the_next_change_is_due(store: Store) -> None:
    """START + 1h01m of a 2h resolution: at risk (75 %) at START + 1h30m, the first change ahead."""
    memory, (key,) = issues(1)
    result = escalating_pass(memory, store, START + HOUR + MINUTE)
    assert summary(result).endswith(f"; next change due 2026-11-02T09:30:00Z ({key}: resolution at risk)")


def test_a_marker_a_person_removed_is_put_back_and_the_step_does_not_fire_again(store: Store) -> None:
    memory, (key,) = issues(1)
    escalating_pass(memory, store, START + HOUR + MINUTE)
    memory.set_field(key, "assignee", "erin", by="erin")
    memory.relabel(key, remove=["sla:escalated-1"], by="erin")
    result = escalating_pass(memory, store, START + HOUR + 2 * MINUTE)
    assert memory.issues[key].assignee == "erin"  # not assigned again
    assert "sla:escalated-1" in memory.issues[key].labels  # sla-sync's record is back
    assert [c.kind for o in result.outcomes for c in o.plan.changes] == ["add_labels"]
