"""Custom metrics (``metrics:``): start, stop and pause conditions, and cycles
(issue 11).  Each rule of the semantics pinned by a table, then a slow
minute-by-minute reference, written apart from the engine, that the engine must
agree with on random histories.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sla_sync.model import SlaState
from sla_sync.neutral import issue_from_json
from sla_sync.policy import parse_policy
from sla_sync.positions import PolicyError
from sla_sync.timers import evaluate
from tests.support import comment, field_change, iso, label, status, ts

METRICS = """
metrics:
  triage:
    start: [created]
    stop: [{label: [triaged]}, resolved]
  l2_ownership:
    start: [{assignee: [l2-team]}]
    stop: [{status: [In Progress]}, resolved]
    pause_when: {status: [Feedback]}
  next_reply:
    start: [{comment: customer}]
    stop: [{comment: agent}]
    repeat: true
  periodic_update:
    start: [created, {comment: agent}]
    stop: [{comment: agent}, resolved]
    repeat: true
  until_urgent:
    start: [{priority: [Urgent]}]
    stop: [{field: {Severity: [low]}}, reopened]
    pause_statuses: false
"""


def policy_text(levels: str, metrics: str = METRICS, calendar: str = "always") -> str:
    return f"""
name: custom
calendars:
  always: {{timezone: UTC, hours: 24x7}}
  office:
    timezone: Europe/Madrid
    hours: {{mon: ["09:00-17:00"], tue: ["09:00-17:00"], wed: ["09:00-17:00"], thu: ["09:00-17:00"],
            fri: ["09:00-17:00"]}}
clock:
  pause_statuses: [Waiting]
  resolved_statuses: [Resolved, Closed]
{metrics}
levels:
  P1: {{calendar: {calendar}, {levels}}}
classify:
  - level: P1
