"""Statistics over evaluated issues: what ``sla-sync report`` computes.

Pure and streaming: ``ReportBuilder.add(issue, sla)`` folds one evaluated issue into
per-group counters and ``result()`` returns frozen ``Report`` values.  Nothing here
keeps the issues themselves, so memory does not grow with their number:

- counts are integers per group and metric;
- the median and the 90th percentile are exact, over a histogram of elapsed
  seconds (``Counter`` keyed by the exact value).  Its size is the number of
  *distinct* values, which working time measured from events stamped to the
  minute keeps to a few thousand whatever the number of issues; in the worst case
  (every value distinct) it is one entry per stopped metric, never more.
  Percentiles are nearest-rank: the smallest value that at least p % of the
  values do not exceed, so they are always an elapsed time that occurred;
- the HTML report's series are per week and per level (bounded by the period),
  and the issues at risk are the ``AT_RISK_LIMIT`` soonest due, plus their count.

An issue belongs to the period when it was created in ``[since, until)``.
"""

from __future__ import annotations

import heapq
import itertools
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .calendar import DAY, iso_utc
from .model import METRICS, Issue, IssueSla, SlaState, State
from .policy import Policy
from .timers import build_timeline

GROUP_BY = ("level", "assignee", "month", "milestone", "type")
NO_VALUE = "(none)"  # the group of issues without an assignee, milestone or type
TOTAL = "(total)"  # the total's name where a format needs one (CSV, tables)
AT_RISK_LIMIT = 100
# Bins of elapsed time as a share of the target, in percent (upper bounds, inclusive):
# everything up to 100 % met its target.
SHARE_BINS = (25, 50, 75, 100, 125, 150, 200, 300)
WEEK = 7 * DAY


@dataclass(frozen=True, slots=True)
class Period:
    """``[since, until)`` of creation instants; ``None`` leaves that side open."""

    since: int | None
    until: int | None

    def holds(self, created_at: int) -> bool:
        return (self.since is None or created_at >= self.since) and (self.until is None or created_at < self.until)


@dataclass(frozen=True, slots=True)
class MetricStats:
    """One metric over a group of issues."""

    met: int
    breached: int
    running: int
    paused: int
    compliance: float | None  # met / (met + breached); None when both are zero
    median_elapsed_s: int | None  # over stopped metrics (nearest rank)
    p90_elapsed_s: int | None
    not_started: int = 0  # custom metrics: issues whose clock never started
    cycles: int | None = None  # custom metrics: every cycle of every issue (None: a built-in metric)
    breached_cycles: int = 0
    cycle_compliance: float | None = None  # decided cycles not breached / decided cycles (an open one is undecided)


@dataclass(frozen=True, slots=True)
class Csat:
    """Customer satisfaction over the solved issues of a group."""

    answers: int
    average: float | None


@dataclass(frozen=True, slots=True)
class GroupStats:
    """A group of issues (or the total)."""

    opened: int
    solved: int
    at_risk_open: int  # running metrics flagged at risk
    csat: Csat
    metrics: dict[str, MetricStats]


@dataclass(frozen=True, slots=True)
class AtRisk:
    """A running metric flagged at risk now (for the HTML report)."""

    key: str
    title: str
    level: str
    metric: str
    elapsed_s: int
    target_s: int
    due_at: int | None


@dataclass(frozen=True)
class Series:
    """What the HTML report draws, besides the groups.

    Weeks are Mondays 00:00 UTC.  ``compliance`` and ``csat`` count issues by the
    week they were created; ``breaches`` counts breaches by the week they happened.
    ``shares`` bins the elapsed time of stopped metrics as a share of each issue's
    own target (``SHARE_BINS``; the last bin is everything above 300 %).
    """

    levels: tuple[str, ...]
    metrics: tuple[str, ...]
    compliance: dict[tuple[str, str], dict[int, tuple[int, int]]]  # (level, metric) → week → (met, breached)
    breaches: dict[int, dict[str, int]]  # week → metric → count
    csat: dict[int, tuple[int, float]]  # week → (answers, sum)
    shares: dict[tuple[str, str], tuple[int, ...]]  # (metric, level) → count per bin
    targets: dict[tuple[str, str], tuple[int, ...]]  # (metric, level) → targets seen (revisions)
    at_risk: tuple[AtRisk, ...]  # the soonest due first, at most AT_RISK_LIMIT
    at_risk_total: int


@dataclass(frozen=True)
class Report:
    """The result of ``sla-sync report``."""

    policy: str
    period: Period
    now: int
    group_by: str
    groups: dict[str, GroupStats]
    total: GroupStats
    unmapped_csat: dict[str, int] = field(default_factory=dict)  # CSAT values no number was found for
    series: Series | None = None


