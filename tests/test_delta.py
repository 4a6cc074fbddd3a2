"""Delta passes: a pass reads what changed since the cursor, and the issues whose SLA
changes by time come from the state store's mirror (issue 10, items 1 to 3).

On the in-memory tracker (which counts requests like a tracker: one GET per list
page, one per issue read) and the Jira fake over real HTTP.  The policy is the
contract suite's (24x7 UTC; P1: resolution 8h, step 1 at 50 %, step 2 when
breached) with ``reconcile_every: 6h``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from sla_sync.calendar import utc_seconds
from sla_sync.model import Issue
from sla_sync.neutral import issue_from_json, issue_to_json
from sla_sync.state import Store
from sla_sync.sync import PassResult, run_pass
from tests.contract.gitlab_harness import PROJECT
from tests.contract.harness import BODY

KINDS = ["memory", "jira", "gitlab"]


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture(params=KINDS)
def harness(request: pytest.FixtureRequest) -> Any:
    return request.getfixturevalue(request.param)


def one_pass(h: Any, store: Store, now: str, *, full: bool = False, reconcile: str = "6h") -> PassResult:
    policy = h.policy(BODY)
    data = policy.spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    assert data["tracker"]["reconcile_every"] == "6h"  # the default
    if reconcile != "6h":
        from sla_sync.policy import compile_policy
        from sla_sync.schema import PolicyFile

        data["tracker"]["reconcile_every"] = reconcile
        policy = compile_policy(PolicyFile.model_validate(data))
    if h.kind == "memory":  # the tracker's clock is the pass's: what it writes is stamped now
        h.memory.now = max(h.memory.now, utc_seconds(at(now)))
    if h.kind == "gitlab":  # so too the fake's (an earlier test may have left it ahead)
        h.fake.now = at(now)
    return run_pass(h.tracker(policy), policy, store, utc_seconds(at(now)), apply=True, run_id="t", full=full)


def test_a_quiet_delta_pass_is_one_query(harness: Any, tmp_path: Path) -> None:
    store = Store(str(tmp_path / "state.sqlite"))
    for i in range(3):
        harness.create_issue(f"Slow {i}", priority="P3", created_at=at("2026-11-02T08:00:00"))
    first = one_pass(harness, store, "2026-11-02T09:00:00")
    assert first.full and first.fetched == 3
    harness.reset_requests()
    quiet = one_pass(harness, store, "2026-11-02T09:10:00")
    assert not quiet.full and quiet.due == 0
    assert quiet.outcomes == [] or all(not o.plan.changes for o in quiet.outcomes)
    # "what changed since the cursor?", and nothing else; Jira's client also asks, once per
    # process, for the server's version and the API user (its timezone)
    assert harness.requests() == {"GET": 1 if harness.kind != "jira" else 3}


def settle(h: Any, store: Store, spare: str, when: str) -> None:
    """A person's change to ``spare`` and a pass just after: the cursor moves past
    sla-sync's own earlier writes, so the next delta lists only what changes later."""
    h.comment(spare, "Any news?", by="erin", public=True, at=at(when))
    one_pass(h, store, when.replace(":00:", ":01:", 1))


def test_an_issue_a_person_changed_is_seen_by_the_next_delta_pass(memory: Any, tmp_path: Path) -> None:
    store = Store(str(tmp_path / "state.sqlite"))
    key = memory.create_issue("Checkout down", priority="P1", created_at=at("2026-11-02T08:00:00"))
    other = memory.create_issue("Typo", priority="P3", created_at=at("2026-11-02T08:00:00"))
    spare = memory.create_issue("Spare", priority="P3", created_at=at("2026-11-02T08:00:00"))
    one_pass(memory, store, "2026-11-02T09:00:00")
    settle(memory, store, spare, "2026-11-02T09:20:00")
    memory.set_status(key, "waiting", at=at("2026-11-02T09:30:00"))  # waiting for the customer: paused
    delta = one_pass(memory, store, "2026-11-02T09:40:00")
    assert not delta.full
    assert key in {o.key for o in delta.outcomes} and other not in {o.key for o in delta.outcomes}
    assert next(o for o in delta.outcomes if o.key == key).sla.metrics["resolution"].state == "paused"


