"""The plan's decision table: desired vs observed vs what sla-sync wrote (pure, no tracker)."""

from __future__ import annotations

import pytest

from sla_sync.evidence import Evidence
from sla_sync.model import Change, IssueSla, Observed, SlaState, State, Written
from sla_sync.plan import Notice, plan_issue
from sla_sync.policy import parse_policy

POLICY_TEXT = """
name: t
calendars:
  madrid: {timezone: Europe/Madrid, hours: 24x7}
levels:
  P1: {calendar: madrid, first_response: 30m, resolution: 8h}
  P2: {calendar: madrid, first_response: 2h, resolution: 24h}
classify:
  - level: P1
escalate:
  - when: resolution 50%
    watchers: [manager]
    add_labels: [escalated]
  - when: resolution breached
    assign: manager
    comment: "Breached."
writeback:
  on_manual_change: {mode}
  backlog_steps: all
"""
KEEP = parse_policy(POLICY_TEXT.replace("{mode}", "keep"))
OVERRIDE = parse_policy(POLICY_TEXT.replace("{mode}", "override"))
H = 3600
T0 = 1_793_610_000  # 2026-11-02T09:00:00Z (10:00 in Madrid)


def metric(name: str, state: State, elapsed: int, target: int, *, due: int | None = None,
           stopped: int | None = None, at_risk: bool = False) -> SlaState:
    return SlaState(name, state, at_risk, target, elapsed, target - elapsed, due,
                    due if state is State.BREACHED else None, stopped)


def sla(*metrics: SlaState, level: str = "P1") -> IssueSla:
    return IssueSla("7", level, {m.metric: m for m in metrics}, 1, "Europe/Madrid")


RUNNING_2H = metric("resolution", State.RUNNING, 2 * H, 8 * H, due=T0 + 6 * H)  # 25 %: no step
RUNNING_5H = metric("resolution", State.RUNNING, 5 * H, 8 * H, due=T0 + 3 * H)  # 62.5 %: step 1
BREACHED = metric("resolution", State.BREACHED, 9 * H, 8 * H, due=T0 - H)  # step 1 and step 2
MET = metric("resolution", State.MET, 3 * H, 8 * H, stopped=T0)
PAUSED = metric("resolution", State.PAUSED, 3 * H, 8 * H)
DUE_DATE = "2026-11-02"  # T0 + 6h = 15:00 UTC = 16:00 Madrid, same day