"""


def state(metric: str, target: str, events: list[dict[str, Any]], now: str, *, status_now: str = "New",
          created: str = "2026-11-02T10:00:00Z", assignee: str | None = None, priority: str | None = None,
          fields: dict[str, Any] | None = None, labels: tuple[str, ...] = ()) -> SlaState:
    policy = parse_policy(policy_text(f"{metric}: {target}"))
    issue = issue_from_json({"key": "T-1", "created_at": created, "status": status_now, "assignee": assignee,
                             "priority": priority, "labels": list(labels), "fields": fields or {},
                             "events": events})
    return evaluate(issue, policy, ts(now)).metrics[metric]


def brief(s: SlaState) -> tuple[Any, ...]:
    return (s.state.value, s.elapsed_s, iso(s.stopped_at), s.cycles, s.breached_cycles)


def test_a_metric_starts_at_creation_and_stops_at_its_first_stop_event() -> None:
    s = state("triage", "15m", [label("2026-11-02T10:10:00Z", ["triaged"])], "2026-11-02T12:00:00Z",
              labels=("triaged",))
    assert brief(s) == ("met", 600, "2026-11-02T10:10:00Z", 1, 0)


def test_a_label_the_issue_was_created_with_stops_it_at_creation() -> None:
    s = state("triage", "15m", [], "2026-11-02T12:00:00Z", labels=("triaged",))
    assert brief(s) == ("met", 0, "2026-11-02T10:00:00Z", 1, 0)


def test_a_metric_never_started_has_no_figures() -> None:
    s = state("l2_ownership", "2h", [], "2026-11-02T12:00:00Z")
    assert (s.state.value, s.elapsed_s, s.remaining_s, s.target_s) == ("not_started", 0, 7200, 7200)
    assert (s.due_at, s.breached_at, s.stopped_at, s.cycles, s.breached_cycles) == (None, None, None, 0, 0)
    assert not s.at_risk


def test_a_value_the_issue_had_at_creation_is_its_event_at_creation() -> None:
    s = state("l2_ownership", "2h", [], "2026-11-02T11:00:00Z", assignee="l2-team")
    assert brief(s) == ("running", 3600, None, 1, 0)
    assert iso(s.due_at) == "2026-11-02T12:00:00Z"


def test_an_assignment_starts_it_and_entering_a_status_stops_it() -> None:
    events = [field_change("2026-11-02T10:30:00Z", "assignee", None, "l2-team"),
              status("2026-11-02T11:15:00Z", "New", "In Progress")]
    s = state("l2_ownership", "2h", events, "2026-11-02T12:00:00Z", assignee="l2-team", status_now="In Progress")
    assert brief(s) == ("met", 2700, "2026-11-02T11:15:00Z", 1, 0)


def test_pause_when_pauses_and_the_pause_statuses_too() -> None:
    events = [field_change("2026-11-02T10:00:00Z", "assignee", None, "l2-team"),
              status("2026-11-02T10:30:00Z", "New", "Feedback"),  # pause_when
              status("2026-11-02T11:30:00Z", "Feedback", "Waiting"),  # clock.pause_statuses
              status("2026-11-02T12:00:00Z", "Waiting", "New")]
    s = state("l2_ownership", "2h", events, "2026-11-02T12:30:00Z", assignee="l2-team")
    assert brief(s) == ("running", 3600, None, 1, 0)
    paused = state("l2_ownership", "2h", events[:2], "2026-11-02T12:30:00Z", assignee="l2-team",
                   status_now="Feedback")
    assert brief(paused) == ("paused", 1800, None, 1, 0) and paused.due_at is None


def test_each_pause_of_a_cycle_is_taken_off_and_the_breach_falls_after_them() -> None:
    events = [comment("2026-11-02T10:00:00Z", by_agent=False),
              status("2026-11-02T10:20:00Z", "New", "Waiting"), status("2026-11-02T11:00:00Z", "Waiting", "New"),
              status("2026-11-02T11:20:00Z", "New", "Waiting"), status("2026-11-02T12:00:00Z", "Waiting", "New")]
    s = state("next_reply", "1h", events, "2026-11-02T13:00:00Z")
    # 10:00-10:20, 11:00-11:20, 12:00-13:00: 1h40m; the hour is reached at 12:20
    assert brief(s) == ("breached", 6000, None, 1, 1)
    assert iso(s.breached_at) == "2026-11-02T12:20:00Z"


def test_pause_statuses_false_keeps_the_clock_running_in_them() -> None:
    events = [field_change("2026-11-02T10:00:00Z", "priority", "High", "Urgent"),
              status("2026-11-02T10:30:00Z", "New", "Waiting")]
    s = state("until_urgent", "8h", events, "2026-11-02T12:00:00Z", priority="Urgent", status_now="Waiting")
    assert brief(s) == ("running", 7200, None, 1, 0)


def test_a_custom_field_change_stops_it() -> None:
    events = [field_change("2026-11-02T10:00:00Z", "priority", "High", "Urgent"),
              field_change("2026-11-02T10:45:00Z", "Severity", "high", "low")]
    s = state("until_urgent", "8h", events, "2026-11-02T12:00:00Z", priority="Urgent", fields={"Severity": "low"})
    assert brief(s) == ("met", 2700, "2026-11-02T10:45:00Z", 1, 0)


def test_next_reply_runs_from_the_oldest_unanswered_customer_comment() -> None:
    events = [comment("2026-11-02T10:05:00Z", by_agent=False),
              comment("2026-11-02T10:35:00Z", by_agent=False),  # a start while a cycle is open: nothing
              comment("2026-11-02T11:20:00Z", by_agent=True),  # closes the cycle opened at 10:05
              comment("2026-11-02T11:30:00Z", by_agent=True),  # a stop while none is open: nothing
              comment("2026-11-02T12:00:00Z", by_agent=False)]
    s = state("next_reply", "1h", events, "2026-11-02T12:20:00Z")
    assert brief(s) == ("running", 1200, None, 2, 1)  # the first cycle (1h15m) breached; the second runs
    assert iso(s.due_at) == "2026-11-02T13:00:00Z"


def test_an_event_that_stops_and_starts_closes_the_cycle_and_opens_the_next() -> None:
    events = [comment("2026-11-02T11:00:00Z"), comment("2026-11-02T16:00:00Z")]
    s = state("periodic_update", "4h", events, "2026-11-02T17:00:00Z")
    assert brief(s) == ("running", 3600, None, 3, 1)  # 10:00-11:00, 11:00-16:00 (5h: breached), 16:00-
    met = state("periodic_update", "4h", [*events, status("2026-11-02T16:30:00Z", "New", "Resolved")],
                "2026-11-02T17:00:00Z", status_now="Resolved")
    assert brief(met) == ("met", 1800, "2026-11-02T16:30:00Z", 3, 1)


def test_an_open_cycle_over_its_target_counts_among_the_breached() -> None:
    s = state("periodic_update", "4h", [], "2026-11-02T15:00:00Z")
    assert brief(s) == ("breached", 18000, None, 1, 1)
    assert iso(s.breached_at) == iso(s.due_at) == "2026-11-02T14:00:00Z"


def test_without_repeat_a_later_start_does_nothing() -> None:
    events = [field_change("2026-11-02T10:00:00Z", "priority", "High", "Urgent"),
              field_change("2026-11-02T10:30:00Z", "Severity", "high", "low"),
              field_change("2026-11-02T11:00:00Z", "priority", "Urgent", "High"),
              field_change("2026-11-02T11:30:00Z", "priority", "High", "Urgent")]
    s = state("until_urgent", "8h", events, "2026-11-02T12:00:00Z", priority="Urgent", fields={"Severity": "low"})
    assert brief(s) == ("met", 1800, "2026-11-02T10:30:00Z", 1, 0)


def test_resolved_is_a_move_into_a_resolved_status_and_closed_after_it_is_not() -> None:
    events = [status("2026-11-02T10:20:00Z", "New", "Resolved"), status("2026-11-02T10:40:00Z", "Resolved", "Closed")]
    s = state("triage", "1h", events, "2026-11-02T12:00:00Z", status_now="Closed")
    assert brief(s) == ("met", 1200, "2026-11-02T10:20:00Z", 1, 0)
    reopened = [field_change("2026-11-02T10:00:00Z", "priority", "High", "Urgent"),
                status("2026-11-02T10:20:00Z", "New", "Resolved"),
                status("2026-11-02T10:40:00Z", "Resolved", "Closed"),  # not a reopening
                status("2026-11-02T11:00:00Z", "Closed", "New")]  # reopened: stops until_urgent
    s = state("until_urgent", "8h", reopened, "2026-11-02T12:00:00Z", priority="Urgent")
    assert brief(s) == ("met", 3600, "2026-11-02T11:00:00Z", 1, 0)


def test_a_resolved_status_by_itself_neither_stops_nor_pauses_a_custom_metric() -> None:
    events = [comment("2026-11-02T10:05:00Z", by_agent=False), status("2026-11-02T10:20:00Z", "New", "Resolved")]
    s = state("next_reply", "1h", events, "2026-11-02T11:05:00Z", status_now="Resolved")
    assert brief(s) == ("running", 3600, None, 1, 0)


def test_sla_syncs_own_notes_are_not_replies() -> None:
    own = {"at": "2026-11-02T10:20:00Z", "kind": "comment", "public": True, "by_agent": True, "by_self": True}
    s = state("next_reply", "1h", [comment("2026-11-02T10:05:00Z", by_agent=False), own], "2026-11-02T10:50:00Z")
    assert brief(s) == ("running", 2700, None, 1, 0)


def test_events_after_now_do_not_count() -> None:
    events = [comment("2026-11-02T10:05:00Z", by_agent=False), comment("2026-11-02T11:00:00Z", by_agent=True)]
    s = state("next_reply", "1h", events, "2026-11-02T10:35:00Z")
    assert brief(s) == ("running", 1800, None, 1, 0)


def test_the_level_calendar_counts_working_time_only() -> None:
    policy = parse_policy(policy_text("next_reply: 2h", calendar="office"))
    issue = issue_from_json({"key": "T-1", "created_at": "2026-11-06T15:00:00Z", "status": "New",  # a Friday
                             "events": [comment("2026-11-06T15:00:00Z", by_agent=False)]})
    s = evaluate(issue, policy, ts("2026-11-09T09:30:00Z")).metrics["next_reply"]  # Monday 10:30 in Madrid
    # Friday 16:00-17:00 Madrid, Monday 09:00-10:30: 2h30m
    assert (s.state.value, s.elapsed_s, iso(s.breached_at)) == ("breached", 9000, "2026-11-09T09:00:00Z")


def test_built_in_metrics_keep_their_output_exactly() -> None:
    """No cycle keys on a built-in metric: its JSON stays what it was."""
    policy = parse_policy(policy_text("first_response: 30m, next_reply: 1h"))
    issue = issue_from_json({"key": "T-1", "created_at": "2026-11-02T10:00:00Z", "status": "New", "events": []})
    sla = evaluate(issue, policy, ts("2026-11-02T10:10:00Z"))
    assert sla.metrics["first_response"].cycles is None
    from sla_sync.neutral import sla_to_json

    out = sla_to_json(sla)["metrics"]
    assert "cycles" not in out["first_response"]
    assert (out["next_reply"]["state"], out["next_reply"]["cycles"], out["next_reply"]["breached_cycles"]) == (
        "not_started", 0, 0)


# -- the checks ---------------------------------------------------------------------


@pytest.mark.parametrize(("metrics", "levels", "where", "message"), [
    ("metrics:\n  m:\n    start: [creatd]\n    stop: [resolved]\n", "m: 1h", (14, 13),
     "metrics.m.start[0]: unknown event 'creatd'"),
    ("metrics:\n  m:\n    start: [created]\n    stop: [{lable: [x]}]\n", "m: 1h", (15, 12),
     "metrics.m.stop[0]: unknown event 'lable'"),
    ("metrics:\n  m:\n    start: [created]\n    stop: [{comment: someone}]\n", "m: 1h", (15, 12),
     "metrics.m.stop[0]: comment: 'someone': write agent or customer"),
    ("metrics:\n  m:\n    start: []\n    stop: [resolved]\n", "m: 1h", (14, 12), "metrics.m.start"),
    ("metrics:\n  m:\n    start: [created]\n    stop: [resolved]\n    pause_when: {colour: [red]}\n",
     "m: 1h", (16, 17), "unknown condition 'colour'"),
    ("metrics:\n  resolution:\n    start: [created]\n    stop: [resolved]\n", "resolution: 1h", (13, 3),
     "metrics.resolution: resolution is a built-in metric"),
    ("", "next_reply: 1h", (14, 26), "levels.P1.next_reply: unknown key 'next_reply'"),
])
def test_check_names_what_is_wrong_with_a_metric_and_where(metrics: str, levels: str, where: tuple[int, int],
                                                           message: str) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy(policy_text(levels, metrics=metrics), "p.yaml")
    text = str(caught.value)
    assert message in text, text
    line = next(ln for ln in text.splitlines() if message in ln)
    assert line.startswith(f"p.yaml:{where[0]}:{where[1]}: "), line


# -- the reference: minute by minute --------------------------------------------------

MADRID = ZoneInfo("Europe/Madrid")
START = datetime(2026, 10, 23, 8, 0, tzinfo=UTC)  # a Friday, two days before the clocks go back in Madrid


def working(minute: int, office: bool) -> bool:
    """Whether the minute starting at ``minute`` is working time (written apart from
    the engine's calendar: Madrid's wall clock, Monday to Friday 09:00-17:00)."""
    if not office:
        return True
    local = datetime.fromtimestamp(minute, MADRID)
    return local.weekday() < 5 and 9 <= local.hour < 17


@dataclass
class Ref:
    cycles: list[tuple[int, int | None, int]] = field(default_factory=list)  # opened, closed, elapsed
    breached_at: dict[int, int] = field(default_factory=dict)  # cycle index -> when its elapsed reached the target


SPECS = {
    "triage": ({"created"}, {"label:triaged", "resolved"}, None, True, False),
    "l2_ownership": ({"assignee:l2-team"}, {"status:In Progress", "resolved"}, "Feedback", True, False),
    "next_reply": ({"comment:customer"}, {"comment:agent"}, None, True, True),
    "periodic_update": ({"created", "comment:agent"}, {"comment:agent", "resolved"}, None, True, True),
    "until_urgent": ({"priority:Urgent"}, {"field:Severity:low", "reopened"}, None, False, False),
}
RESOLVED = {"Resolved", "Closed"}


def reference(metric: str, target: int, issue: dict[str, Any], now: int, office: bool) -> tuple[Any, ...]:
    """The metric's figures by replaying the history one minute at a time."""
    start, stop, pause_status, pause_statuses, repeat = SPECS[metric]
    created = ts(issue["created_at"])
    events = sorted(issue["events"], key=lambda e: ts(e["at"]))  # a stable sort: ties keep their order
    first_status = next((e for e in events if e["kind"] == "status"), None)
    values = {"status": first_status["from"] if first_status else issue["status"],
              "assignee": next((e["from"] for e in events if e["kind"] == "field" and e["field"] == "assignee"),
                               issue.get("assignee")),
              "priority": next((e["from"] for e in events if e["kind"] == "field" and e["field"] == "priority"),
                               issue.get("priority")),
              "Severity": next((e["from"] for e in events if e["kind"] == "field" and e["field"] == "Severity"),
                               (issue.get("fields") or {}).get("Severity"))}
    labels = set(issue.get("labels") or [])
    for e in reversed(events):
        if e["kind"] == "label":
            labels = (labels - set(e["added"])) | set(e["removed"])
    # what happens, in order: (at, facets)
    seq: list[tuple[int, set[str]]] = [(created, {"created"}), (created, {f"status:{values['status']}"})]
    seq += [(created, {f"label:{x}"}) for x in sorted(labels)]
    seq += [(created, {f"{name}:{values[name]}"}) for name in ("assignee", "priority") if values[name] is not None]
    if values["Severity"] is not None:
        seq.append((created, {f"field:Severity:{values['Severity']}"}))
    changes: list[tuple[int, dict[str, Any]]] = []
    current = dict(values)
    for e in events:
        at = max(ts(e["at"]), created)
        if at > now:
            break
        facets: set[str] = set()
        if e["kind"] == "status":
            before, after = current["status"], e["to"]
            facets.add(f"status:{after}")
            if before not in RESOLVED and after in RESOLVED:
                facets.add("resolved")
            if before in RESOLVED and after not in RESOLVED:
                facets.add("reopened")
            current["status"] = after
        elif e["kind"] == "label":
            facets |= {f"label:{x}" for x in e["added"]}
        elif e["kind"] == "field":
            name = e["field"]
            facets.add(f"field:{name}:{e['to']}" if name == "Severity" else f"{name}:{e['to']}")
            current[name] = e["to"]
        elif e["kind"] == "comment" and e["public"]:
            facets.add("comment:agent" if e["by_agent"] else "comment:customer")
        seq.append((at, facets))
        changes.append((at, dict(current)))
    ref = Ref()
    opened: int | None = None
    elapsed = 0
    state_now = dict(values)
    i = j = 0
    minute = created
    while True:
        while i < len(seq) and seq[i][0] <= minute:
            at, facets = seq[i]
            while j < len(changes) and changes[j][0] <= at:
                state_now = changes[j][1]
                j += 1
            if opened is not None and facets & stop:
                ref.cycles.append((opened, at, elapsed))
                opened = None
            if opened is None and (repeat or not ref.cycles) and facets & start:
                opened, elapsed = at, 0
            i += 1
        if minute >= now:
            break
        status_here = state_now["status"]
        paused = (pause_statuses and status_here == "Waiting") or status_here == pause_status
        if opened is not None and not paused and working(minute, office):
            if elapsed < target <= elapsed + 60:
                ref.breached_at[len(ref.cycles)] = minute + (target - elapsed)
            elapsed += 60
        minute += 60
    if opened is not None:
        ref.cycles.append((opened, None, elapsed))
        paused_now = (pause_statuses and state_now["status"] == "Waiting") or state_now["status"] == pause_status
    else:
        paused_now = False
    if not ref.cycles:
        return ("not_started", 0, None, None, 0, 0, None)
    last = len(ref.cycles) - 1
    opened_at, closed, spent = ref.cycles[-1]
    breached = sum(1 for _, _, e in ref.cycles if e > target)
    if spent > target:
        kind, due = "breached", ref.breached_at[last]
    elif closed is not None:
        kind, due = "met", None
    elif paused_now:
        kind, due = "paused", None
    else:
        kind = "running"
        due, left, t = None, target - spent, now
        if spent == target:
            due = ref.breached_at.get(last, opened_at)
        else:
            while left > 0 and t < now + 400 * 86_400:
                if working(t, office):
                    left -= 60
                t += 60
            due = t if left <= 0 else None
    return (kind, spent, iso(closed), iso(due), len(ref.cycles), breached, iso(ref.breached_at.get(last))
            if kind == "breached" else None)