def test_a_threshold_crossed_by_time_alone_is_written_reading_only_the_delta_query(memory: Any,
                                                                                    tmp_path: Path) -> None:
    store = Store(str(tmp_path / "state.sqlite"))
    key = memory.create_issue("Checkout down", priority="P1", created_at=at("2026-11-02T08:00:00"))
    spare = memory.create_issue("Spare", priority="P3", created_at=at("2026-11-02T08:00:00"))
    for i in range(3):
        memory.create_issue(f"Slow {i}", priority="P3", created_at=at("2026-11-02T08:00:00"))
    first = one_pass(memory, store, "2026-11-02T10:00:00")  # 2h of 8h: nothing due
    assert first.upcoming is not None and first.upcoming.at == utc_seconds(at("2026-11-02T12:00:00"))
    assert (first.upcoming.key, first.upcoming.why) == (key, "escalation step 1")  # 4h: 50 %
    settle(memory, store, spare, "2026-11-02T10:30:00")
    memory.reset_requests()
    crossed = one_pass(memory, store, "2026-11-02T12:00:00")
    assert not crossed.full and crossed.due == 1
    assert [(o.key, o.plan.fired) for o in crossed.outcomes if o.plan.fired] == [(key, (1,))]
    assert memory.watchers(key) == {"manager"}
    # GET: the delta query (the spare issue, written at 10:30:01, is still in its overlap),
    # the in-scope check of the one due issue, the re-read of the written issue (history
    # included): never the other open issues.  PUT: the marker label; POST: the watcher.
    assert memory.requests() == {"GET": 3, "PUT": 1, "POST": 1}


def test_an_issue_moved_out_is_dropped_and_never_written(memory: Any, tmp_path: Path) -> None:
    store = Store(str(tmp_path / "state.sqlite"))
    moved = memory.create_issue("Checkout down", priority="P1", created_at=at("2026-11-02T08:00:00"))
    kept = memory.create_issue("Typo", priority="P3", created_at=at("2026-11-02T08:00:00"))
    one_pass(memory, store, "2026-11-02T10:00:00")
    settle(memory, store, kept, "2026-11-02T10:30:00")
    record = memory.memory.issues[moved]
    record.project = "elsewhere"  # moved to another project (its update time as it was)
    memory.reset_requests()
    crossed = one_pass(memory, store, "2026-11-02T12:00:00")  # step 1 of `moved` would be due now
    assert moved not in {o.key for o in crossed.outcomes}
    assert memory.requests().get("PUT", 0) == 0 and not record.watchers
    assert moved not in store.mirror_keys(memory.policy(BODY).state_key)
    full = one_pass(memory, store, "2026-11-02T17:00:00", full=True)
    assert moved not in {o.key for o in full.outcomes} and kept in {o.key for o in full.outcomes}


def test_a_full_reconciliation_drops_an_issue_the_listing_no_longer_shows(memory: Any, tmp_path: Path) -> None:
    store = Store(str(tmp_path / "state.sqlite"))
    gone = memory.create_issue("Typo", priority="P3", created_at=at("2026-11-02T08:00:00"))
    one_pass(memory, store, "2026-11-02T09:00:00")
    memory.memory.issues[gone].project = "elsewhere"
    later = one_pass(memory, store, "2026-11-02T15:30:00")  # 6h30 since the first: reconcile_every 6h
    assert later.full
    assert gone not in store.mirror_keys(memory.policy(BODY).state_key)
    assert gone not in store.remembered(memory.policy(BODY).state_key)


@pytest.mark.parametrize("reconcile", ["0", "6h"])
def test_reconcile_every(memory: Any, tmp_path: Path, reconcile: str) -> None:
    store = Store(str(tmp_path / "state.sqlite"))
    memory.create_issue("Typo", priority="P3", created_at=at("2026-11-02T08:00:00"))
    assert one_pass(memory, store, "2026-11-02T09:00:00", reconcile=reconcile).full
    assert one_pass(memory, store, "2026-11-02T09:10:00", reconcile=reconcile).full == (reconcile == "0")
    assert one_pass(memory, store, "2026-11-02T14:59:59", reconcile=reconcile).full == (reconcile == "0")
    assert one_pass(memory, store, "2026-11-02T15:00:00", reconcile=reconcile).full  # 6h after the last full


