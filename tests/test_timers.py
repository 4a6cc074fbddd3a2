"""The SLA clocks: ``sla_sync.timers.evaluate(issue, policy, now)``, rule by rule.

Each table row is an issue, an instant ``now`` and the state of one metric worked out
by hand from DESIGN.md's "SLA clock semantics"; the comments show the arithmetic.

The office calendar is UTC, Monday to Friday 09:00-13:00 and 14:00-18:00 (8 h a
day).  2026-11-02 is a Monday, 2026-11-07/08 the weekend after it.
"""

from __future__ import annotations

from typing import Any

import pytest

from sla_sync.model import IssueSla
from sla_sync.neutral import issue_from_json
from sla_sync.policy import parse_policy
from sla_sync.timers import evaluate
from tests.support import comment, field_change, iso, issue_json, label, status, ts
from tests.support import expected_metric as expect

POLICY_TEXT = """\
name: timers-test
calendars:
  office:
    timezone: UTC
    hours:
      mon: ["09:00-13:00", "14:00-18:00"]
      tue: ["09:00-13:00", "14:00-18:00"]
      wed: ["09:00-13:00", "14:00-18:00"]
      thu: ["09:00-13:00", "14:00-18:00"]
      fri: ["09:00-13:00", "14:00-18:00"]
  office_hol:
    timezone: UTC
    hours:
      mon: ["09:00-13:00", "14:00-18:00"]
      tue: ["09:00-13:00", "14:00-18:00"]
      wed: ["09:00-13:00", "14:00-18:00"]
      thu: ["09:00-13:00", "14:00-18:00"]
      fri: ["09:00-13:00", "14:00-18:00"]
    holidays: [2026-11-09]
  always:
    timezone: UTC
    hours: 24x7
  madrid:
    timezone: Europe/Madrid
    hours:
      mon: ["09:00-18:00"]
      tue: ["09:00-18:00"]
      wed: ["09:00-18:00"]
      thu: ["09:00-18:00"]
      fri: ["09:00-18:00"]
    holidays_country: ES
    holidays_subdiv: MD
  newyork:
    timezone: America/New_York
    hours:
      mon: ["08:00-20:00"]
      tue: ["08:00-20:00"]
      wed: ["08:00-20:00"]
      thu: ["08:00-20:00"]
      fri: ["08:00-20:00"]
    holidays_country: US
  kolkata:
    timezone: Asia/Kolkata
    hours:
      mon: ["09:00-17:00"]
      tue: ["09:00-17:00"]
      wed: ["09:00-17:00"]
      thu: ["09:00-17:00"]
      fri: ["09:00-17:00"]
levels:
  P1: {calendar: always, first_response: 30m, workaround: 4h, resolution: 24h}
  P2: {calendar: office, first_response: 2h, workaround: 8h, resolution: 40h}
  P3: {calendar: office, first_response: 8h, resolution: 80h}
  HOL: {calendar: office_hol, first_response: 2h, resolution: 16h}
  MAD: {calendar: madrid, first_response: 2h, resolution: 16h}
  NYC: {calendar: newyork, first_response: 4h, resolution: 24h}
  KOL: {calendar: kolkata, first_response: 2h, resolution: 8h}
classify:
  - if: {priority: [Urgent, Immediate]}
    level: P1
  - if: {priority: High}
    level: P2
  - if: {type: HOL}
    level: HOL
  - if: {type: MAD}
    level: MAD
  - if: {type: NYC}
    level: NYC
  - if: {type: KOL}
    level: KOL
  - level: P3
clock:
  pause_statuses: [Feedback, Waiting on customer]
  resolved_statuses: [Resolved, Closed]
  workaround_statuses: [Workaround provided]
  workaround_labels: [workaround]
warn_at: 75%
"""

POLICY = parse_policy(POLICY_TEXT, "timers-test.yaml")

MON = "2026-11-02"
TUE = "2026-11-03"


def at(day: str, hhmm: str) -> str:
    return f"{day}T{hhmm}:00Z"


def run(issue: dict[str, Any], now: str, policy: Any = POLICY) -> IssueSla:
    return evaluate(issue_from_json(issue), policy, ts(now))


def state(sla: IssueSla, metric: str) -> dict[str, Any]:
    """One metric as a plain dict, instants as ISO text, for readable diffs."""
    m = sla.metrics[metric]
    return {
        "state": m.state.value,
        "at_risk": m.at_risk,
        "target_s": m.target_s,
        "elapsed_s": m.elapsed_s,
        "remaining_s": m.remaining_s,
        "due_at": iso(m.due_at),
        "breached_at": iso(m.breached_at),
        "stopped_at": iso(m.stopped_at),
    }




H, M = 3600, 60
P2_FR, P2_WA, P2_RES = 2 * H, 8 * H, 40 * H
P3_FR, P3_RES = 8 * H, 80 * H

