"""Policy review: the same issues under two policies (``sla-sync compare OLD NEW``).

Pure and streaming: ``CompareBuilder.add(issue, old_sla, new_sla)`` takes one issue
evaluated under each policy.  Per level and metric it counts met and breached under
each policy (an issue counts under the level each policy gives it), and it lists the
outcome flips: a metric breached under one policy and not under the other (met and
breached swapping places, or a running clock that a tighter target breaches).
Only the flips are kept per issue; everything else is a counter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .calendar import iso_utc
from .model import METRICS, Issue, IssueSla, SlaState, State
from .report import Period


@dataclass(frozen=True, slots=True)
class Side:
    """Met and breached counts of one level and metric under one policy."""

    met: int
    breached: int

    @property
    def compliance(self) -> float | None:
        decided = self.met + self.breached
        return self.met / decided if decided else None


@dataclass(frozen=True, slots=True)
class Row:
    """One level and metric, under the old and the new policy."""

    level: str
    metric: str
    old: Side
    new: Side

    @property
    def compliance_change(self) -> float | None:
        """New minus old compliance (a share: 0.05 is five percentage points)."""
        if self.old.compliance is None or self.new.compliance is None:
            return None
        return self.new.compliance - self.old.compliance

    @property
    def breached_change(self) -> int:
        return self.new.breached - self.old.breached


@dataclass(frozen=True, slots=True)
class Flip:
    """A metric of one issue that is breached under one policy only."""

    key: str
    metric: str
    old_level: str
    new_level: str
    old_state: str
    new_state: str
    old_elapsed_s: int
    new_elapsed_s: int
    old_target_s: int
    new_target_s: int


@dataclass(frozen=True)
class Comparison:
    """The result of ``sla-sync compare``."""

    old_policy: str
    new_policy: str
    period: Period
    now: int
    issues: int
    rows: tuple[Row, ...]
    flips: tuple[Flip, ...]


class CompareBuilder:
    """Fold issues evaluated under both policies into a ``Comparison``."""

    def __init__(self, old_name: str, new_name: str, levels: list[str], period: Period, now: int) -> None:
        self.old_name, self.new_name = old_name, new_name
        self.period, self.now = period, now
        self._order = {name: i for i, name in enumerate(levels)}
        # (level, metric) → old met, old breached, new met, new breached
        self._counts: dict[tuple[str, str], list[int]] = {}
        self._flips: list[Flip] = []
        self._issues = 0

    def add(self, issue: Issue, old: IssueSla, new: IssueSla) -> bool:
        """Count one issue; ``False`` when it was created outside the period."""
        if not self.period.holds(issue.created_at):
            return False
        self._issues += 1
        self._count(old, 0)
        self._count(new, 2)
        for metric, before in old.metrics.items():
            after = new.metrics.get(metric)
            if after is not None and (before.state is State.BREACHED) != (after.state is State.BREACHED):
                self._flips.append(_flip(issue.key, metric, old.level, new.level, before, after))
        return True

    def _count(self, sla: IssueSla, offset: int) -> None:
        for metric, m in sla.metrics.items():
            cell = self._counts.setdefault((sla.level, metric), [0, 0, 0, 0])
            if m.state is State.MET:
                cell[offset] += 1
            elif m.state is State.BREACHED:
                cell[offset + 1] += 1

    def result(self) -> Comparison:
        def rank(k: tuple[str, str]) -> tuple[int, str, int, str]:  # built-in metrics first, then custom ones
            built_in = METRICS.index(k[1]) if k[1] in METRICS else len(METRICS)
            return (self._order.get(k[0], len(self._order)), k[0], built_in, k[1])

        rows = tuple(
            Row(level, metric, Side(c[0], c[1]), Side(c[2], c[3]))
            for (level, metric), c in sorted(self._counts.items(), key=lambda kv: rank(kv[0]))
        )
        return Comparison(self.old_name, self.new_name, self.period, self.now, self._issues, rows, tuple(self._flips))


def _flip(key: str, metric: str, old_level: str, new_level: str, before: SlaState, after: SlaState) -> Flip:
    return Flip(
        key, metric, old_level, new_level, before.state.value, after.state.value,
        before.elapsed_s, after.elapsed_s, before.target_s, after.target_s,
    )


def _share(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def comparison_to_json(c: Comparison) -> dict[str, Any]:
    """``sla-sync compare --format json``."""
    return {
        "old": c.old_policy,
        "new": c.new_policy,
        "period": {"since": iso_utc(c.period.since), "until": iso_utc(c.period.until)},
        "now": iso_utc(c.now),
        "issues": c.issues,
        "levels": [
            {
                "level": r.level, "metric": r.metric,
                "old": {"met": r.old.met, "breached": r.old.breached, "compliance": _share(r.old.compliance)},
                "new": {"met": r.new.met, "breached": r.new.breached, "compliance": _share(r.new.compliance)},
                "compliance_change": _share(r.compliance_change),
                "breached_change": r.breached_change,
            }
            for r in c.rows
        ],
        "flips": [
            {"key": f.key, "metric": f.metric,
             "old": {"level": f.old_level, "state": f.old_state,
                     "elapsed_s": f.old_elapsed_s, "target_s": f.old_target_s},
             "new": {"level": f.new_level, "state": f.new_state,
                     "elapsed_s": f.new_elapsed_s, "target_s": f.new_target_s}}
            for f in c.flips
        ],
    }
