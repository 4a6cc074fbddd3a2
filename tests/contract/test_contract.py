"""The contract every tracker adapter passes: the real Redmine and the GitLab and Jira fakes.

Each test drives the adapter through its harness (see ``harness.py``): it seeds the
tracker as people would, runs passes with ``sla_sync.sync.run_pass``, and reads the
tracker back directly.  Times are UTC on a 24x7 calendar so the arithmetic is plain.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from sla_sync.calendar import utc_seconds
from sla_sync.errors import AuthError, TrackerError
from sla_sync.model import State
from sla_sync.state import Store
from sla_sync.sync import PassResult, run_pass
from sla_sync.timers import evaluate
from tests.contract.harness import BODY, BREACH_NOTE, CUSTOM, REMAINING_FIELD, REPLY_NOTE, REPLY_STEP

KINDS = ["redmine", "gitlab", "jira", "jira_dc", "memory"]


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture(params=KINDS)
def harness(request: pytest.FixtureRequest) -> Any:
    return request.getfixturevalue(request.param)


class Sleeps(list[float]):
    """An injected sleep that records the waits instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def one_pass(harness: Any, store: Store, now: str, *, apply: bool = True, sleeps: Sleeps | None = None) -> PassResult:
    policy = harness.policy(BODY)
    tracker = harness.tracker(policy, sleep=sleeps)
    return run_pass(tracker, policy, store, utc_seconds(at(now)), apply=apply, run_id="t")


def test_history_maps_to_events(harness: Any) -> None:
    key = harness.create_issue("Slow dashboard", priority="P2", created_at=at("2026-11-02T09:00:00"))
    harness.comment(key, "It is still slow", by="erin", public=True, at=at("2026-11-02T09:10:00"))
    harness.comment(key, "Checking the logs", by="bob", public=False, at=at("2026-11-02T09:20:00"))
    harness.comment(key, "We are on it", by="alice", public=True, at=at("2026-11-02T09:30:00"))
    harness.set_status(key, "waiting", at=at("2026-11-02T10:00:00"))
    harness.set_status(key, "working", at=at("2026-11-02T11:00:00"))
    policy = harness.policy(BODY)
    fetched = harness.tracker(policy).fetch(None, {})
    issue = next(t.issue for t in fetched.issues if t.issue.key == key)

    comments = [(e.at, e.public, e.by_agent) for e in issue.events if e.kind == "comment"]
    assert comments == [
        (utc_seconds(at("2026-11-02T09:10:00")), True, False),  # the customer
        (utc_seconds(at("2026-11-02T09:20:00")), False, True),  # an agent, private
        (utc_seconds(at("2026-11-02T09:30:00")), True, True),  # an agent, public: the response
    ]
    waiting, working = policy.spec.clock.pause_statuses[0], issue.status
    statuses = [(e.at, e.to) for e in issue.events if e.kind == "status"]
    assert statuses[-2:] == [
        (utc_seconds(at("2026-11-02T10:00:00")), waiting),
        (utc_seconds(at("2026-11-02T11:00:00")), working),
    ]
    assert issue.created_at == utc_seconds(at("2026-11-02T09:00:00"))

    sla = evaluate(issue, policy, utc_seconds(at("2026-11-02T12:00:00")))
    assert sla.level == "P2"
    first = sla.metrics["first_response"]
    assert (first.state, first.elapsed_s) == (State.MET, 30 * 60)  # 09:00 → 09:30
    # resolution: 09:00-10:00 running, 10:00-11:00 waiting, 11:00-12:00 running = 2h
    assert sla.metrics["resolution"].elapsed_s == 2 * 3600