# (id, issue, now, metric, expected)
CASES: list[tuple[str, dict[str, Any], str, str, dict[str, Any]]] = [
    # -- the clock starts at created_at ------------------------------------------------
    # 10:00-11:00 = 1 h; due 11:00 + 1 h = 12:00
    (
        "starts_at_created_at_first_response",
        issue_json(at(MON, "10:00"), priority="High"),
        at(MON, "11:00"),
        "first_response",
        expect("running", P2_FR, 1 * H, due=at(MON, "12:00")),
    ),
    # 7 h left from Mon 11:00: Mon 11-13 + 14-18 = 6 h, Tue 09:00-10:00
    (
        "starts_at_created_at_workaround",
        issue_json(at(MON, "10:00"), priority="High"),
        at(MON, "11:00"),
        "workaround",
        expect("running", P2_WA, 1 * H, due=at(TUE, "10:00")),
    ),
    # 39 h left from Mon 11:00: Mon 6 h, Tue-Fri 32 h (38), Mon 9 Nov 09:00-10:00
    (
        "starts_at_created_at_resolution",
        issue_json(at(MON, "10:00"), priority="High"),
        at(MON, "11:00"),
        "resolution",
        expect("running", P2_RES, 1 * H, due="2026-11-09T10:00:00Z"),
    ),
    # -- only working time counts ------------------------------------------------------
    # Mon 17-18 + Tue 09-10; due: 6 h more from Tue 10:00 = 10-13 + 14-17
    (
        "runs_across_a_night",
        issue_json(at(MON, "17:00")),
        at(TUE, "10:00"),
        "first_response",
        expect("running", P3_FR, 2 * H, due=at(TUE, "17:00")),
    ),
    # 12:30-13:00 + 14:00-14:30; due: 7 h more = 14:30-18:00 (3.5 h) + Tue 09:00-12:30
    (
        "skips_lunch",
        issue_json(at(MON, "12:30")),
        at(MON, "14:30"),
        "first_response",
        expect("running", P3_FR, 1 * H, due=at(TUE, "12:30")),
    ),
    # Fri 17-18 + Mon 09-10; due: 6 h from Mon 10:00 = 10-13 + 14-17
    (
        "skips_the_weekend",
        issue_json("2026-11-06T17:00:00Z"),
        "2026-11-09T10:00:00Z",
        "first_response",
        expect("running", P3_FR, 2 * H, due="2026-11-09T17:00:00Z"),
    ),
    # created on a Saturday: the clock starts Monday 09:00; due: 7.5 h from 09:30 =
    # 09:30-13:00 + 14:00-18:00
    (
        "created_on_a_saturday",
        issue_json("2026-11-07T10:00:00Z"),
        "2026-11-09T09:30:00Z",
        "first_response",
        expect("running", P3_FR, 30 * M, due="2026-11-09T18:00:00Z"),
    ),
    # created in the evening: nothing yet; due: the whole 8 h of Tuesday
    (
        "created_in_the_evening",
        issue_json(at(MON, "19:00")),
        at(MON, "23:00"),
        "first_response",
        expect("running", P3_FR, 0, due=at(TUE, "18:00")),
    ),
    # -- pause statuses stop the clock -------------------------------------------------
    # 09-10 and 11-12 run, 10-11 in Feedback; due: 6 h from 12:00 = 12-13 + 14-18 + Tue 09-10
    (
        "pause_status_stops_the_clock",
        issue_json(
            at(MON, "09:00"),
            "In Progress",
            events=[status(at(MON, "10:00"), "New", "Feedback"), status(at(MON, "11:00"), "Feedback", "In Progress")],
        ),
        at(MON, "12:00"),
        "first_response",
        expect("running", P3_FR, 2 * H, due=at(TUE, "10:00")),
    ),
    (
        "pause_status_stops_resolution_too",
        issue_json(
            at(MON, "09:00"),
            "In Progress",
            events=[status(at(MON, "10:00"), "New", "Feedback"), status(at(MON, "11:00"), "Feedback", "In Progress")],
        ),
        at(MON, "12:00"),
        "resolution",
        # 78 h left from Mon 12:00: Mon 5 h (73), Tue-Fri 32 h (41), Mon 9-Fri 13 40 h (1),
        # Mon 16 Nov 09:00-10:00
        expect("running", P3_RES, 2 * H, due="2026-11-16T10:00:00Z"),
    ),
    # Mon 16-17, paused 17:00 to Tue 10:00, Tue 10-11 runs; due: 6 h from Tue 11:00 =
    # 11-13 + 14-18
    (
        "pause_across_a_night",
        issue_json(
            at(MON, "16:00"),
            "In Progress",
            events=[
                status(at(MON, "17:00"), "New", "Waiting on customer"),
                status(at(TUE, "10:00"), "Waiting on customer", "In Progress"),
            ],
        ),
        at(TUE, "11:00"),
        "first_response",
        expect("running", P3_FR, 2 * H, due=at(TUE, "18:00")),
    ),
    # paused now: elapsed 09-10 only, no due date
    (
        "state_paused",
        issue_json(at(MON, "09:00"), "Feedback", events=[status(at(MON, "10:00"), "New", "Feedback")]),
        at(MON, "15:00"),
        "first_response",
        expect("paused", P3_FR, 1 * H),
    ),
    (
        "state_paused_resolution",
        issue_json(at(MON, "09:00"), "Feedback", events=[status(at(MON, "10:00"), "New", "Feedback")]),
        at(MON, "15:00"),
        "resolution",
        expect("paused", P3_RES, 1 * H),
    ),
    # paused past the warning share (09:00-10:45 = 105 min > 75 % of 120): not at risk
    (
        "paused_is_never_at_risk",
        issue_json(at(MON, "09:00"), "Feedback", priority="High", events=[status(at(MON, "10:45"), "New", "Feedback")]),
        at(MON, "15:00"),
        "first_response",
        expect("paused", P2_FR, 105 * M),
    ),
    # -- first_response ------------------------------------------------------------------
    # public comment by an agent at 10:30: stopped, 1.5 h
    (
        "first_response_stops_at_public_agent_comment",
        issue_json(at(MON, "09:00"), events=[comment(at(MON, "10:30"))]),
        at(MON, "15:00"),
        "first_response",
        expect("met", P3_FR, 90 * M, stopped=at(MON, "10:30")),
    ),
    # a private agent comment does not count: 09-13 + 14-15 = 5 h; due 15:00 + 3 h = 18:00
    (
        "first_response_ignores_private_comment",
        issue_json(at(MON, "09:00"), events=[comment(at(MON, "10:30"), public=False)]),
        at(MON, "15:00"),
        "first_response",
        expect("running", P3_FR, 5 * H, due=at(MON, "18:00")),
    ),
    # nor does a public comment by the customer
    (
        "first_response_ignores_customer_comment",
        issue_json(at(MON, "09:00"), events=[comment(at(MON, "10:30"), by_agent=False)]),
        at(MON, "15:00"),
        "first_response",
        expect("running", P3_FR, 5 * H, due=at(MON, "18:00")),
    ),
    # private at 10:00, customer at 10:30, the first public agent comment at 11:00
    (
        "first_response_takes_first_public_agent_comment",
        issue_json(
            at(MON, "09:00"),
            events=[
                comment(at(MON, "10:00"), public=False),
                comment(at(MON, "10:30"), by_agent=False),
                comment(at(MON, "11:00")),
                comment(at(MON, "12:00")),
            ],
        ),
        at(MON, "15:00"),
        "first_response",
        expect("met", P3_FR, 2 * H, stopped=at(MON, "11:00")),
    ),
    # resolved at 10:00 before the agent's comment at 11:00: stops at 10:00
    (
        "first_response_stops_at_earlier_resolution",
        issue_json(
            at(MON, "09:00"),
            "Resolved",
            events=[status(at(MON, "10:00"), "New", "Resolved"), comment(at(MON, "11:00"))],
        ),
        at(MON, "15:00"),
        "first_response",
        expect("met", P3_FR, 1 * H, stopped=at(MON, "10:00")),
    ),
    # ... and stays stopped after a reopening
    (
        "first_response_stays_met_after_reopen",
        issue_json(
            at(MON, "09:00"),
            "In Progress",
            events=[status(at(MON, "10:00"), "New", "Resolved"), status(at(MON, "11:00"), "Resolved", "In Progress")],
        ),
        at(MON, "15:00"),
        "first_response",
        expect("met", P3_FR, 1 * H, stopped=at(MON, "10:00")),
    ),
    # comment at 10:00, resolution at 11:00: the comment wins
    (
        "first_response_comment_before_resolution",
        issue_json(
            at(MON, "09:00"),
            "Resolved",
            events=[comment(at(MON, "10:00")), status(at(MON, "11:00"), "New", "Resolved")],
        ),
        at(MON, "15:00"),
        "first_response",
        expect("met", P3_FR, 1 * H, stopped=at(MON, "10:00")),
    ),
    # -- workaround (P2: 8 h) ------------------------------------------------------------
    # workaround status entered at 11:00: 2 h
    (
        "workaround_stops_at_workaround_status",
        issue_json(
            at(MON, "09:00"),
            "Workaround provided",
            priority="High",
            events=[status(at(MON, "11:00"), "New", "Workaround provided")],
        ),
        at(MON, "15:00"),
        "workaround",
        expect("met", P2_WA, 2 * H, stopped=at(MON, "11:00")),
    ),
    # entered at 11:00, left at 12:00, entered again at 14:30: the first time counts
    (
        "workaround_stops_the_first_time",
        issue_json(
            at(MON, "09:00"),
            "Workaround provided",
            priority="High",
            events=[
                status(at(MON, "11:00"), "New", "Workaround provided"),
                status(at(MON, "12:00"), "Workaround provided", "In Progress"),
                status(at(MON, "14:30"), "In Progress", "Workaround provided"),
            ],
        ),
        at(MON, "15:00"),
        "workaround",
        expect("met", P2_WA, 2 * H, stopped=at(MON, "11:00")),
    ),
    (
        "workaround_stops_at_workaround_label",
        issue_json(
            at(MON, "09:00"),
            "In Progress",
            priority="High",
            labels=["workaround"],
            events=[label(at(MON, "11:00"), added=["workaround"])],
        ),
        at(MON, "15:00"),
        "workaround",
        expect("met", P2_WA, 2 * H, stopped=at(MON, "11:00")),
    ),
    # another label does not count: 09-13 + 14-15 = 5 h; due 15:00 + 3 h = 18:00
    (
        "workaround_ignores_other_labels",
        issue_json(
            at(MON, "09:00"),
            "In Progress",
            priority="High",
            labels=["outage"],
            events=[label(at(MON, "11:00"), added=["outage"])],
        ),
        at(MON, "15:00"),
        "workaround",
        expect("running", P2_WA, 5 * H, due=at(MON, "18:00")),
    ),
    (
        "workaround_stops_at_first_resolution",
        issue_json(at(MON, "09:00"), "Resolved", priority="High", events=[status(at(MON, "10:00"), "New", "Resolved")]),
        at(MON, "15:00"),
        "workaround",
        expect("met", P2_WA, 1 * H, stopped=at(MON, "10:00")),
    ),
    # -- resolution ------------------------------------------------------------------
    # resolved at 10:00; nothing runs afterwards
    (
        "resolution_does_not_run_while_resolved",
        issue_json(at(MON, "09:00"), "Resolved", events=[status(at(MON, "10:00"), "New", "Resolved")]),
        at(TUE, "12:00"),
        "resolution",
        expect("met", P3_RES, 1 * H, stopped=at(MON, "10:00")),
    ),
    # Resolved 10:00 then Closed 11:00: stopped since the resolved stretch began
    (
        "resolution_stopped_since_first_resolved_status_of_the_stretch",
        issue_json(
            at(MON, "09:00"),
            "Closed",
            events=[status(at(MON, "10:00"), "New", "Resolved"), status(at(MON, "11:00"), "Resolved", "Closed")],
        ),
        at(TUE, "12:00"),
        "resolution",
        expect("met", P3_RES, 1 * H, stopped=at(MON, "10:00")),
    ),
    # 09-10, resolved 10-15, reopened 15-17: 1 h + 2 h = 3 h.  77 h left from Mon 17:00:
    # Mon 1 h (76), Tue-Fri 32 h (44), Mon 9-Fri 13 40 h (4), Mon 16 Nov 09:00-13:00
    (
        "reopening_resumes_resolution",
        issue_json(
            at(MON, "09:00"),
            "In Progress",
            events=[status(at(MON, "10:00"), "New", "Resolved"), status(at(MON, "15:00"), "Resolved", "In Progress")],
        ),
        at(MON, "17:00"),
        "resolution",
        expect("running", P3_RES, 3 * H, due="2026-11-16T13:00:00Z"),
    ),
    # and resolved again on Tue 10:00: 1 h + Mon 15-18 (3 h) + Tue 09-10 (1 h) = 5 h
    (
        "resolution_accumulates_across_cycles",
        issue_json(
            at(MON, "09:00"),
            "Resolved",
            events=[
                status(at(MON, "10:00"), "New", "Resolved"),
                status(at(MON, "15:00"), "Resolved", "In Progress"),
                status(at(TUE, "10:00"), "In Progress", "Resolved"),
            ],
        ),
        at(TUE, "12:00"),
        "resolution",
        expect("met", P3_RES, 5 * H, stopped=at(TUE, "10:00")),
    ),
    # -- breached, met, at the target ----------------------------------------------------
    # 09-12 = 3 h > 2 h: breached when 2 h were reached, at 11:00
    (
        "breached_while_running",
        issue_json(at(MON, "09:00"), priority="High"),
        at(MON, "12:00"),
        "first_response",
        expect("breached", P2_FR, 3 * H, due=at(MON, "11:00"), breached=at(MON, "11:00")),
    ),
    # answered at 14:30: 09-13 + 14-14:30 = 4.5 h > 2 h: breached although stopped
    (
        "breached_although_stopped",
        issue_json(at(MON, "09:00"), priority="High", events=[comment(at(MON, "14:30"))]),
        at(MON, "15:00"),
        "first_response",
        expect("breached", P2_FR, 270 * M, due=at(MON, "11:00"), breached=at(MON, "11:00"), stopped=at(MON, "14:30")),
    ),
    # answered exactly when 2 h were used: met, not breached
    (
        "met_at_exactly_the_target",
        issue_json(at(MON, "09:00"), priority="High", events=[comment(at(MON, "11:00"))]),
        at(MON, "15:00"),
        "first_response",
        expect("met", P2_FR, 2 * H, stopped=at(MON, "11:00")),
    ),
    # still open exactly at the target: running, nothing left, due now, at risk
    (
        "running_at_exactly_the_target",
        issue_json(at(MON, "09:00"), priority="High"),
        at(MON, "11:00"),
        "first_response",
        expect("running", P2_FR, 2 * H, at_risk=True, due=at(MON, "11:00")),
    ),
    # paused at 11:30 after 2.5 h: breached (at 11:00) even while paused
    (
        "breached_while_paused",
        issue_json(at(MON, "09:00"), "Feedback", priority="High", events=[status(at(MON, "11:30"), "New", "Feedback")]),
        at(MON, "15:00"),
        "first_response",
        expect("breached", P2_FR, 150 * M, due=at(MON, "11:00"), breached=at(MON, "11:00")),
    ),
    # Mon 17-18 + Tue 09-12 = 4 h; 2 h were reached on Tue at 10:00
    (
        "breached_at_across_a_night",
        issue_json(at(MON, "17:00"), priority="High"),
        at(TUE, "12:00"),
        "first_response",
        expect("breached", P2_FR, 4 * H, due=at(TUE, "10:00"), breached=at(TUE, "10:00")),
    ),
    # 11:00-13:00 is exactly 2 h: breached at 13:00 (end of the morning), not 14:00
    (
        "breached_at_end_of_an_interval",
        issue_json(at(MON, "11:00"), priority="High"),
        at(MON, "15:00"),
        "first_response",
        expect("breached", P2_FR, 3 * H, due=at(MON, "13:00"), breached=at(MON, "13:00")),
    ),
    # 11:30-13:00 (1.5 h) + 14:00-14:30: breached at 14:30; elapsed 1.5 + 2 = 3.5 h
    (
        "breached_at_after_lunch",
        issue_json(at(MON, "11:30"), priority="High"),
        at(MON, "16:00"),
        "first_response",
        expect("breached", P2_FR, 210 * M, due=at(MON, "14:30"), breached=at(MON, "14:30")),
    ),
    # 09:00-09:30 runs, paused 09:30-10:30, runs again: 30 min + 10:30-12:00 = 2 h at 12:00;
    # at 12:30 that is 2.5 h, breached at 12:00
    (
        "breached_at_skips_paused_time",
        issue_json(
            at(MON, "09:00"),
            "In Progress",
            priority="High",
            events=[
                status(at(MON, "09:30"), "New", "Feedback"),
                status(at(MON, "10:30"), "Feedback", "In Progress"),
            ],
        ),
        at(MON, "12:30"),
        "first_response",
        expect("breached", P2_FR, 150 * M, due=at(MON, "12:00"), breached=at(MON, "12:00")),
    ),
    # P1 (24x7, 24 h): open Mon 09:00-21:00 (12 h), resolved until Tue 09:00, open again
    # to Wed 09:00 (24 h): 36 h; the 24th hour was reached on Tue at 21:00
    (
        "resolution_breached_at_counts_only_open_time",
        issue_json(
            at(MON, "09:00"),
            "In Progress",
            priority="Urgent",
            events=[
                status(at(MON, "21:00"), "New", "Resolved"),
                status(at(TUE, "09:00"), "Resolved", "In Progress"),
            ],
        ),
        "2026-11-04T09:00:00Z",
        "resolution",
        expect("breached", 24 * H, 36 * H, due=at(TUE, "21:00"), breached=at(TUE, "21:00")),
    ),
    # -- at risk (75 % of 2 h = 90 min) --------------------------------------------------
    # 100 min used: at risk; due 10:40 + 20 min = 11:00
    (
        "at_risk_past_warn_at",
        issue_json(at(MON, "09:00"), priority="High"),
        at(MON, "10:40"),
        "first_response",
        expect("running", P2_FR, 100 * M, at_risk=True, due=at(MON, "11:00")),
    ),
    # 60 min used: not yet
    (
        "not_at_risk_before_warn_at",
        issue_json(at(MON, "09:00"), priority="High"),
        at(MON, "10:00"),
        "first_response",
        expect("running", P2_FR, 60 * M, due=at(MON, "11:00")),
    ),
    # met after 110 min: not at risk (only running metrics are)
    (
        "met_is_never_at_risk",
        issue_json(at(MON, "09:00"), priority="High", events=[comment(at(MON, "10:50"))]),
        at(MON, "12:00"),
        "first_response",
        expect("met", P2_FR, 110 * M, stopped=at(MON, "10:50")),
    ),
    # -- due_at across a weekend and a holiday ------------------------------------------
    # Fri 16:30-17:30 used 1 h; 1 h left: Fri 17:30-18:00 + Mon 09:00-09:30
    (
        "due_across_a_weekend",
        issue_json("2026-11-06T16:30:00Z", priority="High"),
        "2026-11-06T17:30:00Z",
        "first_response",
        expect("running", P2_FR, 1 * H, due="2026-11-09T09:30:00Z"),
    ),
    # the same on a calendar with Monday 2026-11-09 off: Tuesday 09:30
    (
        "due_across_a_weekend_and_a_holiday",
        issue_json("2026-11-06T16:30:00Z", type="HOL"),
        "2026-11-06T17:30:00Z",
        "first_response",
        expect("running", 2 * H, 1 * H, due="2026-11-10T09:30:00Z"),
    ),
    # -- the level comes from the current values --------------------------------------
    # priority now High (was Low until 10:00): P2 from created_at, 3 h > 2 h, breached 11:00
    (
        "priority_change_moves_to_another_level",
        issue_json(
            at(MON, "09:00"), priority="High", events=[field_change(at(MON, "10:00"), "priority", "Low", "High")]
        ),
        at(MON, "12:00"),
        "first_response",
        expect("breached", P2_FR, 3 * H, due=at(MON, "11:00"), breached=at(MON, "11:00")),
    ),
    # priority now Low (was High): P3's 8 h; due: 5 h from 12:00 = 12-13 + 14-18
    (
        "priority_lowered_uses_the_lower_level",
        issue_json(
            at(MON, "09:00"), priority="Low", events=[field_change(at(MON, "10:00"), "priority", "High", "Low")]
        ),
        at(MON, "12:00"),
        "first_response",
        expect("running", P3_FR, 3 * H, due=at(MON, "18:00")),
    ),
    # raised to Urgent: P1 on the 24x7 calendar, Fri 17:00 to Mon 09:00 = 64 h > 24 h,
    # breached on Saturday at 17:00
    (
        "priority_raised_to_round_the_clock_level",
        issue_json(
            "2026-11-06T17:00:00Z",
            priority="Urgent",
            events=[field_change("2026-11-09T08:00:00Z", "priority", "Low", "Urgent")],
        ),
        "2026-11-09T09:00:00Z",
        "resolution",
        expect("breached", 24 * H, 64 * H, due="2026-11-07T17:00:00Z", breached="2026-11-07T17:00:00Z"),
    ),
    # -- events after now are ignored ------------------------------------------------------
    # the agent answers at 11:00; at 10:30 the clock still runs: 1.5 h, due 10:30 + 6.5 h
    # = 10:30-13:00 + 14:00-18:00
    (
        "comment_after_now_is_ignored",
        issue_json(at(MON, "09:00"), events=[comment(at(MON, "11:00"))]),
        at(MON, "10:30"),
        "first_response",
        expect("running", P3_FR, 90 * M, due=at(MON, "18:00")),
    ),
    (
        "label_after_now_is_ignored",
        issue_json(
            at(MON, "09:00"),
            priority="High",
            labels=["workaround"],
            events=[label(at(MON, "11:00"), added=["workaround"])],
        ),
        at(MON, "10:30"),
        "workaround",
        expect("running", P2_WA, 90 * M, due=at(MON, "18:00")),
    ),
    # In Progress since 10:00, resolved at 12:00 (after now = 11:00): running, 2 h;
    # 78 h left from Mon 11:00: Mon 6 h (72), Tue-Fri 32 h (40), Mon 9-Fri 13 40 h
    (
        "resolution_after_now_is_ignored",
        issue_json(
            at(MON, "09:00"),
            "Resolved",
            events=[
                status(at(MON, "10:00"), "New", "In Progress"),
                status(at(MON, "12:00"), "In Progress", "Resolved"),
            ],
        ),
        at(MON, "11:00"),
        "resolution",
        expect("running", P3_RES, 2 * H, due="2026-11-13T18:00:00Z"),
    ),
    # the only status change (New -> Resolved at 12:00) is after now = 11:00: at 11:00
    # the issue was New, so the clock ran 09-11 and still runs
    (
        "only_status_change_after_now_is_ignored",
        issue_json(at(MON, "09:00"), "Resolved", events=[status(at(MON, "12:00"), "New", "Resolved")]),
        at(MON, "11:00"),
        "resolution",
        expect("running", P3_RES, 2 * H, due="2026-11-13T18:00:00Z"),
    ),
    # the only status change (New -> Feedback at 12:00) is after now: not paused yet;
    # due: 6 h from 11:00 = 11-13 + 14-18
    (
        "pause_after_now_is_ignored",
        issue_json(at(MON, "09:00"), "Feedback", events=[status(at(MON, "12:00"), "New", "Feedback")]),
        at(MON, "11:00"),
        "first_response",
        expect("running", P3_FR, 2 * H, due=at(MON, "18:00")),
    ),
    # -- DST: Europe/Madrid (09:00-18:00 local, ES + MD holidays; 2 h and 16 h) ---------
    # Fri 2026-03-27 09:00 CET (08:00Z) to Mon 2026-03-30 10:00 CEST (08:00Z): Fri 9 h +
    # Mon 1 h = 10 h; 6 h left: Mon 10:00-16:00 CEST = 14:00Z
    (
        "madrid_across_spring_change",
        issue_json("2026-03-27T08:00:00Z", type="MAD"),
        "2026-03-30T08:00:00Z",
        "resolution",
        expect("running", 16 * H, 10 * H, due="2026-03-30T14:00:00Z"),
    ),
    # first response reached on Fri 11:00 CET = 10:00Z
    (
        "madrid_breached_before_spring_change",
        issue_json("2026-03-27T08:00:00Z", type="MAD"),
        "2026-03-30T08:00:00Z",
        "first_response",
        expect("breached", 2 * H, 10 * H, due="2026-03-27T10:00:00Z", breached="2026-03-27T10:00:00Z"),
    ),
    # Fri 17:00-17:30 CET used; 1.5 h left: Fri 17:30-18:00 + Mon 09:00-10:00 CEST = 08:00Z
    (
        "madrid_due_across_spring_change",
        issue_json("2026-03-27T16:00:00Z", type="MAD"),
        "2026-03-27T16:30:00Z",
        "first_response",
        expect("running", 2 * H, 30 * M, due="2026-03-30T08:00:00Z"),
    ),
    # Fri 2026-10-23 17:00-17:30 CEST used; Mon 2026-10-26 09:00-10:00 CET = 09:00Z
    (
        "madrid_due_across_autumn_change",
        issue_json("2026-10-23T15:00:00Z", type="MAD"),
        "2026-10-23T15:30:00Z",
        "first_response",
        expect("running", 2 * H, 30 * M, due="2026-10-26T09:00:00Z"),
    ),
    # Fri 2026-10-30 17:00-17:30 CET; Mon Nov 2 is a Madrid holiday; Tue 09:00-10:00 CET
    (
        "madrid_due_skips_regional_holiday",
        issue_json("2026-10-30T16:00:00Z", type="MAD"),
        "2026-10-30T16:30:00Z",
        "first_response",
        expect("running", 2 * H, 30 * M, due="2026-11-03T09:00:00Z"),
    ),
    # Fri 2026-12-04 17:00-17:30 CET; Mon Dec 7 (MD) and Tue Dec 8 (national) off; Wed 10:00 CET
    (
        "madrid_due_skips_two_holidays",
        issue_json("2026-12-04T16:00:00Z", type="MAD"),
        "2026-12-04T16:30:00Z",
        "first_response",
        expect("running", 2 * H, 30 * M, due="2026-12-09T09:00:00Z"),
    ),
    # -- DST: America/New_York (08:00-20:00 local, US holidays; 4 h and 24 h) ----------
    # Fri 2026-03-06 08:00 EST (13:00Z) to Mon 2026-03-09 09:00 EDT (13:00Z): 12 h + 1 h;
    # 11 h left: Mon 09:00-20:00 EDT = 2026-03-10T00:00Z
    (
        "new_york_across_spring_change",
        issue_json("2026-03-06T13:00:00Z", type="NYC"),
        "2026-03-09T13:00:00Z",
        "resolution",
        expect("running", 24 * H, 13 * H, due="2026-03-10T00:00:00Z"),
    ),
    # Fri 19:00-19:30 EST used; 3.5 h left: 19:30-20:00 + Mon 08:00-11:00 EDT = 15:00Z
    (
        "new_york_due_across_spring_change",
        issue_json("2026-03-07T00:00:00Z", type="NYC"),
        "2026-03-07T00:30:00Z",
        "first_response",
        expect("running", 4 * H, 30 * M, due="2026-03-09T15:00:00Z"),
    ),
    # Fri 2026-10-30 19:00-19:30 EDT used; Mon 2026-11-02 08:00-11:00 EST = 16:00Z
    (
        "new_york_due_across_autumn_change",
        issue_json("2026-10-30T23:00:00Z", type="NYC"),
        "2026-10-30T23:30:00Z",
        "first_response",
        expect("running", 4 * H, 30 * M, due="2026-11-02T16:00:00Z"),
    ),
    # Wed 2026-11-25 18:00 EST, nothing used yet; Wed 18-20 (2 h), Thanksgiving off,
    # Fri 08:00-10:00 EST = 15:00Z
    (
        "new_york_due_skips_thanksgiving",
        issue_json("2026-11-25T23:00:00Z", type="NYC"),
        "2026-11-25T23:00:00Z",
        "first_response",
        expect("running", 4 * H, 0, due="2026-11-27T15:00:00Z"),
    ),
    # -- the boundaries: an event at now, a target reached exactly --------------------------
    # resolved at 10:00 and read at 10:00: the status change counts (only events *after*
    # now are ignored); 09:00-10:00 = 1 h
    (
        "resolved_exactly_at_now_stops_resolution",
        issue_json(at(MON, "09:00"), "Resolved", priority="High", events=[status(at(MON, "10:00"), "New", "Resolved")]),
        at(MON, "10:00"),
        "resolution",
        expect("met", P2_RES, 1 * H, stopped=at(MON, "10:00")),
    ),
    (
        "resolved_exactly_at_now_stops_first_response",
        issue_json(at(MON, "09:00"), "Resolved", priority="High", events=[status(at(MON, "10:00"), "New", "Resolved")]),
        at(MON, "10:00"),
        "first_response",
        expect("met", P2_FR, 1 * H, stopped=at(MON, "10:00")),
    ),
    (
        "paused_exactly_at_now",
        issue_json(at(MON, "09:00"), "Feedback", priority="High", events=[status(at(MON, "10:00"), "New", "Feedback")]),
        at(MON, "10:00"),
        "first_response",
        expect("paused", P2_FR, 1 * H),
    ),
    # created 16:00, 2 h reached exactly at the 18:00 close; read at 20:00 and the next
    # morning before opening: still running (not over the target), due when it was reached
    (
        "target_reached_at_closing_read_in_the_evening",
        issue_json(at(MON, "16:00"), priority="High"),
        at(MON, "20:00"),
        "first_response",
        expect("running", P2_FR, 2 * H, due=at(MON, "18:00"), at_risk=True),
    ),
    (
        "target_reached_at_closing_read_before_opening",
        issue_json(at(MON, "16:00"), priority="High"),
        at(TUE, "08:59"),
        "first_response",
        expect("running", P2_FR, 2 * H, due=at(MON, "18:00"), at_risk=True),
    ),
    # 11:00-13:00 reaches 2 h at the lunch break; read at 13:30
    (
        "target_reached_at_lunch_read_during_lunch",
        issue_json(at(MON, "11:00"), priority="High"),
        at(MON, "13:30"),
        "first_response",
        expect("running", P2_FR, 2 * H, due=at(MON, "13:00"), at_risk=True),
    ),
    # -- Asia/Kolkata, UTC+05:30 (09:00-17:00 local; 2 h and 8 h) -----------------------
    # created 09:00 IST (03:30Z), now 11:30 IST (06:00Z): 2.5 h; 2 h reached at 11:00 IST
    (
        "kolkata_breached_first_response",
        issue_json("2026-11-02T03:30:00Z", type="KOL"),
        "2026-11-02T06:00:00Z",
        "first_response",
        expect("breached", 2 * H, 150 * M, due="2026-11-02T05:30:00Z", breached="2026-11-02T05:30:00Z"),
    ),
    # 5.5 h left from 11:30 IST: 17:00 IST = 11:30Z
    (
        "kolkata_running_resolution",
        issue_json("2026-11-02T03:30:00Z", type="KOL"),
        "2026-11-02T06:00:00Z",
        "resolution",
        expect("running", 8 * H, 150 * M, due="2026-11-02T11:30:00Z"),
    ),
    # created 07:30 IST (02:00Z), now 09:30 IST (04:00Z): 30 min; due 11:00 IST = 05:30Z
    (
        "kolkata_created_before_opening",
        issue_json("2026-11-02T02:00:00Z", type="KOL"),
        "2026-11-02T04:00:00Z",
        "first_response",
        expect("running", 2 * H, 30 * M, due="2026-11-02T05:30:00Z"),
    ),
]


