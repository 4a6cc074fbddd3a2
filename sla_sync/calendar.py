"""Business calendars: working time between two instants, and its inverse.

Working time is the set of instants whose local wall-clock time, in the calendar's
IANA timezone, falls inside a working interval of that local date's weekday, on a
local date that is not a holiday.  DST follows from the definition: a wall-clock
interval that a spring-forward gap cuts short is shorter, one that a fall-back
overlap repeats is longer.

The calendar works per local day and caches each day's working intervals, already
converted to UTC, together with a running total, and the same intervals flat across
the days.  Both operations are then a binary search, whatever the span: months cost
the same as minutes once the days are cached.  The running totals have one origin
for the calendar's life, so the clocks read all those of an issue at once
(``running_totals``) and turn a total back into an instant (``instant_at``).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

DAY = 86_400
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
# How far ahead ``add_working_seconds`` looks for the working time it needs; past it
# the target is out of reach (a calendar with almost no working time, or a target of
# years) and it says so.
_MAX_SCAN_DAYS = 3_660

Interval = tuple[int, int]
HolidayTest = Callable[[date], bool]


class NoWorkingTimeError(ValueError):
    """The calendar has no working time in reach of the requested instant."""


class Calendar:
    """A weekly business calendar in one timezone, with holidays.

    ``week[d]`` lists the working intervals of weekday ``d`` (Monday is 0) as local
    seconds since midnight, ``0 <= start < end <= 86400``, sorted and disjoint.
    ``is_holiday`` tells whether a local date is a holiday (no working time).
    """

    def __init__(
        self,
        tz: ZoneInfo,
        week: Sequence[Sequence[Interval]],
        is_holiday: HolidayTest | None = None,
    ) -> None:
        if len(week) != 7:
            raise ValueError("a week has seven days")
        self.tz = tz
        self._week = tuple(tuple(day) for day in week)
        self._is_holiday = is_holiday or (lambda _d: False)
        self._base = 0  # ordinal of the first cached day
        self._starts: list[int] = []  # UTC start of each cached local day, plus one
        self._cum: list[int] = []  # the running total at each start (see below for its origin)
        self._ivals: list[tuple[Interval, ...]] = []  # working intervals per day
        # The same intervals flat, across the cached days: each start and end in order,
        # with the working seconds before it (on ``_cum``'s origin): a running total is
        # then one binary search, whatever the day holds.  The origin is the start of the
        # first day ever cached and never moves (days added before it count below zero),
        # so a running total once read stays true.
        self._edges: list[int] = []
        self._edge_totals: list[int] = []
        self._last_ordinal: tuple[int | None, int] = (None, 0)  # (instant, its local day): ``now`` recurs

    # -- the two operations -------------------------------------------------

    def working_seconds(self, start: int, end: int) -> int:
        """Working seconds in ``[start, end)``; zero when ``end <= start``."""
        if end <= start:
            return 0
        self._ensure(start)
        self._ensure(end)
        return self._cumulative(end) - self._cumulative(start)

    def running_totals(self, instants: Sequence[int]) -> list[int]:
        """The working seconds up to each instant, counted from an origin fixed for
        the calendar's life: the working time of ``[a, b)`` is ``total(b) - total(a)``
        (``b >= a``), whatever was asked in between.  One call for all the instants
        of an issue, instead of one ``working_seconds`` per span; ``instant_at`` is
        the inverse."""
        if not self._starts:
            self._ensure(instants[0])
        lo, hi = self._starts[0], self._starts[-1]
        edges, totals, first = self._edges, self._edge_totals, self._cum[0]
        out = []
        for t in instants:  # as ``_cumulative``
            if t < lo or t >= hi:  # beyond the cache: grow it (the totals read so far stay true)
                self._ensure(t)
                lo, hi = self._starts[0], self._starts[-1]
                edges, totals, first = self._edges, self._edge_totals, self._cum[0]
            j = bisect_right(edges, t)
            out.append(first if j == 0 else totals[j - 1] + (t - edges[j - 1] if j & 1 else 0))
        return out

    def instant_at(self, total: int) -> int:
        """The earliest instant at which the running total (``running_totals``)
        reaches ``total``, a total between two already read (the cache holds it)."""
        j = bisect_left(self._edge_totals, total)  # the end of the interval it is reached in
        if not j & 1:
            raise AssertionError("running totals out of step with intervals")  # pragma: no cover
        return self._edges[j - 1] + (total - self._edge_totals[j - 1])

    def add_working_seconds(self, start: int, seconds: int, until: int | None = None) -> int:
        """The earliest instant by which ``seconds`` working seconds have passed since ``start``.

        It looks ten years ahead (``NoWorkingTimeError`` past that), or up to
        ``until`` when the caller knows that ``[start, until)`` holds enough."""
        if seconds <= 0:
            return start
        self._ensure(start)
        if until is not None:
            self._ensure(until)
            target = self._cumulative(start) + seconds
            if target <= self._cumulative(until):  # within what the cache holds: no horizon to mind
                return self.instant_at(target)
        target = self._cumulative(start) + seconds
        # The horizon counts from ``start``'s day, whatever the cache holds: the
        # answer never depends on earlier calls, and unanswerable calls never grow
        # the cache past it.
        horizon = self._ordinal(start) + _MAX_SCAN_DAYS
        if until is not None:
            horizon = max(horizon, self._ordinal(until))
        while self._cum[-1] < target and self._base + len(self._ivals) <= horizon:
            self._extend_forward(min(self._base + len(self._ivals) + 31, horizon))
        if self._cum[-1] < target or self._base + bisect_left(self._cum, target) - 1 > horizon:
            raise NoWorkingTimeError("the target lies beyond the working time of the next ten years")
        return self.instant_at(target)

    def working_intervals(self, start: int, end: int) -> Iterator[Interval]:
        """The working intervals inside ``[start, end)``, in order, clipped to it."""
        if end <= start:
            return
        self._ensure(start)
        self._ensure(end)
        i = bisect_right(self._starts, start) - 1
        while i < len(self._ivals) and self._starts[i] < end:
            for a, b in self._ivals[i]:
                lo, hi = max(a, start), min(b, end)
                if lo < hi:
                    yield lo, hi
            i += 1

    def local_date(self, instant: int) -> date:
        """The local date of an instant in the calendar's timezone."""
        return datetime.fromtimestamp(instant, self.tz).date()

    def is_holiday(self, day: date) -> bool:
        """Whether a local date is one of the calendar's holidays (it has no working time)."""
        return self._is_holiday(day)

    # -- the cache ------------------------------------------------------------

    def _ensure(self, t: int) -> None:
        """Cache the days around ``t``."""
        if not self._starts:
            self._start_cache(self._ordinal(t))
        if t < self._starts[0]:
            self._extend_back(self._ordinal(t) - 31)
        while t >= self._starts[-1]:
            self._extend_forward(max(self._ordinal(t), self._base + len(self._ivals)) + 31)

    def _cumulative(self, t: int) -> int:
        """The running total at ``t`` (which ``_ensure`` has cached)."""
        j = bisect_right(self._edges, t)  # odd: inside an interval; even: after one ends
        if j == 0:
            return self._cum[0]
        return self._edge_totals[j - 1] + (t - self._edges[j - 1] if j & 1 else 0)

    def _ordinal(self, t: int) -> int:
        last, ordinal = self._last_ordinal
        if t != last:
            ordinal = datetime.fromtimestamp(t, self.tz).toordinal()
            self._last_ordinal = (t, ordinal)
        return ordinal

    def _start_cache(self, ordinal: int) -> None:
        self._base = ordinal - 31
        self._starts = [self._day_start(self._base)]
        self._cum = [0]
        self._ivals = []
        self._edges, self._edge_totals = [], []
        self._extend_forward(ordinal + 31)

    def _extend_forward(self, until: int) -> None:
        """Cache days up to and including ordinal ``until``."""
        o = self._base + len(self._ivals)
        while o <= until:
            ivals = self._day_intervals(o)
            self._ivals.append(ivals)
            self._add_edges(ivals, self._cum[-1])
            self._cum.append(self._cum[-1] + sum(b - a for a, b in ivals))
            self._starts.append(self._day_start(o + 1))
            o += 1

    def _extend_back(self, since: int) -> None:
        """Cache days from ordinal ``since`` on, before the current first day."""
        days = [self._day_intervals(o) for o in range(since, self._base)]
        totals = [sum(b - a for a, b in ivals) for ivals in days]
        cum = [self._cum[0] - sum(totals)]  # the origin stays where it is: these days count below it
        for total in totals[:-1]:
            cum.append(cum[-1] + total)
        edges, edge_totals = self._edges, self._edge_totals
        self._edges, self._edge_totals = [], []
        for ivals, before in zip(days, cum, strict=True):
            self._add_edges(ivals, before)
        self._edges += edges
        self._edge_totals += edge_totals
        self._cum = cum + self._cum
        self._starts = [self._day_start(o) for o in range(since, self._base)] + self._starts
        self._ivals = days + self._ivals
        self._base = since

    def _add_edges(self, ivals: tuple[Interval, ...], before: int) -> None:
        """Append one day's intervals to the flat index; ``before`` is the running
        total at the day's start."""
        for a, b in ivals:
            self._edges += (a, b)
            self._edge_totals += (before, before + b - a)
            before += b - a

    # -- one local day in UTC -------------------------------------------------

    def _day_intervals(self, ordinal: int) -> tuple[Interval, ...]:
        day = date.fromordinal(ordinal)
        if self._is_holiday(day):
            return ()
        return self._wall_to_utc(ordinal, self._week[day.weekday()])

    def _day_start(self, ordinal: int) -> int:
        """The first instant whose local date is ``ordinal`` (or later)."""
        spans = self._wall_to_utc(ordinal, ((0, DAY),))
        if spans:
            return spans[0][0]
        # The whole day is skipped (a zone that jumped a date line): it starts where
        # the next one does.
        return self._day_start(ordinal + 1)  # pragma: no cover

    def _wall_to_utc(self, ordinal: int, wall: Iterable[Interval]) -> tuple[Interval, ...]:
        """The UTC instants whose local wall time lies in ``wall`` on that date.

        The window around the local day is split where the UTC offset changes; on
        each piece of constant offset the wall clock is a shift of UTC.
        """
        midnight = (ordinal - _EPOCH_ORDINAL) * DAY  # local midnight as naive seconds
        pieces = self._offset_pieces(midnight - 16 * 3600, midnight + DAY + 16 * 3600)
        out: list[Interval] = []
        for lo, hi, off in pieces:
            for s, e in wall:
                a = max(lo, midnight + s - off)
                b = min(hi, midnight + e - off)
                if a < b:
                    out.append((a, b))
        out.sort()
        merged: list[Interval] = []
        for a, b in out:
            if merged and a <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(b, merged[-1][1]))
            else:
                merged.append((a, b))
        return tuple(merged)

    def _offset(self, t: int) -> int:
        off = datetime.fromtimestamp(t, self.tz).utcoffset()
        return int(off.total_seconds()) if off is not None else 0

    def _offset_pieces(self, lo: int, hi: int) -> list[tuple[int, int, int]]:
        """Split ``[lo, hi)`` where the UTC offset changes (at most once or twice)."""
        off_lo, off_hi = self._offset(lo), self._offset(hi - 1)
        if off_lo == off_hi:
            mid = (lo + hi) // 2
            if self._offset(mid) == off_lo:
                return [(lo, hi, off_lo)]
            return self._offset_pieces(lo, mid) + self._offset_pieces(mid, hi)
        a, b = lo, hi - 1  # offset(a) == off_lo != offset(b): bisect to the second
        while b - a > 1:
            m = (a + b) // 2
            if self._offset(m) == off_lo:
                a = m
            else:
                b = m
        return [(lo, b, off_lo), *self._offset_pieces(b, hi)]