def engine(metric: str, target: int, issue: dict[str, Any], now: int, office: bool) -> tuple[Any, ...]:
    policy = parse_policy(policy_text(f"{metric}: {target // 60}m", calendar="office" if office else "always"))
    s = evaluate(issue_from_json(issue), policy, now).metrics[metric]
    return (s.state.value, s.elapsed_s, iso(s.stopped_at), iso(s.due_at), s.cycles, s.breached_cycles,
            iso(s.breached_at))


def at_minute(minutes: int) -> str:
    return (START + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")


EVENTS = st.one_of(
    st.tuples(st.just("comment"), st.booleans(), st.booleans()),
    st.tuples(st.just("status"), st.sampled_from(["New", "In Progress", "Feedback", "Waiting", "Resolved", "Closed"])),
    st.tuples(st.just("label"), st.sampled_from(["triaged", "other"])),
    st.tuples(st.just("assignee"), st.sampled_from(["alice", "l2-team"])),
    st.tuples(st.just("priority"), st.sampled_from(["High", "Urgent"])),
    st.tuples(st.just("Severity"), st.sampled_from(["high", "low"])),
)


INITIAL = st.fixed_dictionaries({
    "status": st.sampled_from(["New", "Feedback", "Waiting", "Resolved"]),
    "assignee": st.sampled_from([None, "alice", "l2-team"]),
    "priority": st.sampled_from(["High", "Urgent"]),
    "Severity": st.sampled_from(["high", "low"]),
    "labels": st.sampled_from([(), ("triaged",), ("other",)]),
})


def history(draws: list[tuple[int, tuple[Any, ...]]], initial: dict[str, Any] | None = None) -> dict[str, Any]:
    """A neutral issue from its values at creation and drawn (minute, event) pairs:
    the values now follow from them."""
    start = dict(initial or {"status": "New", "assignee": None, "priority": "High", "Severity": "high",
                             "labels": ()})
    values: dict[str, Any] = {k: v for k, v in start.items() if k != "labels"}
    events, labels = [], set(start["labels"])
    for minute, drawn in sorted(draws, key=lambda d: d[0]):
        at = at_minute(minute)
        kind = drawn[0]
        if kind == "comment":
            events.append(comment(at, public=drawn[1], by_agent=drawn[2]))
        elif kind == "status" and drawn[1] != values["status"]:
            events.append(status(at, values["status"], drawn[1]))
            values["status"] = drawn[1]
        elif kind == "label" and drawn[1] not in labels:
            events.append(label(at, [drawn[1]]))
            labels.add(drawn[1])
        elif kind in ("assignee", "priority", "Severity") and drawn[1] != values[kind]:
            events.append(field_change(at, kind, values[kind], drawn[1]))
            values[kind] = drawn[1]
    return {"key": "T-1", "created_at": at_minute(0), "status": values["status"], "assignee": values["assignee"],
            "priority": values["priority"], "labels": sorted(labels), "fields": {"Severity": values["Severity"]},
            "events": events}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    metric=st.sampled_from(sorted(SPECS)),
    target=st.integers(min_value=1, max_value=600).map(lambda m: m * 60),
    draws=st.lists(st.tuples(st.integers(min_value=0, max_value=4 * 1440), EVENTS), max_size=20),
    initial=INITIAL,
    now_minute=st.integers(min_value=0, max_value=4 * 1440),
    office=st.booleans(),
)
def test_the_engine_agrees_with_the_minute_by_minute_reference(metric: str, target: int,
                                                               draws: list[tuple[int, tuple[Any, ...]]],
                                                               initial: dict[str, Any], now_minute: int,
                                                               office: bool) -> None:
    issue = history(draws, initial)
    now = ts(at_minute(now_minute))
    assert engine(metric, target, issue, now, office) == reference(metric, target, issue, now, office)