@pytest.mark.parametrize(("issue", "now", "metric", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_clock_rule(issue: dict[str, Any], now: str, metric: str, expected: dict[str, Any]) -> None:
    assert state(run(issue, now), metric) == expected


# -- levels and metrics ----------------------------------------------------------------


LEVELS = [
    # (id, issue, level, metrics)
    (
        "urgent_is_P1",
        issue_json(at(MON, "09:00"), priority="Urgent"),
        "P1",
        ["first_response", "workaround", "resolution"],
    ),
    ("high_is_P2", issue_json(at(MON, "09:00"), priority="High"), "P2", ["first_response", "workaround", "resolution"]),
    # P3 sets no workaround target: no workaround metric
    (
        "default_is_P3_without_workaround",
        issue_json(at(MON, "09:00"), priority="Low"),
        "P3",
        ["first_response", "resolution"],
    ),
    ("type_selects_a_level", issue_json(at(MON, "09:00"), type="KOL"), "KOL", ["first_response", "resolution"]),
]


@pytest.mark.parametrize(("issue", "level", "metrics"), [c[1:] for c in LEVELS], ids=[c[0] for c in LEVELS])
def test_level_decides_which_metrics_run(issue: dict[str, Any], level: str, metrics: list[str]) -> None:
    sla = run(issue, at(MON, "10:00"))
    assert (sla.key, sla.level, sorted(sla.metrics)) == ("T-1", level, sorted(metrics))


def test_level_without_workaround_target_has_no_workaround_metric_even_with_workaround_events() -> None:
    sla = run(
        issue_json(
            at(MON, "09:00"),
            "Workaround provided",
            labels=["workaround"],
            events=[
                status(at(MON, "10:00"), "New", "Workaround provided"),
                label(at(MON, "10:00"), added=["workaround"]),
            ],
        ),
        at(MON, "12:00"),
    )
    assert sorted(sla.metrics) == ["first_response", "resolution"]


def test_replay_at_an_earlier_now_matches_the_issue_as_it_was_then() -> None:
    # The full history evaluated at Mon 11:00 must equal the issue as a fetch at 11:00
    # would have seen it (status New, no events yet).
    later = issue_json(
        at(MON, "09:00"),
        "Resolved",
        priority="High",
        labels=["workaround"],
        events=[
            comment(at(MON, "12:00")),
            label(at(MON, "13:00"), added=["workaround"]),
            status(at(MON, "14:00"), "New", "Resolved"),
        ],
    )
    then = issue_json(at(MON, "09:00"), "New", priority="High")
    assert run(later, at(MON, "11:00")) == run(then, at(MON, "11:00"))


def test_warn_at_follows_the_policy() -> None:
    # warn_at 50 %: 70 min of 120 is past 60 min
    policy = parse_policy(POLICY_TEXT.replace("warn_at: 75%", "warn_at: 50%"))
    sla = run(issue_json(at(MON, "09:00"), priority="High"), at(MON, "10:10"), policy)
    assert state(sla, "first_response") == expect("running", P2_FR, 70 * M, at_risk=True, due=at(MON, "11:00"))


def test_breached_metric_is_not_at_risk() -> None:
    # at_risk is a flag on running metrics: 3 h of 2 h is breached, not at risk
    sla = run(issue_json(at(MON, "09:00"), priority="High"), at(MON, "12:00"))
    assert (sla.metrics["first_response"].state.value, sla.metrics["first_response"].at_risk) == ("breached", False)


def test_evaluate_depends_only_on_its_arguments() -> None:
    # The same issue, policy and now give the same answer, whatever was asked before
    # (the calendars cache days between calls).
    issue = issue_json("2026-03-27T08:00:00Z", type="MAD")
    first = run(issue, "2026-03-30T08:00:00Z")
    run(issue_json("2025-01-02T08:00:00Z", type="MAD"), "2027-06-01T08:00:00Z")
    assert run(issue, "2026-03-30T08:00:00Z") == first


def test_elapsed_over_two_months_on_a_fresh_policy() -> None:
    # A policy just loaded (nothing cached yet).  Mon 2026-01-05 09:00 to Mon 2026-03-02
    # 09:00 is 8 weeks of 40 h = 320 h; P3's 80 h were reached after two weeks, on Fri
    # 2026-01-16 at 18:00; its 8 h first response at the end of Monday 2026-01-05.
    sla = run(issue_json("2026-01-05T09:00:00Z"), "2026-03-02T09:00:00Z", parse_policy(POLICY_TEXT))
    assert state(sla, "resolution") == expect(
        "breached", P3_RES, 320 * H, due="2026-01-16T18:00:00Z", breached="2026-01-16T18:00:00Z"
    )
    assert state(sla, "first_response") == expect(
        "breached", P3_FR, 320 * H, due="2026-01-05T18:00:00Z", breached="2026-01-05T18:00:00Z"
    )


def test_events_count_in_time_order_whatever_their_order_in_the_input() -> None:
    events = [
        status(at(MON, "10:00"), "New", "Resolved"),
        status(at(MON, "15:00"), "Resolved", "In Progress"),
        comment(at(MON, "16:00")),
    ]
    in_order = run(issue_json(at(MON, "09:00"), "In Progress", events=events), at(MON, "17:00"))
    shuffled = run(issue_json(at(MON, "09:00"), "In Progress", events=events[::-1]), at(MON, "17:00"))
    assert shuffled == in_order
    # 09-10, resolved 10-15, 15-17 again: 3 h; the first response stopped at the
    # first resolution (10:00), before the comment at 16:00
    assert state(in_order, "resolution")["elapsed_s"] == 3 * H
    assert state(in_order, "first_response")["stopped_at"] == at(MON, "10:00")


FAR_POLICY = """\
name: far-targets
calendars:
  sparse:
    timezone: UTC
    hours: {mon: ["09:00-09:01"]}
  holidays_only_off:
    timezone: UTC
    hours: 24x7
    holidays: [2026-12-25]
  office:
    timezone: UTC
    hours: {mon: ["09:00-17:00"], tue: ["09:00-17:00"], wed: ["09:00-17:00"], \
thu: ["09:00-17:00"], fri: ["09:00-17:00"]}
levels:
  SPARSE: {calendar: sparse, first_response: 100000h, resolution: 2m}
  LONG: {calendar: holidays_only_off, resolution: 100000h}
  YEARS: {calendar: office, resolution: 25000h}
classify:
  - if: {type: LONG}
    level: LONG
  - if: {type: YEARS}
    level: YEARS
  - level: SPARSE
"""


def test_a_target_out_of_the_calendars_reach_is_running_with_no_due_instant() -> None:
    # One minute a week: 100000 h would take two million years.  On 24x7 with one
    # holiday, 100000 h is more than the ten years the calendars look ahead.  Both stay
    # running with due_at null (the README says so), and never raise.
    policy = parse_policy(FAR_POLICY)
    sparse = run(issue_json(at(MON, "09:00")), at(MON, "12:00"), policy)
    assert state(sparse, "first_response") == expect("running", 100_000 * H, 1 * M, due=None)
    # the other metric of the same level is reachable, and comes due as usual: the 2nd
    # minute is the next Monday's first
    assert state(sparse, "resolution") == expect("running", 2 * M, 1 * M, due="2026-11-09T09:01:00Z")
    long = run(issue_json(at(MON, "09:00"), type="LONG"), at(MON, "12:00"), policy)
    assert state(long, "resolution") == expect("running", 100_000 * H, 3 * H, due=None)


def test_unreachable_targets_cost_the_same_on_every_issue() -> None:
    # The calendar looks ten years ahead of each instant, not ten more years on every
    # call: a thousand issues (a few hours apart) would otherwise run past the year 9999.
    policy = parse_policy(FAR_POLICY)
    for hour in range(1000):
        sla = run(issue_json(f"2026-11-02T{hour % 24:02d}:00:00Z"), at(TUE, "12:00"), policy)
        assert sla.metrics["first_response"].due_at is None


def test_a_breach_more_than_ten_years_after_creation_has_its_instant() -> None:
    # 09:00-17:00 on weekdays, 40 h a week: 25000 h are 625 weeks, the last ending on the
    # Friday 624 weeks after Fri 2026-11-06, i.e. Fri 2038-10-22 at 17:00.  From Mon
    # 2026-11-02 09:00 to Mon 2040-01-02 09:00 are 687 weeks: 27480 h.
    sla = run(issue_json(at(MON, "09:00"), type="YEARS"), "2040-01-02T09:00:00Z", parse_policy(FAR_POLICY))
    assert state(sla, "resolution") == expect(
        "breached", 25_000 * H, 27_480 * H, due="2038-10-22T17:00:00Z", breached="2038-10-22T17:00:00Z"
    )