def test_write_back_escalates_once_and_second_pass_writes_nothing(harness: Any, state_url: str, tmp_path: Path) -> None:
    store = Store(state_url)
    key = harness.create_issue("Checkout down", priority="P1", created_at=at("2026-11-02T08:00:00"))

    # 13:00: resolution 5h of 8h (62.5 % ≥ 50 %: step 1), first response breached (5h > 30m)
    first = one_pass(harness, store, "2026-11-02T13:00:00")
    assert first.errors == []
    seen = harness.observe(key)
    assert seen.due_date == "2026-11-02"  # due 08:00 + 8h = 16:00 UTC
    assert seen.labels == {"sla:P1", "sla:breached", "sla:escalated-1"}
    assert harness.watchers(key) == {"manager"}
    assert harness.notes(key) == []

    harness.reset_requests()
    again = one_pass(harness, store, "2026-11-02T13:00:00")
    assert [o.plan.changes for o in again.outcomes if o.plan.changes] == []
    assert set(harness.requests()) <= {"GET"}

    # 17:00: resolution 9h > 8h: breached, step 2 assigns the manager with a private note
    one_pass(harness, store, "2026-11-02T17:00:00")
    seen = harness.observe(key)
    assert seen.assignee == "manager"
    assert seen.labels == {"sla:P1", "sla:breached", "sla:escalated-1", "sla:escalated-2"}
    assert harness.notes(key) == [(BREACH_NOTE, True)]

    harness.reset_requests()
    one_pass(harness, store, "2026-11-02T17:30:00")
    assert set(harness.requests()) <= {"GET"}
    assert harness.notes(key) == [(BREACH_NOTE, True)]


def test_a_lost_state_store_never_fires_a_step_twice(harness: Any, state_url: str, tmp_path: Path) -> None:
    key = harness.create_issue("Checkout down", priority="P1", created_at=at("2026-11-02T08:00:00"))
    one_pass(harness, Store(state_url), "2026-11-02T17:00:00")
    harness.reset_requests()
    fresh = one_pass(harness, Store(str(tmp_path / "fresh.sqlite")), "2026-11-02T17:00:00")
    assert [o.plan.changes for o in fresh.outcomes if o.plan.changes] == []
    assert set(harness.requests()) <= {"GET"}
    assert harness.notes(key) == [(BREACH_NOTE, True)]


def test_a_due_date_changed_by_hand_is_kept(harness: Any, state_url: str, tmp_path: Path) -> None:
    store = Store(state_url)
    key = harness.create_issue("Typo in invoice", priority="P3", created_at=at("2026-11-02T09:00:00"))
    one_pass(harness, store, "2026-11-02T10:00:00")
    assert harness.observe(key).due_date == "2026-11-05"  # 09:00 + 80h = Nov 5, 17:00
    harness.set_due_date(key, date(2026, 12, 24))
    result = one_pass(harness, store, "2026-11-02T11:00:00")
    assert harness.observe(key).due_date == "2026-12-24"
    assert [k for k, note in result.kept if "due date" in note] == [key]


def test_an_assignee_changed_by_hand_is_kept(harness: Any, state_url: str, tmp_path: Path) -> None:
    store = Store(state_url)
    key = harness.create_issue("Checkout down", priority="P1", created_at=at("2026-11-02T08:00:00"))
    one_pass(harness, store, "2026-11-02T17:00:00")
    assert harness.observe(key).assignee == "manager"
    harness.set_assignee(key, "carol")
    result = one_pass(harness, store, "2026-11-02T17:30:00")
    assert harness.observe(key).assignee == "carol"
    assert [k for k, note in result.kept if "assignee" in note] == [key]


def test_a_pause_status_stops_the_clock_on_the_tracker(harness: Any, state_url: str, tmp_path: Path) -> None:
    key = harness.create_issue("Export times out", priority="P2", created_at=at("2026-11-02T08:00:00"))
    harness.comment(key, "Which account?", by="alice", public=True, at=at("2026-11-02T08:30:00"))
    harness.set_status(key, "waiting", at=at("2026-11-02T09:00:00"))
    result = one_pass(harness, Store(state_url), "2026-11-03T09:00:00")
    resolution = next(o.sla for o in result.outcomes if o.key == key).metrics["resolution"]
    assert (resolution.state, resolution.elapsed_s) == (State.PAUSED, 3600)  # 08:00-09:00 only
    assert harness.observe(key).due_date is None  # paused: left alone


def test_unauthorized_is_a_clear_error_without_the_secret(harness: Any, state_url: str, tmp_path: Path) -> None:
    harness.create_issue("Anything", priority="P3", created_at=at("2026-11-02T08:00:00"))
    harness.fail_next(401, method="GET")
    with pytest.raises(AuthError) as err:
        one_pass(harness, Store(state_url), "2026-11-02T09:00:00")
    assert "authentication failed for" in str(err.value)
    assert "sla-sync-secret" not in str(err.value)