# -- a rule's own calendar and contract period -----------------------------------------

RULES = """
name: contracts
calendars:
  always: {timezone: UTC, hours: 24x7}
  madrid: {timezone: Europe/Madrid, hours: {mon: ["09:00-17:00"], tue: ["09:00-17:00"]}}
  tokyo: {timezone: Asia/Tokyo, hours: {mon: ["09:00-17:00"], tue: ["09:00-17:00"]}}
levels:
  P1: {calendar: always, resolution: 4h}
classify:
  - if: {project: acme}
    level: P1
    calendar: madrid
    from: 2026-11-01
    until: 2026-12-01
  - if: {project: kaito}
    level: P1
    calendar: tokyo
  - level: P1
"""


def issue_in(project: str, created: str) -> Any:
    return issue_from_json({"key": f"{project}-1", "created_at": created, "status": "New", "project": project,
                            "events": []})


def test_a_rules_calendar_runs_the_clocks_of_the_issues_it_classifies() -> None:
    policy = parse_policy(RULES)
    now = ts("2026-11-02T12:00:00Z")  # a Monday: 13:00 in Madrid, 21:00 in Tokyo
    acme = evaluate(issue_in("acme", "2026-11-02T08:00:00Z"), policy, now)  # 09:00 Madrid
    kaito = evaluate(issue_in("kaito", "2026-11-02T00:00:00Z"), policy, now)  # 09:00 Tokyo
    other = evaluate(issue_in("other", "2026-11-02T08:00:00Z"), policy, now)
    assert (acme.rule, acme.timezone, acme.metrics["resolution"].elapsed_s) == (1, "Europe/Madrid", 4 * 3600)
    assert (kaito.rule, kaito.timezone, kaito.metrics["resolution"].elapsed_s) == (2, "Asia/Tokyo", 8 * 3600)
    assert (other.rule, other.timezone, other.metrics["resolution"].elapsed_s) == (3, "UTC", 4 * 3600)
    assert iso(kaito.metrics["resolution"].breached_at) == "2026-11-02T04:00:00Z"