def test_a_deleted_store_makes_a_full_pass_that_writes_nothing_twice(harness: Any, tmp_path: Path) -> None:
    key = harness.create_issue("Checkout down", priority="P1", created_at=at("2026-11-02T08:00:00"))
    one_pass(harness, Store(str(tmp_path / "a.sqlite")), "2026-11-02T13:00:00")
    one_pass(harness, Store(str(tmp_path / "a.sqlite")), "2026-11-02T13:10:00")
    harness.reset_requests()
    fresh = one_pass(harness, Store(str(tmp_path / "b.sqlite")), "2026-11-02T13:20:00")
    assert fresh.full
    assert [o.plan.changes for o in fresh.outcomes if o.plan.changes] == []
    assert set(harness.requests()) <= {"GET"}
    assert harness.watchers(key) == {"manager"}


def test_in_scope_tells_open_issues_of_the_project_from_the_rest(harness: Any) -> None:
    """What a delta pass asks before acting on mirrored issues it did not fetch: one list
    query per 100 keys; a deleted issue (which Jira's search refuses by name) is out."""
    keep = harness.create_issue("Open", priority="P3", created_at=at("2026-11-02T08:00:00"))
    done = harness.create_issue("Resolved", priority="P3", created_at=at("2026-11-02T08:00:00"))
    harness.set_status(done, "resolved", at=at("2026-11-02T09:00:00"))
    deleted = harness.create_issue("Deleted", priority="P3", created_at=at("2026-11-02T08:00:00"))
    harness.delete_issue(deleted)
    tracker = harness.tracker(harness.policy(BODY))
    assert tracker.in_scope([keep, done, deleted]) == {keep}
    assert tracker.in_scope([keep]) == {keep}


@pytest.mark.parametrize("kind", ["jira", "jira_dc"])
def test_jira_in_scope_asks_for_the_keys_only(kind: str, request: pytest.FixtureRequest) -> None:
    """The check's JQL does the work: its searches ask for no fields and no history
    (a page of 100 full issues with their changelogs is what a search costs most)."""
    harness = request.getfixturevalue(kind)
    keep = harness.create_issue("Open", priority="P3", created_at=at("2026-11-02T08:00:00"))
    tracker = harness.tracker(harness.policy(BODY))
    harness.fake.log.clear()
    assert tracker.in_scope([keep]) == {keep}
    searches = [r.json() for r in harness.fake.log if "/search" in r.path]
    assert [(s["fields"], "changelog" in (s.get("expand") or "")) for s in searches] == [(["key"], False)]


@pytest.mark.parametrize("kind", ["jira", "jira_dc"])
def test_jira_in_scope_checks_a_thousand_keys_a_request(kind: str, request: pytest.FixtureRequest) -> None:
    """1,000 issues due by time cost one check, sent by POST (a thousand keys in a
    GET's URL is over what Tomcat and proxies take); a deleted one among them costs a
    few halvings of the search, not a request per key."""
    harness = request.getfixturevalue(kind)
    keys = [harness.create_issue(f"Open {n}", priority="P3", created_at=at("2026-11-02T08:00:00"))
            for n in range(1001)]
    tracker = harness.tracker(harness.policy(BODY))
    harness.fake.log.clear()
    assert tracker.in_scope(keys[:1000]) == set(keys[:1000])
    assert [r.method for r in harness.fake.log if "/search" in r.path] == ["POST"]

    harness.delete_issue(keys[500])
    harness.fake.log.clear()
    assert tracker.in_scope(keys) == set(keys) - {keys[500]}
    searches = [r for r in harness.fake.log if "/search" in r.path]
    assert len(searches) <= 2 + 2 * 10  # the 1,001st key's own page, and halvings: 2 per level of log2(1000)
    assert len(harness.fake.log) == len(searches)  # and no per-issue reads