class AlwaysCalendar(Calendar):
    """``24x7`` with no holidays: working time is wall time."""

    def __init__(self, tz: ZoneInfo | None = None) -> None:
        super().__init__(tz or ZoneInfo("UTC"), [((0, DAY),)] * 7)

    def working_seconds(self, start: int, end: int) -> int:
        return max(0, end - start)

    def running_totals(self, instants: Sequence[int]) -> list[int]:
        return list(instants)

    def instant_at(self, total: int) -> int:
        return total

    def add_working_seconds(self, start: int, seconds: int, until: int | None = None) -> int:
        return start + max(0, seconds)

    def working_intervals(self, start: int, end: int) -> Iterator[Interval]:
        if start < end:
            yield start, end


def utc_seconds(moment: datetime) -> int:
    """Whole seconds since the epoch of an aware datetime."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: an instant needs a timezone")
    return int(moment.timestamp() // 1)


def utc_datetime(instant: int) -> datetime:
    """The aware UTC datetime of an instant."""
    return datetime.fromtimestamp(instant, UTC)


def iso_utc(instant: int | None) -> str | None:
    """``YYYY-MM-DDTHH:MM:SSZ``, or ``None``."""
    if instant is None:
        return None
    return datetime.fromtimestamp(instant, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def country_holidays(country: str, subdiv: str | None) -> Any:
    """The public holidays of a country (and subdivision), from the ``holidays``
    package; ``NotImplementedError`` for one it does not know."""
    import holidays  # imported on demand: it is slow to import and often unused

    return holidays.country_holidays(country.upper(), subdiv=subdiv)