def test_a_rule_holds_only_for_issues_created_in_its_period() -> None:
    policy = parse_policy(RULES)
    now = ts("2026-12-02T12:00:00Z")
    inside = evaluate(issue_in("acme", "2026-11-30T23:59:59Z"), policy, now)
    before = evaluate(issue_in("acme", "2026-10-31T23:59:59Z"), policy, now)
    after = evaluate(issue_in("acme", "2026-12-01T00:00:00Z"), policy, now)  # until is exclusive
    assert [inside.rule, before.rule, after.rule] == [1, 3, 3]


def test_a_rules_period_and_calendar_show_in_explain() -> None:
    from sla_sync.explain import explain, explanation_lines

    policy = parse_policy(RULES)
    lines = explanation_lines(explain(issue_in("acme", "2026-12-01T00:00:00Z"), policy, ts("2026-12-02T12:00:00Z")))
    assert "    created in [from 2026-11-01T00:00:00Z until 2026-12-01T00:00:00Z]: the issue has " \
           "2026-12-01T00:00:00Z: no" in lines
    inside = explanation_lines(explain(issue_in("acme", "2026-11-02T08:00:00Z"), policy, ts("2026-11-02T12:00:00Z")))
    assert "targets of the levels as written (no revision in force at creation); calendar madrid " \
           "(Europe/Madrid)" in inside


