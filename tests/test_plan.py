"""The plan's decision table: desired vs observed vs what sla-sync wrote (pure, no tracker)."""

from __future__ import annotations

import pytest

from sla_sync.evidence import Evidence
from sla_sync.model import Change, IssueSla, Observed, SlaState, State, Written
from sla_sync.plan import plan_issue
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