def test_not_found_names_the_tracker_and_what_to_do(harness: Any, state_url: str, tmp_path: Path) -> None:
    harness.fail_next(404, method="GET")
    with pytest.raises(TrackerError) as err:
        one_pass(harness, Store(state_url), "2026-11-02T09:00:00")
    message = str(err.value)
    assert harness.kind in message.lower()
    assert "check" in message


def test_rate_limits_are_waited_out_as_the_tracker_asks(harness: Any, state_url: str, tmp_path: Path) -> None:
    key = harness.create_issue("Anything", priority="P3", created_at=at("2026-11-02T08:00:00"))
    harness.fail_next(429, times=2, retry_after=7, method="GET")
    sleeps = Sleeps()
    result = one_pass(harness, Store(state_url), "2026-11-02T09:00:00", sleeps=sleeps)
    assert sleeps[:2] == [7, 7]
    assert key in {o.key for o in result.outcomes}


def test_server_errors_are_retried_within_bounds(harness: Any, state_url: str, tmp_path: Path) -> None:
    harness.create_issue("Anything", priority="P3", created_at=at("2026-11-02T08:00:00"))
    harness.fail_next(503, times=50, method="GET")
    sleeps = Sleeps()
    with pytest.raises(TrackerError) as err:
        one_pass(harness, Store(state_url), "2026-11-02T09:00:00", sleeps=sleeps)
    assert "try again later" in str(err.value)
    assert 1 <= len(sleeps) < 10  # bounded: a handful of attempts, not fifty
    assert sleeps == sorted(sleeps)  # backing off


def test_a_failed_fetch_writes_nothing(harness: Any, state_url: str, tmp_path: Path) -> None:
    key = harness.create_issue("Checkout down", priority="P1", created_at=at("2026-11-02T08:00:00"))
    harness.fail_next(500, times=50, method="GET")
    harness.reset_requests()
    with pytest.raises(TrackerError):
        one_pass(harness, Store(state_url), "2026-11-02T17:00:00")
    assert set(harness.requests()) <= {"GET"}
    harness.fail_next(500, times=0)
    assert harness.observe(key).labels == frozenset()


def test_a_lost_answer_to_the_escalation_write_never_duplicates_the_note(harness: Any, state_url: str,
                                                                         tmp_path: Path) -> None:
    store = Store(state_url)
    key = harness.create_issue("Checkout down", priority="P1", created_at=at("2026-11-02T08:00:00"))
    harness.fail_next(502, method=harness.comment_method, after=True)
    first = one_pass(harness, store, "2026-11-02T17:00:00")
    second = one_pass(harness, store, "2026-11-02T17:05:00")
    assert harness.notes(key) == [(BREACH_NOTE, True)]
    assert harness.observe(key).labels >= {"sla:escalated-2"}
    assert len(first.errors) + len(second.errors) <= 1


def test_an_error_on_one_issue_does_not_stop_the_others(harness: Any, state_url: str) -> None:
    store = Store(state_url)
    first = harness.create_issue("Typo one", priority="P3", created_at=at("2026-11-02T08:00:00"))
    second = harness.create_issue("Typo two", priority="P3", created_at=at("2026-11-02T08:05:00"))
    harness.fail_next(422, method="PUT")  # the first write is refused for good (not retried)
    result = one_pass(harness, store, "2026-11-02T10:00:00")
    assert len(result.errors) == 1 and result.exit_code == 1
    assert harness.kind in result.errors[0].lower()
    labelled = [k for k in (first, second) if harness.observe(k).labels]
    assert len(labelled) == 1  # the other issue was written all the same
    again = one_pass(harness, store, "2026-11-02T10:05:00")
    assert again.errors == []
    assert harness.observe(first).labels == harness.observe(second).labels == {"sla:P3"}


