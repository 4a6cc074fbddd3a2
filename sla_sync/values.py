"""Value parsers of the policy file and the command line: durations, intervals,
shares and instants.  Pure functions of their text; each raises ``ValueError``
with a message that says how to write the value.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

from .calendar import Interval

_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_INTERVAL = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")
_PERCENT = re.compile(r"^(\d{1,3}(?:\.\d+)?)\s*%$")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


MAX_DURATION_HOURS = 100_000  # over eleven years of 24x7: no agreement needs more


def parse_duration(text: str) -> int:
    """``30m``, ``4h``, ``1h30m``, ``90s`` → seconds (positive, at most
    ``MAX_DURATION_HOURS``)."""
    m = _DURATION.match(str(text).strip())
    if not m or not any(m.groups()):
        raise ValueError(f"{text!r} is not a duration: write it like 30m, 4h or 1h30m")
    if any(g and len(g.lstrip("0")) > 12 for g in m.groups()):  # too long for int() to be sensible
        total = MAX_DURATION_HOURS * 3600 + 1
    else:
        h, mi, s = (int(g) if g else 0 for g in m.groups())
        total = h * 3600 + mi * 60 + s
    if total <= 0:
        raise ValueError(f"{text!r}: a target must be longer than zero")
    if total > MAX_DURATION_HOURS * 3600:
        shown = text if len(str(text)) <= 40 else f"{str(text)[:20]}...{str(text)[-8:]}"
        raise ValueError(f"{shown!r} is longer than {MAX_DURATION_HOURS}h, the longest duration sla-sync accepts")
    return total


def format_duration(seconds: int) -> str:
    """Seconds → ``1h30m`` (the inverse of ``parse_duration`` for whole minutes)."""
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    parts = [f"{h}h" if h else "", f"{m}m" if m else "", f"{s}s" if s else ""]
    return sign + ("".join(parts) or "0m")


def parse_interval(text: str) -> Interval:
    """``09:00-13:00`` → local seconds since midnight; ``24:00`` ends a day."""
    m = _INTERVAL.match(str(text).strip())
    if not m:
        raise ValueError(f"{text!r} is not an interval: write it like \"09:00-13:00\"")
    h1, m1, h2, m2 = (int(g) for g in m.groups())
    if m1 > 59 or m2 > 59 or h1 > 23 or h2 > 24 or (h2 == 24 and m2):
        raise ValueError(f"{text!r}: hours go from 00:00 to 24:00")
    start, end = h1 * 3600 + m1 * 60, h2 * 3600 + m2 * 60
    if end <= start:
        raise ValueError(f"{text!r}: the end must come after the start")
    return start, end


def parse_percent(text: str) -> float:
    """``75%`` → 75.0 (more than 0, at most 100)."""
    m = _PERCENT.match(str(text).strip())
    if not m:
        raise ValueError(f"{text!r} is not a share: write it like 75%")
    value = float(m.group(1))
    if not 0 < value <= 100:
        raise ValueError(f"{text!r}: a share lies between 0% and 100%")
    return value



class NoTimezoneError(ValueError):
    """An instant written without a timezone."""


def parse_instant(text: str) -> int:
    """A date (00:00 UTC that day) or an instant with a timezone → epoch seconds.

    ``effective_from``, ``--since`` and ``--until`` all read this way."""
    value = str(text).strip()
    try:
        if len(value) == 10:
            return int(datetime.combine(date.fromisoformat(value), datetime.min.time(), UTC).timestamp())
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"{text!r} is not a date or an instant: write it like 2027-01-01 or 2027-01-01T00:00:00+01:00"
        ) from None
    if moment.tzinfo is None:
        raise NoTimezoneError(f"{text!r} has no timezone: add Z or an offset like +01:00, or write a date")
    return int(moment.timestamp() // 1)