def test_check_rejects_an_unknown_rule_calendar_and_an_empty_period() -> None:
    bad = RULES.replace("calendar: tokyo", "calendar: osaka").replace("until: 2026-12-01", "until: 2026-10-01")
    with pytest.raises(PolicyError) as caught:
        parse_policy(bad, "p.yaml")
    text = str(caught.value)
    assert "p.yaml:17:15: classify[1].calendar: rule 2 names calendar 'osaka', which is not defined" in text
    assert "p.yaml:14:12: classify[0].until: rule 1: until (2026-10-01) must come after from (2026-11-01)" in text


# -- downstream: plan, explain, report, compare, the HTML report, the schema ---------------

FULL = policy_text("first_response: 30m, next_reply: 1h, periodic_update: 4h, triage: 15m, l2_ownership: 2h, "
                   "resolution: 24h").replace("classify:", """escalate:
  - when: triage breached
    add_labels: [triage-late]
writeback: {due_date: l2_ownership}
classify:""")
HISTORY = {"key": "X-1", "created_at": "2026-11-02T10:00:00Z", "status": "New", "assignee": "l2-team",
           "events": [comment("2026-11-02T10:05:00Z", by_agent=False), comment("2026-11-02T10:20:00Z"),
                      comment("2026-11-02T11:00:00Z", by_agent=False),
                      field_change("2026-11-02T11:10:00Z", "assignee", None, "l2-team")]}