class DeletedWhileWriting:
    """The policy's tracker, but each issue named in ``doomed`` is deleted on the
    tracker just before sla-sync writes it (a person deleted it during the pass)."""

    def __init__(self, tracker: Any, h: Any, doomed: set[str]) -> None:
        self.tracker, self.h, self.doomed = tracker, h, doomed

    def __getattr__(self, name: str) -> Any:
        return getattr(self.tracker, name)

    def apply(self, key: str, changes: Any) -> None:
        if key in self.doomed:
            self.h.delete_issue(key)
        self.tracker.apply(key, changes)


def test_a_write_answered_not_found_drops_the_issue_without_an_error(harness: Any, tmp_path: Path) -> None:
    store = Store(str(tmp_path / "state.sqlite"))
    doomed = harness.create_issue("Checkout down", priority="P1", created_at=at("2026-11-02T08:00:00"))
    kept = harness.create_issue("Login down", priority="P1", created_at=at("2026-11-02T08:00:00"))
    one_pass(harness, store, "2026-11-02T10:00:00")  # 2h of 8h: nothing to write yet
    policy = harness.policy(BODY)
    tracker = DeletedWhileWriting(harness.tracker(policy), harness, {doomed})
    crossed = run_pass(tracker, policy, store, utc_seconds(at("2026-11-02T12:00:00")), apply=True, run_id="t")
    assert crossed.errors == [] and crossed.exit_code == 0
    assert crossed.counts()["dropped"] == 1
    assert [o.key for o in crossed.outcomes if o.applied] == [kept]
    assert harness.watchers(kept) == {"manager"}
    assert doomed not in store.mirror_keys(policy.state_key) and kept in store.mirror_keys(policy.state_key)
    assert doomed not in store.remembered(policy.state_key)
    later = one_pass(harness, store, "2026-11-02T16:30:00")  # step 2 of `kept` (breached); `doomed` is gone
    assert doomed not in {o.key for o in later.outcomes} and later.errors == []


def test_a_not_found_about_something_else_stays_an_error(memory: Any, tmp_path: Path) -> None:
    """A 404 while the issue is still there (say, about a watcher) is the issue's error."""
    from sla_sync.errors import GoneError

    class Refusing(DeletedWhileWriting):
        def apply(self, key: str, changes: Any) -> None:
            raise GoneError(f"memory: issue {key}: adding watchers: not found (404)")

    store = Store(str(tmp_path / "state.sqlite"))
    key = memory.create_issue("Checkout down", priority="P1", created_at=at("2026-11-02T08:00:00"))
    one_pass(memory, store, "2026-11-02T10:00:00")
    policy = memory.policy(BODY)
    crossed = run_pass(Refusing(memory.tracker(policy), memory, set()), policy, store,
                       utc_seconds(at("2026-11-02T12:00:00")), apply=True, run_id="t")
    assert crossed.counts()["dropped"] == 0 and crossed.exit_code == 1
    assert crossed.errors == [f"memory: issue {key}: adding watchers: not found (404)"]
    assert key in store.mirror_keys(policy.state_key)


def test_a_quiet_delta_pass_names_the_next_change_of_an_issue_it_did_not_read(memory: Any,
                                                                               tmp_path: Path) -> None:
    """The summary's next change (and `watch`'s wake-up) come from the whole mirror,
    not only from the issues the pass read."""
    store = Store(str(tmp_path / "state.sqlite"))
    key = memory.create_issue("Checkout down", priority="P1", created_at=at("2026-11-02T08:00:00"))
    spare = memory.create_issue("Spare", priority="P3", created_at=at("2026-11-02T08:00:00"))
    one_pass(memory, store, "2026-11-02T10:00:00")
    settle(memory, store, spare, "2026-11-02T10:30:00")
    quiet = one_pass(memory, store, "2026-11-02T11:00:00")
    assert key not in {o.key for o in quiet.outcomes}
    assert quiet.upcoming is not None
    assert (quiet.upcoming.at, quiet.upcoming.key, quiet.upcoming.why) == (
        utc_seconds(at("2026-11-02T12:00:00")), key, "escalation step 1")