@pytest.mark.parametrize(
    ("name", "state", "observed", "written", "expected"),
    [
        ("running: due date and level label", sla(RUNNING_2H), Observed(), Written(),
         [Change("due_date", value=DUE_DATE), Change("add_labels", values=("sla:P1",))]),
        ("nothing to do when the tracker already agrees", sla(RUNNING_2H),
         Observed(DUE_DATE, frozenset({"sla:P1"})), Written(DUE_DATE), []),
        ("met: the due date is left alone", sla(MET), Observed("2026-11-01", frozenset({"sla:P1"})), Written(), []),
        ("paused: the due date is left alone", sla(PAUSED), Observed(None, frozenset({"sla:P1"})), Written(), []),
        ("another level's label and a stale state label go; a person's label stays", sla(RUNNING_2H),
         Observed(DUE_DATE, frozenset({"sla:P2", "sla:breached", "customer-vip"})), Written(DUE_DATE),
         [Change("add_labels", values=("sla:P1",)), Change("remove_labels", values=("sla:P2", "sla:breached"))]),
        ("at risk: the label follows the flag", sla(metric("resolution", State.RUNNING, 2 * H, 8 * H, due=T0 + 6 * H,
                                                           at_risk=True)),
         Observed(DUE_DATE, frozenset({"sla:P1"})), Written(DUE_DATE), [Change("add_labels", values=("sla:at-risk",))]),
        ("step 1: watchers, its labels and its marker", sla(RUNNING_5H), Observed("2026-11-02", frozenset({"sla:P1"})),
         Written("2026-11-02"),
         [Change("add_labels", values=("escalated", "sla:escalated-1")),
          Change("watchers", values=("manager",), step=1)]),
        ("a marker sla-sync did not set is no proof: the step fires and the marker comes off", sla(RUNNING_5H),
         Observed("2026-11-02", frozenset({"sla:P1", "escalated", "sla:escalated-1"})), Written("2026-11-02"),
         [Change("remove_labels", values=("sla:escalated-1",)), Change("watchers", values=("manager",), step=1)]),
        ("breached: both steps, the later one assigns and comments privately", sla(BREACHED),
         Observed("2026-11-02", frozenset({"sla:P1"})), Written("2026-11-02"),
         [Change("add_labels", values=("sla:breached", "escalated", "sla:escalated-1", "sla:escalated-2")),
          Change("watchers", values=("manager",), step=1), Change("assign", value="manager", step=2),
          Change("comment", value="Breached.", private=True, step=2)]),
        ("a stopped metric escalates nothing", sla(metric("resolution", State.BREACHED, 9 * H, 8 * H, due=T0 - H,
                                                          stopped=T0)),
         Observed("2026-11-02", frozenset({"sla:P1", "sla:breached"})), Written("2026-11-02"), []),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_the_plan_brings_the_issue_to_what_the_policy_asks(
    name: str, state: IssueSla, observed: Observed, written: Written, expected: list[Change]
) -> None:
    assert list(plan_issue(state, observed, written, KEEP).changes) == expected


def test_a_due_date_a_person_changed_is_kept_or_overridden() -> None:
    observed = Observed("2026-12-24", frozenset({"sla:P1"}))
    kept = plan_issue(sla(RUNNING_2H), observed, Written("2026-11-03"), KEEP)
    assert kept.changes == ()
    assert kept.kept == ("due date changed by hand to 2026-12-24 (sla-sync wrote 2026-11-03): kept",)
    overridden = plan_issue(sla(RUNNING_2H), observed, Written("2026-11-03"), OVERRIDE)
    assert overridden.changes == (Change("due_date", value=DUE_DATE),)
    assert overridden.written.due_date == DUE_DATE


def test_an_assignee_a_person_changed_after_an_escalation() -> None:
    observed = Observed(DUE_DATE, frozenset({"sla:P1", "sla:escalated-1", "sla:escalated-2", "escalated",
                                             "sla:breached"}), assignee="carol")
    ours = Evidence(fired=frozenset({1, 2}))
    kept = plan_issue(sla(BREACHED), observed, Written(DUE_DATE, assignee="manager"), KEEP, ours)
    assert (kept.changes, kept.written.assignee) == ((), None)  # reported once, then the person owns it
    assert kept.kept == ("assignee changed by hand to carol (an escalation assigned manager): kept",)
    overridden = plan_issue(sla(BREACHED), observed, Written(DUE_DATE, assignee="manager"), OVERRIDE, ours)
    assert overridden.changes == (Change("assign", value="manager"),)


ON_ISSUE = frozenset({"sla:P1", "escalated", "sla:escalated-1"})
FORGED = "forged or manual marker sla:escalated-1 ignored (sla-sync did not set it)"


@pytest.mark.parametrize(
    ("name", "fired", "labels", "state", "changes", "kept"),
    [
        ("fired, marker on: nothing", {1}, ON_ISSUE, RUNNING_5H, [], []),
        ("fired, marker removed by a person: put back, nothing fires", {1}, frozenset({"sla:P1", "escalated"}),
         RUNNING_5H, [Change("add_labels", values=("sla:escalated-1",))], []),
        ("not fired, due, no marker: the actions and the marker", set(), frozenset({"sla:P1"}), RUNNING_5H,
         [Change("add_labels", values=("escalated", "sla:escalated-1")),
          Change("watchers", values=("manager",), step=1)],
         []),
        ("not fired, due, forged marker: the actions, the marker off, reported", set(), ON_ISSUE, RUNNING_5H,
         [Change("remove_labels", values=("sla:escalated-1",)), Change("watchers", values=("manager",), step=1)],
         [FORGED]),
        ("not fired, not due, forged marker: reported only", set(), ON_ISSUE, RUNNING_2H, [], [FORGED]),
        ("not fired, not due, no marker: nothing", set(), frozenset({"sla:P1"}), RUNNING_2H, [], []),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_a_step_fires_on_sla_syncs_own_evidence_only(
    name: str, fired: set[int], labels: frozenset[str], state: SlaState, changes: list[Change], kept: list[str]
) -> None:
    plan = plan_issue(sla(state), Observed(DUE_DATE, labels), Written(DUE_DATE), KEEP, Evidence(fired=frozenset(fired)))
    assert (list(plan.changes), list(plan.kept)) == (changes, kept)
    assert plan.forged == ((1,) if kept else ())  # what the summary counts


def test_a_due_date_a_person_set_is_kept_even_when_the_store_is_lost() -> None:
    observed = Observed("2026-12-24", frozenset({"sla:P1"}))
    by_person = plan_issue(sla(RUNNING_2H), observed, Written(), KEEP, Evidence(due_date_by_person=True))
    assert by_person.changes == ()
    assert by_person.kept == ("due date set by hand to 2026-12-24 (not by sla-sync): kept",)
    ours = plan_issue(sla(RUNNING_2H), observed, Written(), KEEP, Evidence(due_date_by_person=False))
    assert ours.changes == (Change("due_date", value=DUE_DATE),)


def test_the_due_date_is_the_local_date_of_the_calendar() -> None:
    late = metric("resolution", State.RUNNING, 2 * H, 8 * H, due=1_793_660_400)  # 2026-11-02T23:00Z = 00:00 Madrid
    plan = plan_issue(sla(late), Observed(None, frozenset({"sla:P1"})), Written(), KEEP)
    assert plan.changes == (Change("due_date", value="2026-11-03"),)


# -- several steps due at once: writeback.backlog_steps ----------------------------------------

NOTIFY_TEXT = POLICY_TEXT.replace("{mode}", "keep").replace("  backlog_steps: all\n", "{backlog}") + """
notify:
  channels:
    oncall: {url_env: ONCALL_URL}
    lead: {url_file: /run/secrets/lead}
"""
NOTIFY_TEXT = NOTIFY_TEXT.replace('    comment: "Breached."', '    comment: "Breached."\n    notify: [oncall, lead]')
NOTIFY_TEXT = NOTIFY_TEXT.replace("    add_labels: [escalated]", "    add_labels: [escalated]\n    notify: oncall")


def backlog_policy(mode: str | None) -> object:
    return parse_policy(NOTIFY_TEXT.replace("{backlog}", f"  backlog_steps: {mode}\n" if mode else ""))


CAUGHT_UP = {  # both steps due at once (BREACHED): what each mode does
    "all": ([Change("add_labels", values=("sla:breached", "escalated", "sla:escalated-1", "sla:escalated-2")),
             Change("watchers", values=("manager",), step=1), Change("assign", value="manager", step=2),
             Change("comment", value="Breached.", private=True, step=2)],
            [Notice(1, "oncall"), Notice(2, "oncall"), Notice(2, "lead")], ()),
    "last": ([Change("add_labels", values=("sla:breached", "sla:escalated-1", "sla:escalated-2")),
              Change("assign", value="manager", step=2), Change("comment", value="Breached.", private=True, step=2)],
             [Notice(2, "oncall"), Notice(2, "lead")], (1,)),
    "mark": ([Change("add_labels", values=("sla:breached", "sla:escalated-1", "sla:escalated-2"))], [], (1, 2)),
}


@pytest.mark.parametrize("mode", [None, "last", "all", "mark"])
def test_several_steps_due_at_once_follow_backlog_steps(mode: str | None) -> None:
    changes, notices, marked = CAUGHT_UP[mode or "last"]  # last is the default
    plan = plan_issue(sla(BREACHED), Observed(DUE_DATE, frozenset({"sla:P1"})), Written(DUE_DATE),
                      backlog_policy(mode))  # type: ignore[arg-type]
    assert list(plan.changes) == changes
    assert list(plan.notices) == notices
    assert plan.marked == marked
    assert plan.fired == (1, 2)  # every due step is recorded as fired, acted on or not
    assert plan.backlog == (mode or "last")


@pytest.mark.parametrize("mode", ["last", "all", "mark"])
def test_one_step_coming_due_in_the_ordinary_course_always_acts(mode: str) -> None:
    plan = plan_issue(sla(RUNNING_5H), Observed(DUE_DATE, frozenset({"sla:P1"})), Written(DUE_DATE),
                      backlog_policy(mode))  # type: ignore[arg-type]
    assert Change("watchers", values=("manager",), step=1) in plan.changes
    assert list(plan.notices) == [Notice(1, "oncall")]
    assert plan.marked == () and plan.backlog is None


def test_an_adopted_issue_with_one_step_due_is_caught_up_too() -> None:
    """The store never saw it and it is older than the last pass: ``mark`` adopts it quietly."""
    plan = plan_issue(sla(RUNNING_5H), Observed(DUE_DATE, frozenset({"sla:P1"})), Written(DUE_DATE),
                      backlog_policy("mark"), Evidence(backlog=True))  # type: ignore[arg-type]
    assert list(plan.changes) == [Change("add_labels", values=("sla:escalated-1",))]
    assert plan.marked == (1,) and plan.fired == (1,) and plan.notices == ()


def test_a_fired_step_sends_nothing_again() -> None:
    plan = plan_issue(sla(BREACHED), Observed(DUE_DATE, frozenset({"sla:P1", "sla:breached", "sla:escalated-1",
                                                                   "sla:escalated-2", "escalated"})),
                      Written(DUE_DATE, "manager"), backlog_policy("all"),  # type: ignore[arg-type]
                      Evidence(fired=frozenset({1, 2})))
    assert plan.changes == () and plan.notices == ()


# -- the remaining-time field and the health status --------------------------------------------

SLA_FIELDS = parse_policy(POLICY_TEXT.replace("{mode}", "keep") + "  remaining_field: SLA hours left\n"
                          "  remaining_step: 30m\n  health_status: true\n")


@pytest.mark.parametrize(
    ("state", "observed_remaining", "expected"),
    [
        (RUNNING_2H, None, "6"),  # 6 h left
        (RUNNING_2H, "6", None),  # already there: nothing written
        (RUNNING_2H, "6.0", None),  # the tracker's own spelling of the same number
        (metric("resolution", State.RUNNING, 2 * H + 1, 8 * H, due=T0), "6", "5.5"),  # one second less: next step
        (metric("resolution", State.RUNNING, 2 * H + 29 * 60, 8 * H, due=T0), "5.5", None),  # same step
        (PAUSED, None, "5"),  # paused: the frozen time left
        (BREACHED, "0", "-1"),  # an hour over: negative
        (metric("resolution", State.BREACHED, 8 * H + 1, 8 * H, due=T0), None, "-0.5"),
        (MET, "3", None),  # met: left alone
    ],
)
def test_the_remaining_time_field_moves_by_whole_steps(
    state: SlaState, observed_remaining: str | None, expected: str | None
) -> None:
    plan = plan_issue(sla(state), Observed(DUE_DATE, frozenset({"sla:P1", "sla:breached", "sla:at-risk"}),
                                           remaining=observed_remaining), Written(DUE_DATE), SLA_FIELDS)
    written = [c.value for c in plan.changes if c.kind == "remaining"]
    assert written == ([expected] if expected else [])


@pytest.mark.parametrize(
    ("state", "health"),
    [(RUNNING_2H, "on_track"), (metric("resolution", State.RUNNING, 7 * H, 8 * H, at_risk=True), "needs_attention"),
     (BREACHED, "at_risk"), (MET, "on_track")],
)
def test_the_health_status_follows_the_sla_state(state: SlaState, health: str) -> None:
    plan = plan_issue(sla(state), Observed(), Written(), SLA_FIELDS)
    assert [c.value for c in plan.changes if c.kind == "health_status"] == [health]
    again = plan_issue(sla(state), Observed(health_status=health), Written(), SLA_FIELDS)
    assert not [c for c in again.changes if c.kind == "health_status"]