def test_plan_escalates_on_a_custom_metric_and_writes_its_due_date() -> None:
    from sla_sync.model import Observed, Written
    from sla_sync.plan import plan_issue

    policy = parse_policy(FULL)
    sla = evaluate(issue_from_json(HISTORY), policy, ts("2026-11-02T13:00:00Z"))
    plan = plan_issue(sla, Observed(), Written(), policy)
    assert plan.fired == (1,)  # triage: 15m, never triaged
    changes = {c.kind.value: c for c in plan.changes}
    assert "triage-late" in changes["add_labels"].values
    assert changes["due_date"].value == "2026-11-02"  # l2_ownership: 11:10 + 2h
    assert policy.writeback.due_metric == "l2_ownership"


def test_a_step_on_a_metric_that_never_started_never_fires() -> None:
    from sla_sync.model import Observed, Written
    from sla_sync.plan import plan_issue

    policy = parse_policy(FULL.replace("when: triage breached", "when: l2_ownership 50%"))
    issue = issue_from_json({**HISTORY, "assignee": None, "events": []})
    sla = evaluate(issue, policy, ts("2026-11-03T13:00:00Z"))
    assert sla.metrics["l2_ownership"].state.value == "not_started"
    assert plan_issue(sla, Observed(), Written(), policy).fired == ()


REPLY_STEP = FULL.replace("""  - when: triage breached
    add_labels: [triage-late]""", """  - when: next_reply 75%
    comment: Answer the customer.""")


def reply_plan(now: str, *, recorded: dict[int, int] | None = None, on_issue: tuple[str, ...] = (),
               events: tuple[dict[str, Any], ...] = ()) -> Any:
    """The plan of HISTORY (next_reply: cycle 1 10:05-10:20, cycle 2 from 11:00, 1h
    target) under a step at next_reply 75%, and the issue's next change."""
    from sla_sync.evidence import evidence_of
    from sla_sync.model import Observed, Written
    from sla_sync.plan import plan_issue, step_cycles
    from sla_sync.upcoming import next_change

    policy = parse_policy(REPLY_STEP, "p.yaml")  # check accepts a step on a repeating metric
    issue = issue_from_json({**HISTORY, "events": [*HISTORY["events"], *events]})
    sla = evaluate(issue, policy, ts(now))
    evidence = evidence_of(issue, policy, recorded, step_cycles(policy, sla))
    plan = plan_issue(sla, Observed(labels=frozenset(on_issue)), Written(), policy, evidence)
    upcoming = next_change(sla, issue.created_at, evidence.fired | set(plan.fired), policy, ts(now),
                           waiting=evidence.stale)
    return plan, upcoming


def step_labels(plan: Any, kind: str) -> list[str]:
    return [lbl for c in plan.changes if c.kind.value == kind for lbl in c.values if "escalated" in lbl]


def test_a_new_cycle_takes_the_earlier_marker_off_and_the_step_fires_on_the_next_pass() -> None:
    """The store says step 1 fired in cycle 1; cycle 2 (from 11:00) is 45m old at
    11:45, past the step's 75%: this pass takes cycle 1's marker off and comes back
    a second later; that pass fires the step for cycle 2, marker and comment."""
    plan, upcoming = reply_plan("2026-11-02T11:45:00Z", recorded={1: 1}, on_issue=("sla:escalated-1",))
    assert plan.fired == () and step_labels(plan, "remove_labels") == ["sla:escalated-1"]
    assert [c for c in plan.changes if c.kind.value == "comment"] == []
    assert (upcoming.at, upcoming.why) == (ts("2026-11-02T11:45:01Z"), "escalation step 1")
    removed = {**label("2026-11-02T11:45:00Z", removed=["sla:escalated-1"]), "by_self": True}
    plan, _ = reply_plan("2026-11-02T11:45:01Z", recorded={1: 1}, events=(removed,))
    assert plan.fired == (1,) and dict(plan.cycles) == {1: 2}
    assert step_labels(plan, "add_labels") == ["sla:escalated-1"]
    [comment_change] = [c for c in plan.changes if c.kind.value == "comment"]
    assert (comment_change.value, comment_change.step, comment_change.cycle) == ("Answer the customer.", 1, 2)


def test_a_step_fired_in_the_current_cycle_does_not_fire_again() -> None:
    """Cycle 2's step recorded by the store, or its marker added by sla-sync's own
    user since cycle 2 opened (the store lost): nothing fires, nothing comes off."""
    by_store, _ = reply_plan("2026-11-02T11:50:00Z", recorded={1: 2}, on_issue=("sla:escalated-1",))
    mine = {**label("2026-11-02T11:46:00Z", ["sla:escalated-1"]), "by_self": True}
    by_history, _ = reply_plan("2026-11-02T11:50:00Z", on_issue=("sla:escalated-1",), events=(mine,))
    for plan in (by_store, by_history):
        assert plan.fired == () and [c for c in plan.changes if c.step is not None] == []
        assert step_labels(plan, "add_labels") == [] and step_labels(plan, "remove_labels") == []