# -- small pure helpers ------------------------------------------------------------------


def nearest_rank(histogram: Mapping[int, int], percent: int) -> int | None:
    """The smallest value that at least ``percent`` % of the values do not exceed."""
    count = sum(histogram.values())
    if count == 0:
        return None
    rank = max(1, (percent * count + 99) // 100)  # ceil(percent / 100 * count)
    seen = 0
    for value in sorted(histogram):
        seen += histogram[value]
        if seen >= rank:
            return value
    raise AssertionError("ranks add up to the count")  # pragma: no cover


def csat_score(value: Any, mapping: Mapping[str, float]) -> tuple[float | None, str | None]:
    """A CSAT field's value → ``(score, None)``, ``(None, None)`` for no answer, or
    ``(None, text)`` for a value that is neither a number nor in ``mapping``.

    A list value (a list custom field) counts by its first non-empty element.  A
    value named in ``report.csat_values`` maps to its number first; otherwise a
    number, or text holding one (Redmine sends ``"4"``), is the score.
    """
    if isinstance(value, list):
        value = next((v for v in value if v not in (None, "")), None)
    if value is None or value == "":
        return None, None
    text = str(value).strip()
    if text in mapping:
        return float(mapping[text]), None
    if isinstance(value, bool):
        return None, text
    if isinstance(value, int | float):
        return float(value), None
    try:
        return float(text), None
    except ValueError:
        return None, text


def week_of(instant: int) -> int:
    """Monday 00:00 UTC of the instant's week (1970-01-01 was a Thursday)."""
    day = instant // DAY
    return (day - (day + 3) % 7) * DAY


def month_of(instant: int) -> str:
    """``YYYY-MM`` of an instant, in UTC."""
    return datetime.fromtimestamp(instant, UTC).strftime("%Y-%m")


def share_bin(elapsed: int, target: int) -> int:
    """Index into ``SHARE_BINS`` (``len(SHARE_BINS)`` for above the last bound)."""
    for i, bound in enumerate(SHARE_BINS):
        if elapsed * 100 <= bound * target:
            return i
    return len(SHARE_BINS)


def group_name(group_by: str, issue: Issue, sla: IssueSla) -> str:
    """The group an issue falls in."""
    if group_by == "level":
        return sla.level
    if group_by == "month":
        return month_of(issue.created_at)
    value: str | None = getattr(issue, group_by)
    return value if value else NO_VALUE


def policy_metrics(policy: Policy) -> tuple[str, ...]:
    """The metrics some level of the policy (in some revision) sets a target for."""
    levels = [*policy.levels.values(), *(lv for r in policy.revisions for lv in r.levels.values())]
    return tuple(m for m in (*METRICS, *policy.custom) if any(m in lv.targets for lv in levels))


# -- the accumulators ------------------------------------------------------------------


class _MetricAcc:
    __slots__ = ("breached", "breached_cycles", "cycles", "decided_cycles", "elapsed", "met", "not_started",
                 "paused", "running")

    def __init__(self) -> None:
        self.met = self.breached = self.running = self.paused = self.not_started = 0
        self.cycles: int | None = None
        self.breached_cycles = self.decided_cycles = 0
        self.elapsed: Counter[int] = Counter()  # exact elapsed seconds of stopped metrics

    def add(self, m: SlaState) -> None:
        if m.cycles is not None:  # a custom metric: count its cycles (an open one not breached is undecided)
            self.cycles = (self.cycles or 0) + m.cycles
            self.breached_cycles += m.breached_cycles or 0
            self.decided_cycles += m.cycles - (m.state in (State.RUNNING, State.PAUSED))
        if m.state is State.NOT_STARTED:  # its clock never started: no state to count
            self.not_started += 1
            return
        if m.state is State.MET:
            self.met += 1
        elif m.state is State.BREACHED:
            self.breached += 1
        elif m.state is State.RUNNING:
            self.running += 1
        else:
            self.paused += 1
        if m.stopped_at is not None:
            self.elapsed[m.elapsed_s] += 1

    def result(self) -> MetricStats:
        decided = self.met + self.breached
        return MetricStats(
            met=self.met,
            breached=self.breached,
            running=self.running,
            paused=self.paused,
            compliance=self.met / decided if decided else None,
            median_elapsed_s=nearest_rank(self.elapsed, 50),
            p90_elapsed_s=nearest_rank(self.elapsed, 90),
            not_started=self.not_started,
            cycles=self.cycles,
            breached_cycles=self.breached_cycles,
            cycle_compliance=((self.decided_cycles - self.breached_cycles) / self.decided_cycles
                              if self.decided_cycles else None),
        )


class _GroupAcc:
    __slots__ = ("at_risk", "csat_n", "csat_sum", "metrics", "opened", "solved")

    def __init__(self, metrics: Iterable[str]) -> None:
        self.opened = self.solved = self.at_risk = self.csat_n = 0
        self.csat_sum = 0.0
        self.metrics = {m: _MetricAcc() for m in metrics}

    def add(self, sla: IssueSla, solved: bool, score: float | None) -> None:
        self.opened += 1
        if solved:
            self.solved += 1
            if score is not None:
                self.csat_n += 1
                self.csat_sum += score
        for name, m in sla.metrics.items():
            acc = self.metrics.get(name)
            if acc is None:  # a metric of a level the policy no longer lists (cannot happen)
                acc = self.metrics[name] = _MetricAcc()  # pragma: no cover
            acc.add(m)
            if m.at_risk:
                self.at_risk += 1

    def result(self) -> GroupStats:
        return GroupStats(
            opened=self.opened,
            solved=self.solved,
            at_risk_open=self.at_risk,
            csat=Csat(self.csat_n, self.csat_sum / self.csat_n if self.csat_n else None),
            metrics={name: acc.result() for name, acc in self.metrics.items()},
        )


class _SeriesAcc:
    def __init__(self, policy: Policy, metrics: tuple[str, ...]) -> None:
        self.levels = tuple(policy.levels)
        self.metrics = metrics
        self.compliance: dict[tuple[str, str], dict[int, list[int]]] = {}
        self.breaches: dict[int, Counter[str]] = {}
        self.csat: dict[int, list[float]] = {}
        self.shares: dict[tuple[str, str], list[int]] = {}
        self.targets: dict[tuple[str, str], set[int]] = {}
        self.at_risk: list[tuple[int, int, AtRisk]] = []  # a max-heap by due (negated)
        self.at_risk_total = 0
        self._seq = itertools.count()

    def add(self, issue: Issue, sla: IssueSla, solved: bool, score: float | None) -> None:
        week = week_of(issue.created_at)
        if solved and score is not None:
            answers = self.csat.setdefault(week, [0, 0.0])
            answers[0] += 1
            answers[1] += score
        for name, m in sla.metrics.items():
            self.targets.setdefault((name, sla.level), set()).add(m.target_s)
            if m.state in (State.MET, State.BREACHED):
                cell = self.compliance.setdefault((sla.level, name), {}).setdefault(week, [0, 0])
                cell[0 if m.state is State.MET else 1] += 1
            if m.breached_at is not None:
                self.breaches.setdefault(week_of(m.breached_at), Counter())[name] += 1
            if m.stopped_at is not None:
                bins = self.shares.setdefault((name, sla.level), [0] * (len(SHARE_BINS) + 1))
                bins[share_bin(m.elapsed_s, m.target_s)] += 1
            if m.at_risk:
                self._risk(issue, sla, name, m)

    def _risk(self, issue: Issue, sla: IssueSla, name: str, m: SlaState) -> None:
        self.at_risk_total += 1
        item = AtRisk(issue.key, issue.title, sla.level, name, m.elapsed_s, m.target_s, m.due_at)
        due = m.due_at if m.due_at is not None else 2**62
        entry = (-due, -next(self._seq), item)
        if len(self.at_risk) < AT_RISK_LIMIT:
            heapq.heappush(self.at_risk, entry)
        elif entry > self.at_risk[0]:
            heapq.heapreplace(self.at_risk, entry)

    def result(self) -> Series:
        return Series(
            levels=self.levels,
            metrics=self.metrics,
            compliance={k: {w: (c[0], c[1]) for w, c in sorted(v.items())} for k, v in self.compliance.items()},
            breaches={w: dict(c) for w, c in sorted(self.breaches.items())},
            csat={w: (int(a[0]), a[1]) for w, a in sorted(self.csat.items())},
            shares={k: tuple(v) for k, v in self.shares.items()},
            targets={k: tuple(sorted(v)) for k, v in self.targets.items()},
            at_risk=tuple(e[2] for e in sorted(self.at_risk, reverse=True)),
            at_risk_total=self.at_risk_total,
        )


class ReportBuilder:
    """Fold evaluated issues, one at a time, into a ``Report``.

    ``series=True`` also collects what the HTML report draws.
    """

    def __init__(self, policy: Policy, group_by: str, period: Period, now: int, *, series: bool = False) -> None:
        if group_by not in GROUP_BY:
            raise ValueError(f"group_by {group_by!r}: use one of {', '.join(GROUP_BY)}")
        self.policy = policy
        self.group_by = group_by
        self.period = period
        self.now = now
        self.metrics = policy_metrics(policy)
        self._groups: dict[str, _GroupAcc] = {}
        self._total = _GroupAcc(self.metrics)
        self._unmapped: Counter[str] = Counter()
        self._csat_field = policy.csat.field_name
        self._csat_values = policy.csat.values
        self._series = _SeriesAcc(policy, self.metrics) if series else None

    def add(self, issue: Issue, sla: IssueSla) -> bool:
        """Count an issue evaluated at ``now``; ``False`` when it is outside the period."""
        if not self.period.holds(issue.created_at):
            return False
        solved = self._solved(issue, sla)
        score = None
        if solved and self._csat_field is not None:
            score, unmapped = csat_score(issue.fields.get(self._csat_field), self._csat_values)
            if unmapped is not None and (unmapped in self._unmapped or len(self._unmapped) < 20):
                self._unmapped[unmapped] += 1
        name = group_name(self.group_by, issue, sla)
        group = self._groups.get(name)
        if group is None:
            group = self._groups[name] = _GroupAcc(self.metrics)
        group.add(sla, solved, score)
        self._total.add(sla, solved, score)
        if self._series is not None:
            self._series.add(issue, sla, solved, score)
        return True

    def _solved(self, issue: Issue, sla: IssueSla) -> bool:
        """The resolution clock is stopped (the status at ``now`` is a resolved one)."""
        resolution = sla.metrics.get("resolution")
        if resolution is not None:
            return resolution.stopped_at is not None
        return build_timeline(issue, self.policy, self.now).status_now in self.policy.resolved

    def result(self) -> Report:
        return Report(
            policy=self.policy.name,
            period=self.period,
            now=self.now,
            group_by=self.group_by,
            groups={name: self._groups[name].result() for name in self._order()},
            total=self._total.result(),
            unmapped_csat=dict(self._unmapped),
            series=self._series.result() if self._series is not None else None,
        )

    def _order(self) -> list[str]:
        """Levels in the policy's order; other groups by name, ``(none)`` last."""
        if self.group_by == "level":
            rank = {name: i for i, name in enumerate(self.policy.levels)}
            return sorted(self._groups, key=lambda n: (rank.get(n, len(rank)), n))
        return sorted(self._groups, key=lambda n: (n == NO_VALUE, n))


# -- output shapes ---------------------------------------------------------------------------


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def group_to_json(group: GroupStats) -> dict[str, Any]:
    """One group of the JSON report (the README documents the shape)."""
    return {
        "opened": group.opened,
        "solved": group.solved,
        "at_risk_open": group.at_risk_open,
        "csat": {"answers": group.csat.answers, "average": _round(group.csat.average, 2)},
        "metrics": {name: _metric_stats_json(m) for name, m in group.metrics.items()},
    }


def _metric_stats_json(m: MetricStats) -> dict[str, Any]:
    out: dict[str, Any] = {
        "met": m.met,
        "breached": m.breached,
        "running": m.running,
        "paused": m.paused,
        "compliance": _round(m.compliance, 4),
        "median_elapsed_s": m.median_elapsed_s,
        "p90_elapsed_s": m.p90_elapsed_s,
    }
    if m.cycles is not None:  # a custom metric (``metrics:``): its cycles too
        out |= {"not_started": m.not_started, "cycles": m.cycles, "breached_cycles": m.breached_cycles,
                "cycle_compliance": _round(m.cycle_compliance, 4)}
    return out


def report_to_json(report: Report) -> dict[str, Any]:
    """``sla-sync report --format json``: the contract scripts and dashboards read."""
    return {
        "period": {"since": iso_utc(report.period.since), "until": iso_utc(report.period.until)},
        "now": iso_utc(report.now),
        "groups": {name: group_to_json(g) for name, g in report.groups.items()},
        "total": group_to_json(report.total),
    }


CSV_HEADER = (
    "group", "metric", "opened", "solved", "at_risk_open", "csat_answers", "csat_average",
    "met", "breached", "running", "paused", "compliance", "median_elapsed_s", "p90_elapsed_s",
)


def report_to_rows(report: Report) -> list[list[str]]:
    """``--format csv``: a header, then one row per group and metric, the total last
    (group ``(total)``).  Empty cells stand for null."""

    def cell(value: object) -> str:
        return "" if value is None else str(value)

    rows = [list(CSV_HEADER)]
    for name, g in [*report.groups.items(), (TOTAL, report.total)]:
        for metric, m in g.metrics.items():
            rows.append([cell(v) for v in (
                name, metric, g.opened, g.solved, g.at_risk_open, g.csat.answers, _round(g.csat.average, 2),
                m.met, m.breached, m.running, m.paused, _round(m.compliance, 4), m.median_elapsed_s, m.p90_elapsed_s,
            )])
    return rows