def test_the_gauges_count_every_mirrored_issue_after_a_delta_pass(memory: Any, tmp_path: Path) -> None:
    store = Store(str(tmp_path / "state.sqlite"))
    for i in range(3):
        memory.create_issue(f"Slow {i}", priority="P3", created_at=at("2026-11-02T08:00:00"))
    memory.create_issue("Checkout down", priority="P1", created_at=at("2026-11-02T08:00:00"))
    spare = memory.create_issue("Spare", priority="P3", created_at=at("2026-11-02T08:00:00"))
    one_pass(memory, store, "2026-11-02T09:00:00")
    settle(memory, store, spare, "2026-11-02T09:20:00")
    quiet = one_pass(memory, store, "2026-11-02T09:40:00")
    assert [o.key for o in quiet.outcomes] == [spare]  # in the overlap window; the others not even loaded
    assert quiet.tallies is not None and sum(quiet.tallies.values()) == 5
    levels = sorted((orjson.loads(states)[0], n) for states, n in quiet.tallies.items())
    assert levels == [("P1", 1), ("P3", 4)]


ISSUES = "/api/v4/projects/{pid}/issues"
HISTORY = [ISSUES + "/{iid}/" + kind for kind in ("resource_label_events", "resource_state_events")]


def reread(h: Any, keys: list[str]) -> dict[str, tuple[str, Issue]]:
    """The issues as a whole read gives them (``explain KEY``'s read), as the state
    store keeps them: (version, issue)."""
    return {t.issue.key: (t.version, issue_from_json(issue_to_json(t.issue)))
            for t in h.tracker(h.policy(BODY)).refresh(keys)}


def mirror_of(h: Any, store: Store) -> dict[str, tuple[str, Issue]]:
    return {k: (c.version, c.issue) for k, c in store.cached(h.policy(BODY).state_key).items()}


def test_gitlab_builds_the_written_issues_from_its_writes_without_reading_them(gitlab: Any, tmp_path: Path) -> None:
    """After its writes, a pass reads the written issues' rows back in one list query
    per 100; a row that shows nothing but sla-sync's own writes since the copy the
    pass planned on needs no history read: the copy and GitLab's answers to the
    writes give the history, the same one a whole read gives."""
    store = Store(str(tmp_path / "state.sqlite"))
    keys = [gitlab.create_issue(f"Outage {i}", priority="P1", created_at=at("2026-11-02T08:00:00"))
            for i in range(3)]
    first = one_pass(gitlab, store, "2026-11-02T10:00:00")  # labels and due dates
    assert sorted(o.key for o in first.outcomes if o.applied) == sorted(keys)
    assert all(gitlab.fake.counts[("GET", path)] == 3 for path in HISTORY)  # read once, to plan; not again
    gitlab.reset_requests()
    crossed = one_pass(gitlab, store, "2026-11-02T12:00:00")  # step 1: a note and its marker label
    assert sorted(o.key for o in crossed.outcomes if o.applied) == sorted(keys)
    counts = gitlab.fake.counts
    assert counts[("GET", ISSUES)] == 2  # the delta query; the written issues' rows in one page
    assert counts[("GET", ISSUES + "/{iid}")] == 0
    assert [counts[("GET", path)] for path in HISTORY] == [0, 0]
    assert counts[("GET", ISSUES + "/{iid}/notes")] == 3  # the marker check before each step's note
    mirrored = mirror_of(gitlab, store)
    assert mirrored == reread(gitlab, keys)
    assert all(any(e.kind == "comment" and e.by_self for e in mirrored[k][1].events) for k in keys)
    gitlab.reset_requests()
    one_pass(gitlab, store, "2026-11-02T12:10:00")
    assert gitlab.requests() == {"GET": 1}  # nothing to read back


PERSON = {
    "comment": lambda h, key: h.comment(key, "Looking at the logs now.", by="alice", public=True,
                                        at=h.fake.now),
    "label": lambda h, key: h.add_labels(key, ["vip"], by="alice"),
    "assignee": lambda h, key: h.set_assignee(key, "bob"),
    "due date": lambda h, key: h.set_due_date(key, date(2026, 11, 20)),
    "close": lambda h, key: h.set_status(key, "resolved", at=h.fake.now),
}