def test_sla_syncs_marker_from_an_earlier_cycle_is_not_this_cycles() -> None:
    """The store lost; the history shows sla-sync adding the marker at 10:15, in
    cycle 1: in cycle 2 it is stale, not a firing."""
    mine = {**label("2026-11-02T10:15:00Z", ["sla:escalated-1"]), "by_self": True}
    plan, _ = reply_plan("2026-11-02T11:20:00Z", on_issue=("sla:escalated-1",), events=(mine,))
    assert plan.fired == () and plan.forged == ()
    assert step_labels(plan, "remove_labels") == ["sla:escalated-1"]


def test_a_forged_marker_neither_stops_nor_fires_a_step_on_a_repeating_metric() -> None:
    """A customer's copy of the marker: before the threshold it is only reported; at
    the threshold the step fires and the copy comes off."""
    theirs = {**label("2026-11-02T11:10:00Z", ["sla:escalated-1"]), "by_self": False}
    early, _ = reply_plan("2026-11-02T11:30:00Z", on_issue=("sla:escalated-1",), events=(theirs,))
    assert early.fired == () and early.forged == (1,)
    assert any("sla:escalated-1" in line for line in early.kept)
    late, _ = reply_plan("2026-11-02T11:50:00Z", on_issue=("sla:escalated-1",), events=(theirs,))
    assert late.fired == (1,) and step_labels(late, "remove_labels") == ["sla:escalated-1"]


def test_a_step_on_a_repeating_metric_waits_for_its_first_cycle() -> None:
    from sla_sync.model import Observed, Written
    from sla_sync.plan import plan_issue

    policy = parse_policy(REPLY_STEP)
    sla = evaluate(issue_from_json({**HISTORY, "events": []}), policy, ts("2026-11-02T13:00:00Z"))
    plan = plan_issue(sla, Observed(), Written(), policy)
    assert plan.fired == () and step_labels(plan, "add_labels") == []


def test_report_explain_compare_html_and_schema_handle_custom_metrics(tmp_path: Any) -> None:
    import json

    from tests.support import run_cli

    policy = tmp_path / "policy.yaml"
    policy.write_text(FULL)
    lines = tmp_path / "issues.jsonl"
    lines.write_text(json.dumps(HISTORY) + "\n" + json.dumps({**HISTORY, "key": "X-2", "assignee": None,
                                                              "events": []}) + "\n")
    now = ("--now", "2026-11-02T13:00:00Z")
    report = run_cli("report", "--policy", str(policy), "--input", str(lines), *now, "--format", "json")
    assert report.returncode == 0, report.stderr
    stats = json.loads(report.stdout)["groups"]["P1"]["metrics"]
    # two reply cycles (10:05-10:20 met, 11:00- breached at 12:00); X-2: never a customer comment
    assert stats["next_reply"] == {"met": 0, "breached": 1, "running": 0, "paused": 0, "compliance": 0.0,
                                   "median_elapsed_s": None, "p90_elapsed_s": None, "not_started": 1,
                                   "cycles": 2, "breached_cycles": 1, "cycle_compliance": 0.5}
    assert "cycles" not in stats["resolution"]
    explained = run_cli("explain", "X-1", "--policy", str(policy), "--input", str(lines), *now, "--format", "json")
    assert explained.returncode == 0, explained.stderr
    reply = json.loads(explained.stdout)["metrics"]["next_reply"]
    assert (reply["cycles"], reply["breached_cycles"]) == (2, 1)
    assert [(s["cycle"], s["kind"], s["start"], s["end"]) for s in reply["segments"]] == [
        (1, "running", "2026-11-02T10:05:00Z", "2026-11-02T10:20:00Z"),
        (1, "stopped", "2026-11-02T10:20:00Z", "2026-11-02T11:00:00Z"),
        (2, "running", "2026-11-02T11:00:00Z", "2026-11-02T12:00:00Z"),
        (2, "running", "2026-11-02T12:00:00Z", "2026-11-02T13:00:00Z"),
    ]
    assert reply["segments"][-1]["over_target"] and reply["segments"][-1]["elapsed_s"] == 7200
    stricter = tmp_path / "stricter.yaml"
    stricter.write_text(FULL.replace("next_reply: 1h", "next_reply: 10m"))
    compared = run_cli("compare", str(policy), str(stricter), "--input", str(lines), *now, "--format", "json")
    assert compared.returncode == 0, compared.stderr
    rows = {(r["level"], r["metric"]): r for r in json.loads(compared.stdout)["levels"]}
    assert rows[("P1", "next_reply")]["old"]["breached"] == rows[("P1", "next_reply")]["new"]["breached"] == 1
    html = run_cli("report", "--policy", str(policy), "--input", str(lines), *now, "--format", "html")
    assert html.returncode == 0, html.stderr
    assert "<h3>next reply</h3>" in html.stdout
    schema = json.loads(run_cli("schema").stdout)
    assert "metrics" in schema["properties"] and "MetricSpec" in schema["$defs"]