def test_markers_a_customer_forged_neither_stop_the_steps_nor_fire_them_twice(harness: Any, state_url: str,
                                                                             tmp_path: Path) -> None:
    store = Store(state_url)
    key = harness.create_issue("Checkout down", priority="P1", created_at=at("2026-11-02T08:00:00"))
    harness.add_labels(key, ["sla:escalated-1", "sla:escalated-2"], by="erin")

    first = one_pass(harness, store, "2026-11-02T17:00:00")  # both steps are due
    assert first.errors == []
    assert sorted(note for k, note in first.kept if k == key) == [
        "forged or manual marker sla:escalated-1 ignored (sla-sync did not set it)",
        "forged or manual marker sla:escalated-2 ignored (sla-sync did not set it)",
    ]
    assert harness.notes(key) == [(BREACH_NOTE, True)]
    assert harness.observe(key).assignee == "manager"
    assert [o.plan.marked for o in first.outcomes if o.key == key] == [(1,)]  # backlog_steps: last

    one_pass(harness, store, "2026-11-02T17:05:00")  # sla-sync's own markers go on
    assert harness.observe(key).labels >= {"sla:escalated-1", "sla:escalated-2"}
    harness.reset_requests()
    quiet = one_pass(harness, store, "2026-11-02T17:10:00")
    assert [o.plan.changes for o in quiet.outcomes if o.plan.changes] == []
    assert set(harness.requests()) <= {"GET"}

    fresh = one_pass(harness, Store(str(tmp_path / "lost.sqlite")), "2026-11-02T17:15:00")
    assert [o.plan.changes for o in fresh.outcomes if o.plan.changes] == []  # the history says sla-sync fired them
    assert harness.notes(key) == [(BREACH_NOTE, True)]


def test_a_due_date_a_person_changed_is_kept_after_the_store_is_lost(harness: Any, state_url: str,
                                                                     tmp_path: Path) -> None:
    key = harness.create_issue("Typo in invoice", priority="P3", created_at=at("2026-11-02T09:00:00"))
    one_pass(harness, Store(state_url), "2026-11-02T10:00:00")
    assert harness.observe(key).due_date == "2026-11-05"
    harness.set_due_date(key, date(2026, 12, 24))
    harness.comment(key, "Any news?", by="erin", public=True, at=at("2026-11-02T10:30:00"))  # the issue changes
    fresh = one_pass(harness, Store(str(tmp_path / "lost.sqlite")), "2026-11-02T11:00:00")
    assert harness.observe(key).due_date == "2026-12-24"  # the history says a person set it
    assert [note for k, note in fresh.kept if k == key] == [
        "due date set by hand to 2026-12-24 (not by sla-sync): kept"]


def non_get(harness: Any) -> int:
    return sum(n for method, n in harness.requests().items() if method != "GET")


REMAINING_BODY = BODY + f'writeback:\n  remaining_field: "{REMAINING_FIELD}"\n'


@pytest.mark.parametrize("kind", ["redmine", "jira", "jira_dc", "memory"])  # GitLab has no custom fields
def test_the_time_left_is_written_once_per_hour_and_a_second_pass_writes_nothing(
        kind: str, request: pytest.FixtureRequest, state_url: str) -> None:
    harness = request.getfixturevalue(kind)
    store = Store(state_url)
    policy = harness.policy(REMAINING_BODY)
    key = harness.create_issue("Slow export", priority="P2", created_at=at("2026-11-02T08:00:00"))

    def run(now: str) -> PassResult:
        return run_pass(harness.tracker(policy), policy, store, utc_seconds(at(now)), apply=True, run_id="t")

    assert run("2026-11-02T10:30:00").errors == []  # resolution 24h, 2.5h used: 21.5h left, shown as 21
    assert harness.observe(key).remaining == "21"
    harness.reset_requests()
    again = run("2026-11-02T10:30:00")
    assert [o.plan.changes for o in again.outcomes if o.plan.changes] == []
    assert non_get(harness) == 0
    run("2026-11-02T10:59:00")  # still 21 whole hours left
    assert non_get(harness) == 0
    run("2026-11-02T11:30:00")  # 20.5h left
    assert harness.observe(key).remaining == "20"
    assert non_get(harness) == 1  # the one field, in one write
    harness.reset_requests()
    run("2026-11-03T09:30:00")  # 25.5h used: breached 1.5h ago, shown as -2 (rounded down)
    assert harness.observe(key).remaining == "-2"