@pytest.mark.parametrize("change", sorted(PERSON))
def test_gitlab_reads_the_history_of_a_written_issue_a_person_changed_meanwhile(
        gitlab: Any, tmp_path: Path, change: str) -> None:
    """A person's change between the pass's read of an issue and its write lands in
    the written issue's row (a note more, other labels, assignees, due date or
    state): that issue's history is read whole, and the mirror has the person's change."""
    store = Store(str(tmp_path / "state.sqlite"))
    keys = [gitlab.create_issue(f"Outage {i}", priority="P1", created_at=at("2026-11-02T08:00:00"))
            for i in range(2)]
    one_pass(gitlab, store, "2026-11-02T10:00:00")
    target, done = keys[0], []

    def person(method: str, path: str) -> None:
        if method == "PUT" and path.split("?")[0].endswith(f"/issues/{target}") and not done:
            done.append(path)
            PERSON[change](gitlab, target)

    gitlab.hook(person)
    gitlab.reset_requests()
    try:
        one_pass(gitlab, store, "2026-11-02T12:00:00")
    finally:
        gitlab.hook(None)
    assert done
    assert [gitlab.fake.counts[("GET", path)] for path in HISTORY] == [1, 1]  # the changed one only
    mirrored = mirror_of(gitlab, store)
    assert mirrored == reread(gitlab, keys)
    if change == "close":
        assert target not in store.mirror_keys(gitlab.policy(BODY).state_key)  # closed: out of the mirror
    else:
        assert any(SEEN[change](e) for e in mirrored[target][1].events)


SEEN = {
    "comment": lambda e: e.kind == "comment" and e.author == "alice" and e.by_agent,
    "label": lambda e: e.kind == "label" and e.added == ("vip",) and not e.by_self,
    "assignee": lambda e: e.kind == "field" and e.field == "assignee" and e.to == "bob" and not e.by_self,
    "due date": lambda e: e.kind == "field" and e.field == "due_date" and e.to == "2026-11-20" and not e.by_self,
}


def test_gitlab_sees_an_agents_reply_within_a_minute_of_its_write(gitlab: Any, tmp_path: Path) -> None:
    """An agent answers 30 s after sla-sync's write: GitLab's throttled touch keeps
    the issue's ``updated_at`` (and so its version) where the write left it, and
    the next pass still reads the reply: the first response is met, not missed."""
    store = Store(str(tmp_path / "state.sqlite"))
    key = gitlab.create_issue("Checkout down", priority="P1", created_at=at("2026-11-02T08:00:00"))
    first = one_pass(gitlab, store, "2026-11-02T08:10:00")  # labels and the due date
    assert [o.key for o in first.outcomes if o.applied] == [key]
    written = gitlab.fake.issue(PROJECT, int(key)).updated_at
    gitlab.comment(key, "Looking into it.", by="alice", public=True, at=at("2026-11-02T08:10:30"))
    assert gitlab.fake.issue(PROJECT, int(key)).updated_at == written
    after = one_pass(gitlab, store, "2026-11-02T08:20:00")
    assert [o.sla.metrics["first_response"].state for o in after.outcomes if o.key == key] == ["met"]
    later = one_pass(gitlab, store, "2026-11-02T08:40:00")  # past the 30m target
    assert all(o.sla.metrics["first_response"].state == "met" for o in later.outcomes if o.key == key)


def test_a_pass_finds_its_due_issues_by_an_index_not_a_scan(tmp_path: Path) -> None:
    """The due issues and the next change come from an index on (policy, next_at),
    added to a store made before it on the store's next opening."""
    import sqlite3

    path = tmp_path / "state.sqlite"
    Store(str(path))
    with sqlite3.connect(path) as db:
        db.execute("DROP INDEX ix_mirror_policy_next_at")  # a store from before the index
    Store(str(path))
    with sqlite3.connect(path) as db:
        plan = db.execute("EXPLAIN QUERY PLAN SELECT key FROM mirror WHERE policy = 'p' AND next_at IS NOT NULL "
                          "AND next_at > 5 ORDER BY next_at LIMIT 1").fetchall()
    assert any("ix_mirror_policy_next_at" in str(row[-1]) for row in plan), plan