HEALTH_BODY = BODY + "writeback:\n  health_status: true\n"


@pytest.mark.parametrize("kind", ["gitlab", "memory"])  # Redmine and Jira have no health status
def test_the_health_status_follows_the_clocks(kind: str, request: pytest.FixtureRequest, state_url: str) -> None:
    harness = request.getfixturevalue(kind)
    store = Store(state_url)
    policy = harness.policy(HEALTH_BODY)
    key = harness.create_issue("Checkout down", priority="P1", created_at=at("2026-11-02T08:00:00"))

    def run(now: str) -> PassResult:
        return run_pass(harness.tracker(policy), policy, store, utc_seconds(at(now)), apply=True, run_id="t")

    seen = []
    for now in ("2026-11-02T08:05:00",  # first response 30m: 5m used
                "2026-11-02T08:25:00",  # 25m used, past the 75 % warning
                "2026-11-02T08:40:00"):  # breached
        assert run(now).errors == []
        seen.append(harness.observe(key).health_status)
    assert seen == ["on_track", "needs_attention", "at_risk"]
    harness.reset_requests()
    again = run("2026-11-02T08:40:00")
    assert [o.plan.changes for o in again.outcomes if o.plan.changes] == []
    assert non_get(harness) == 0


def answered_once(harness: Any) -> str:
    """A P3 issue: a customer asked at 09:00, an agent answered at 09:30, the customer
    wrote again at 10:00 (unanswered)."""
    key = harness.create_issue("Invoice wrong", priority="P3", created_at=at("2026-11-02T08:00:00"))
    harness.comment(key, "Any news?", by="erin", public=True, at=at("2026-11-02T09:00:00"))
    harness.comment(key, "Looking into it.", by="alice", public=True, at=at("2026-11-02T09:30:00"))
    harness.comment(key, "Still wrong.", by="erin", public=True, at=at("2026-11-02T10:00:00"))
    return key


def test_custom_metrics_run_on_the_tracker(harness: Any, state_url: str, tmp_path: Path) -> None:
    """The tracker's comments drive reply cycles; a step on a custom metric fires
    once; the due date follows a custom metric; a second pass writes nothing."""
    store = Store(state_url)
    policy = harness.policy(CUSTOM)
    answered = answered_once(harness)
    waiting = harness.create_issue("Export fails", priority="P3", created_at=at("2026-11-02T08:00:00"))
    harness.comment(waiting, "Any news?", by="erin", public=True, at=at("2026-11-02T09:00:00"))
    now = utc_seconds(at("2026-11-02T12:00:00"))
    first = run_pass(harness.tracker(policy), policy, store, now, apply=True, run_id="t")
    assert first.errors == []
    by_key = {o.key: o for o in first.outcomes}
    reply = by_key[answered].sla.metrics["next_reply"]
    # 09:00-09:30 answered; 10:00 unanswered: 2h of 4h, due 14:00
    assert (reply.state, reply.elapsed_s, reply.cycles, reply.breached_cycles) == (State.RUNNING, 7200, 2, 0)
    assert by_key[answered].sla.metrics["first_answer"].state is State.MET
    assert by_key[waiting].sla.metrics["first_answer"].state is State.BREACHED  # 09:00 + 2h: 11:00
    # (commenting makes the customer a watcher on some trackers)
    assert "manager" in harness.watchers(waiting) and "sla:escalated-1" in harness.observe(waiting).labels
    assert "manager" not in harness.watchers(answered)
    assert "sla:escalated-1" not in harness.observe(answered).labels
    assert harness.observe(answered).due_date == "2026-11-02"
    harness.reset_requests()
    again = run_pass(harness.tracker(policy), policy, store, now + 300, apply=True, run_id="t")
    assert [o.plan.changes for o in again.outcomes if o.plan.changes] == []
    assert set(harness.requests()) <= {"GET"}


def test_a_step_on_a_repeating_metric_fires_once_per_cycle(harness: Any, state_url: str) -> None:
    """Each reply cycle escalates once: the step's comment and marker in cycle 1,
    the marker taken off when cycle 2 opens, comment and marker again in cycle 2;
    passes in between write nothing."""
    store = Store(state_url)
    policy = harness.policy(REPLY_STEP)
    key = harness.create_issue("Invoice wrong", priority="P3", created_at=at("2026-11-02T08:00:00"))
    harness.comment(key, "Any news?", by="erin", public=True, at=at("2026-11-02T09:00:00"))

    def run(when: str) -> PassResult:
        # full passes: seeding back-dates the real Redmine's update times behind a delta pass's cursor
        result = run_pass(harness.tracker(policy), policy, store, utc_seconds(at(when)), apply=True, run_id="t",
                          full=True)
        assert result.errors == []
        harness.writes_at(key, at(when))
        return result

    def step_notes() -> int:
        return sum(text == REPLY_NOTE for text, _ in harness.notes(key))

    def marked() -> bool:
        return "sla:escalated-1" in harness.observe(key).labels

    run("2026-11-02T11:59:00")  # 2h59m of 4h: under 75%
    assert (step_notes(), marked()) == (0, False)
    run("2026-11-02T12:01:00")  # 3h01m: cycle 1 escalates
    assert (step_notes(), marked()) == (1, True)
    harness.reset_requests()
    quiet = run("2026-11-02T12:05:00")
    assert [o.plan.changes for o in quiet.outcomes if o.plan.changes] == []
    assert set(harness.requests()) <= {"GET"}

    harness.comment(key, "Looking into it.", by="alice", public=True, at=at("2026-11-02T12:30:00"))
    harness.comment(key, "Still wrong.", by="erin", public=True, at=at("2026-11-02T13:00:00"))
    opened = run("2026-11-02T13:30:00")  # cycle 2: 30m, its step not due; cycle 1's marker comes off
    assert [o.sla.metrics["next_reply"].cycles for o in opened.outcomes if o.key == key] == [2]
    assert (step_notes(), marked()) == (1, False)
    run("2026-11-02T16:01:00")  # cycle 2: 3h01m
    assert (step_notes(), marked()) == (2, True)
    harness.reset_requests()
    again = run("2026-11-02T16:10:00")
    assert [o.plan.changes for o in again.outcomes if o.plan.changes] == []
    assert set(harness.requests()) <= {"GET"}


def test_custom_metrics_in_explain_and_report_from_the_tracker(harness: Any) -> None:
    """What `explain`, `report` and `compare` read without --input (the tracker's
    export, ``fetch_all``) gives the same cycles as the pass."""
    from sla_sync.explain import explain
    from sla_sync.report import Period, ReportBuilder

    policy = harness.policy(CUSTOM)
    key = answered_once(harness)
    now = utc_seconds(at("2026-11-02T12:00:00"))
    issue = next(t.issue for t in harness.tracker(policy).fetch_all(None) if t.issue.key == key)
    story = next(m for m in explain(issue, policy, now).metrics if m.metric == "next_reply")
    assert [(s.cycle, s.kind, s.start, s.end) for s in story.segments] == [
        (1, "running", utc_seconds(at("2026-11-02T09:00:00")), utc_seconds(at("2026-11-02T09:30:00"))),
        (1, "stopped", utc_seconds(at("2026-11-02T09:30:00")), utc_seconds(at("2026-11-02T10:00:00"))),
        (2, "running", utc_seconds(at("2026-11-02T10:00:00")), now),
    ]
    builder = ReportBuilder(policy, "level", Period(None, None), now)
    builder.add(issue, evaluate(issue, policy, now))
    stats = builder.result().groups["P3"].metrics["next_reply"]
    assert (stats.running, stats.cycles, stats.breached_cycles, stats.cycle_compliance) == (1, 2, 0, 1.0)


def test_re_reading_a_key_the_tracker_does_not_have_answers_the_others(harness: Any) -> None:
    """``refresh`` (``explain KEY`` without --input, and the re-read after a pass's
    writes) of a key with no issue behind it: no such issue, not a failure; the
    other keys' issues come back."""
    import re

    key = harness.create_issue("Still here", priority="P3", created_at=at("2026-11-02T08:00:00"))
    missing = re.sub(r"\d+$", "99999", key)
    tracker = harness.tracker(harness.policy(BODY))
    assert [t.issue.key for t in tracker.refresh([missing, key])] == [key]
    assert tracker.refresh([missing]) == []
