"""The neutral issue format (JSON Lines) in and out.

``issue_from_json`` turns one decoded line into an ``Issue``; ``issue_to_json``
does the reverse (``sla-sync export``); ``sla_to_json`` is the shape ``sla-sync
evaluate`` writes (``SlaWriter`` writes it fast).  Bad input raises ``ValueError``
with a message that says which key is wrong and how; callers add the file and line.

``read_issues`` decodes a line by the first of two paths that takes it:

- the typed path (``typed_issue``): one strict msgspec decode of the line into
  ``_Line`` (every key known, every value of the one type the format gives it),
  then the timestamps; it takes the ordinary line and answers ``None`` for
  anything else: an unknown key, a number where a string goes, ``null`` for a
  flag, a bad timestamp, a line that is not JSON;
- the checked path (``checked_issue``): orjson, then ``issue_from_json``, which
  accepts what the format allows (numbers as strings, ``null`` flags, unknown keys)
  and explains what is wrong.

Whatever the typed path accepts, the checked path decodes to the same ``Issue``
(``tests/test_fast_path.py`` checks it on random and mutated lines), so which path
a line took never shows, errors included.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from types import TracebackType
from typing import IO, Any

import msgspec
import orjson

from .calendar import DAY, iso_utc
from .model import Event, Issue, IssueSla, SlaState, State

EVENT_KINDS = ("comment", "status", "label", "field")
EARLIEST, LATEST = 0, 7_258_118_400  # 1970-01-01 and 2200-01-01, UTC


def parse_timestamp(value: Any, key: str) -> int:
    """An ISO 8601 instant with a timezone → epoch seconds."""
    if not isinstance(value, str):
        raise ValueError(f"{key}: expected an ISO 8601 timestamp string, got {_kind(value)}")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{key}: {value!r} is not an ISO 8601 timestamp (e.g. 2026-11-02T10:00:00Z)") from None
    if moment.tzinfo is None:
        raise ValueError(f"{key}: {value!r} has no timezone: add Z or an offset like +01:00")
    instant = int(moment.timestamp() // 1)
    if not EARLIEST <= instant < LATEST:
        raise ValueError(f"{key}: {value!r} is out of range: sla-sync handles instants from 1970 to 2199")
    return instant


# The dates ("YYYY-MM-DD") and the times of day ("THH:MM:SSZ") of the instants read so
# far in the form ``iso_utc`` writes: such an instant is the sum of its date's midnight
# and its time of day, two look-ups.  At most 84 000 dates and 86 400 times.
_MIDNIGHTS: dict[str, int] = {}
_TIMES_OF_DAY: dict[str, int] = {}


def _instant(value: str) -> int | None:
    """``parse_timestamp`` for the fast paths: ``None`` where it would raise."""
    midnight = _MIDNIGHTS.get(value[:10])
    if midnight is not None:
        time_of_day = _TIMES_OF_DAY.get(value[10:])
        if time_of_day is not None:  # both parts were read in this very form: the rest is exactly THH:MM:SSZ
            return midnight + time_of_day
    try:
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:
            return None
        instant = int(moment.timestamp() // 1)
    except (ValueError, OverflowError):
        return None
    if not EARLIEST <= instant < LATEST:
        return None
    if (len(value) == 20 and value[4] == value[7] == "-" and value[10] == "T" and value[13] == value[16] == ":"
            and value[19] == "Z"):
        time_of_day = int(value[11:13]) * 3600 + int(value[14:16]) * 60 + int(value[17:19])
        if time_of_day == instant % DAY:  # not a 24:00:00 that a newer Python reads as the next midnight
            _MIDNIGHTS[value[:10]] = instant - time_of_day
            _TIMES_OF_DAY[value[10:]] = time_of_day
    return instant


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _opt_str(obj: dict[str, Any], key: str, where: str) -> str | None:
    value = obj.get(key)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise ValueError(f"{where}{key}: expected a string, got {_kind(value)}")


def _flag(obj: dict[str, Any], key: str, where: str) -> bool:
    """A boolean (missing or null is false); ``"false"`` is text, which would
    otherwise count as true."""
    value = obj.get(key)
    if value is None or isinstance(value, bool):
        return bool(value)
    raise ValueError(f"{where}{key}: expected true or false, got {_kind(value)} {value!r:.40}")


def _names(obj: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = obj.get(key)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{where}{key}: expected a list of strings")
    return tuple(value)


def _event(raw: Any, i: int) -> Event:
    event = _plain_event(raw, i)
    flag = raw.get("by_self", False) if isinstance(raw, dict) else False
    if flag is False:
        return event
    if flag is not True:
        raise ValueError(f"events[{i}].by_self: expected true or false, got {_kind(flag)}")
    return msgspec.structs.replace(event, by_self=True)


def _plain_event(raw: Any, i: int) -> Event:
    fast = _fast_event(raw)
    if fast is not None:
        return fast
    where = f"events[{i}]."
    if not isinstance(raw, dict):
        raise ValueError(f"events[{i}]: expected an object, got {_kind(raw)}")
    kind = raw.get("kind")
    if kind not in EVENT_KINDS:
        raise ValueError(f"{where}kind: {kind!r} is not one of {', '.join(EVENT_KINDS)}")
    at = parse_timestamp(raw.get("at"), f"{where}at")
    if kind == "comment":
        return Event(
            at, kind, public=_flag(raw, "public", where), by_agent=_flag(raw, "by_agent", where),
            author=_opt_str(raw, "by", where),
        )
    if kind == "label":
        return Event(at, kind, added=_names(raw, "added", where), removed=_names(raw, "removed", where),
                     author=_opt_str(raw, "by", where))
    return Event(
        at, kind, from_=_opt_str(raw, "from", where), to=_opt_str(raw, "to", where),
        field=_opt_str(raw, "field", where) if kind == "field" else "status",
        author=_opt_str(raw, "by", where),
    )


def _fast_event(raw: Any) -> Event | None:
    """The common, well-formed event without the checks' overhead; ``None`` sends
    anything unusual through the checked path (which explains what is wrong)."""
    try:
        at = _instant(raw["at"])
        if at is None:
            return None
        kind = raw["kind"]
        by = raw.get("by")
        if by is not None and type(by) is not str:
            return None
        if kind == "comment":
            public, agent = raw.get("public", False), raw.get("by_agent", False)
            if type(public) is bool and type(agent) is bool:
                return Event(at, kind, public=public, by_agent=agent, author=by)
        elif kind == "status":
            old, new = raw.get("from"), raw.get("to")
            if (old is None or type(old) is str) and (new is None or type(new) is str):
                return Event(at, kind, from_=old, to=new, field="status", author=by)
    except (KeyError, TypeError, ValueError):
        return None
    return None


def issue_from_json(obj: Any) -> Issue:
    """An ``Issue`` from one decoded JSON line; unknown keys are ignored."""
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object per line, got {_kind(obj)}")
    key = obj.get("key")
    if not isinstance(key, (str, int)) or isinstance(key, bool) or key == "":
        raise ValueError("key: every issue needs a key (a string such as SUP-42)")
    status = obj.get("status")
    if not isinstance(status, str):
        raise ValueError(f"status: expected the current status as a string, got {_kind(status)}")
    fields = obj.get("fields") or {}
    if not isinstance(fields, dict):
        raise ValueError("fields: expected an object of custom field values")
    events = obj.get("events") or []
    if not isinstance(events, list):
        raise ValueError("events: expected a list")
    updated = obj.get("updated_at")
    return Issue(
        key=str(key),
        created_at=parse_timestamp(obj.get("created_at"), "created_at"),
        status=status,
        title=_opt_str(obj, "title", "") or "",
        priority=_opt_str(obj, "priority", ""),
        type=_opt_str(obj, "type", ""),
        project=_opt_str(obj, "project", ""),
        labels=_names(obj, "labels", ""),
        assignee=_opt_str(obj, "assignee", ""),
        milestone=_opt_str(obj, "milestone", ""),
        due_date=_opt_str(obj, "due_date", ""),
        updated_at=None if updated is None else parse_timestamp(updated, "updated_at"),
        fields=fields,
        events=tuple(_event(e, i) for i, e in enumerate(events)),
    )


def _event_to_json(e: Event) -> dict[str, Any]:
    out: dict[str, Any] = {"at": iso_utc(e.at), "kind": e.kind}
    if e.kind == "comment":
        out.update(public=e.public, by_agent=e.by_agent)
    elif e.kind == "label":
        out.update(added=list(e.added), removed=list(e.removed))
    else:
        if e.kind == "field":
            out["field"] = e.field
        out.update({"from": e.from_, "to": e.to})
    if e.author is not None:
        out["by"] = e.author
    if e.by_self:
        out["by_self"] = True
    return out


def issue_to_json(issue: Issue) -> dict[str, Any]:
    """The neutral JSON object of an issue (what ``export`` writes)."""
    out: dict[str, Any] = {
        "key": issue.key,
        "title": issue.title,
        "created_at": iso_utc(issue.created_at),
        "status": issue.status,
        "priority": issue.priority,
        "type": issue.type,
        "project": issue.project,
        "labels": list(issue.labels),
        "assignee": issue.assignee,
        "milestone": issue.milestone,
        "fields": issue.fields,
        "events": [_event_to_json(e) for e in issue.events],
    }
    if issue.due_date is not None:
        out["due_date"] = issue.due_date
    if issue.updated_at is not None:
        out["updated_at"] = iso_utc(issue.updated_at)
    return out


def _moment(instant: int | None) -> datetime | None:
    # orjson writes an aware UTC datetime as YYYY-MM-DDTHH:MM:SSZ (OPT_UTC_Z in
    # dump_line) several times faster than strftime.
    return None if instant is None else datetime.fromtimestamp(instant, UTC)


def sla_to_json(sla: IssueSla) -> dict[str, Any]:
    """What ``sla-sync evaluate`` writes for one issue (instants as UTC datetimes,
    which ``dump_line`` writes as ``YYYY-MM-DDTHH:MM:SSZ``)."""
    return {
        "key": sla.key,
        "level": sla.level,
        "metrics": {name: _metric_json(m) for name, m in sla.metrics.items()},
    }


def _metric_json(m: SlaState) -> dict[str, Any]:
    out: dict[str, Any] = {
        "state": m.state.value,
        "at_risk": m.at_risk,
        "target_s": m.target_s,
        "elapsed_s": m.elapsed_s,
        "remaining_s": m.remaining_s,
        "due_at": _moment(m.due_at),
        "breached_at": _moment(m.breached_at),
        "stopped_at": _moment(m.stopped_at),
    }
    if m.cycles is not None:  # a custom metric's (``metrics:``)
        out["cycles"] = m.cycles
        out["breached_cycles"] = m.breached_cycles
    return out


class LineError(ValueError):
    """A bad input line: ``FILE:LINE: message``."""

    def __init__(self, source: str, line: int, message: str) -> None:
        super().__init__(f"{source}:{line}: {message}")
        self.source, self.line, self.message = source, line, message


# -- the typed path: one strict decode of the ordinary line --------------------------


class _LineEvent(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """An event as the typed path takes it: the keys of every kind, each of one type."""

    at: str
    kind: str
    public: bool = False
    by_agent: bool = False
    by: str | None = None
    by_self: bool = False
    from_: str | None = msgspec.field(default=None, name="from")
    to: str | None = None
    field: str | None = None
    added: tuple[str, ...] | None = None
    removed: tuple[str, ...] | None = None


# A custom field's value as the typed path takes it; a nested object takes the checked path.
_FieldValue = str | int | float | bool | None | list[str]
# orjson reads a larger integer as a float: the typed path leaves those to it.
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1


class _Line(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """A line as the typed path takes it.  No key is skipped unread (an unknown key is
    the checked path's), so msgspec validates every byte of the line as orjson does."""

    key: str
    created_at: str
    status: str
    title: str | None = None
    priority: str | None = None
    type: str | None = None
    project: str | None = None
    labels: tuple[str, ...] | None = None
    assignee: str | None = None
    milestone: str | None = None
    due_date: str | None = None
    updated_at: str | None = None
    fields: dict[str, _FieldValue] | None = None
    events: list[_LineEvent] | None = None
    # Read by nothing, but written by the synthetic issues of examples/ and bench/
    # (who opened the issue): a string here keeps those lines on the typed path.
    author: str | None = None


_LINE = msgspec.json.Decoder(_Line)


def typed_issue(raw: bytes) -> Issue | None:
    """The ``Issue`` of an ordinary line, or ``None``: the checked path then decodes
    the line (or explains what is wrong with it) exactly as it would have."""
    try:
        line = _LINE.decode(raw)
    except msgspec.DecodeError:  # not JSON, or not the ordinary shape (ValidationError)
        return None
    created = _instant(line.created_at)
    if created is None or not line.key:
        return None
    updated = None
    if line.updated_at is not None and (updated := _instant(line.updated_at)) is None:
        return None
    fields = line.fields
    if fields is None:
        fields = {}
    elif fields and any(type(v) is int and not _INT_MIN <= v <= _INT_MAX for v in fields.values()):
        return None
    events = _typed_events(line.events) if line.events else ()
    if events is None:
        return None
    return Issue(line.key, created, line.status, line.title or "", line.priority, line.type, line.project,
                 line.labels or (), line.assignee, line.milestone, line.due_date, updated, fields, events)


def _typed_events(raw: list[_LineEvent]) -> tuple[Event, ...] | None:
    """The events as ``_event`` reads them (each kind its own keys), or ``None``."""
    out = []
    midnights, times_of_day = _MIDNIGHTS, _TIMES_OF_DAY
    for e in raw:
        text, at = e.at, None
        midnight = midnights.get(text[:10])  # ``_instant``'s look-ups, inline: they run for every event
        if midnight is not None:
            time_of_day = times_of_day.get(text[10:])
            if time_of_day is not None:
                at = midnight + time_of_day
        if at is None and (at := _instant(text)) is None:
            return None
        kind = e.kind
        if kind == "comment":
            out.append(Event(at, kind, e.public, e.by_agent, e.by, e.by_self))
        elif kind == "status":
            out.append(Event(at, kind, False, False, e.by, e.by_self, e.from_, e.to, "status"))
        elif kind == "label":
            out.append(Event(at, kind, False, False, e.by, e.by_self, None, None, None, e.added or (), e.removed or ()))
        elif kind == "field":
            out.append(Event(at, kind, False, False, e.by, e.by_self, e.from_, e.to, e.field))
        else:
            return None
    return tuple(out)


def checked_issue(raw: bytes, source: str, number: int) -> Issue | LineError:
    """The checked path: any line the format allows, and a message for any other."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return LineError(source, number, f"not valid JSON: {exc}")
    try:
        return issue_from_json(obj)
    except ValueError as exc:
        key = obj.get("key") if isinstance(obj, dict) else None
        prefix = f"issue {key}: " if isinstance(key, (str, int)) and key != "" else ""
        return LineError(source, number, prefix + str(exc))


def read_issues(stream: IO[bytes], source: str) -> Iterator[tuple[int, Issue | LineError]]:
    """Decode a JSON Lines stream lazily: ``(line number, Issue or LineError)``.

    Blank lines are skipped.  The caller decides whether a bad line stops the run.
    """
    for number, raw in enumerate(stream, start=1):
        issue = typed_issue(raw)
        if issue is not None:
            yield number, issue
        elif raw.strip():
            yield number, checked_issue(raw, source, number)


# -- evaluate's output ------------------------------------------------------------------


class _MetricOut(msgspec.Struct, gc=False):
    """A metric as ``sla_to_json`` has it, in its key order (msgspec writes an enum's value)."""

    state: State
    at_risk: bool
    target_s: int
    elapsed_s: int
    remaining_s: int
    due_at: str | None
    breached_at: str | None
    stopped_at: str | None


class _CustomOut(_MetricOut, gc=False):
    """A custom metric's (``metrics:``): a built-in one's keys, then its cycles."""

    cycles: int
    breached_cycles: int


class _SlaOut(msgspec.Struct, gc=False):
    key: str
    level: str
    metrics: dict[str, _MetricOut | _CustomOut]


# The texts of the dates and of the times of day written so far, by day and by second
# of the day: an instant's ISO text (as ``iso_utc`` and orjson write it) is two look-ups.
_DAY_TEXTS: dict[int, str] = {}
_TIME_TEXTS: dict[int, str] = {}


def _iso(instant: int) -> str:
    day, second = divmod(instant, DAY)
    date_text = _DAY_TEXTS.get(day)
    if date_text is None:
        date_text = _DAY_TEXTS[day] = datetime.fromtimestamp(day * DAY, UTC).date().isoformat()
    time_text = _TIME_TEXTS.get(second)
    if time_text is None:
        hours, rest = divmod(second, 3600)
        time_text = _TIME_TEXTS[second] = f"T{hours:02d}:{rest // 60:02d}:{rest % 60:02d}Z"
    return date_text + time_text


class SlaWriter:
    """``sla-sync evaluate``'s lines, byte for byte ``dump_line(sla_to_json(sla))``
    (msgspec writes strings and UTC instants as orjson does), encoded into a buffer
    that is written in blocks; leaving the ``with`` block writes the rest."""

    BLOCK = 1 << 16

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self._buffer = bytearray()
        self._encode_into = msgspec.json.Encoder().encode_into

    def write(self, sla: IssueSla) -> None:
        """Add one issue's line."""
        metrics: dict[str, _MetricOut | _CustomOut] = {}
        for name, m in sla.metrics.items():
            due = None if m.due_at is None else _iso(m.due_at)
            breached = due  # a breach's due instant is its breach instant
            if m.breached_at != m.due_at:
                breached = None if m.breached_at is None else _iso(m.breached_at)
            stopped = None if m.stopped_at is None else _iso(m.stopped_at)
            if m.cycles is None:
                metrics[name] = _MetricOut(m.state, m.at_risk, m.target_s, m.elapsed_s, m.remaining_s, due, breached,
                                           stopped)
            else:
                metrics[name] = _CustomOut(m.state, m.at_risk, m.target_s, m.elapsed_s, m.remaining_s, due, breached,
                                           stopped, m.cycles, m.breached_cycles or 0)
        buffer = self._buffer
        self._encode_into(_SlaOut(sla.key, sla.level, metrics), buffer, -1)
        buffer.append(10)  # b"\n"
        if len(buffer) >= self.BLOCK:
            self.flush()

    def flush(self) -> None:
        """Write what the buffer holds."""
        if self._buffer:
            self._stream.write(self._buffer)
            self._buffer.clear()

    def __enter__(self) -> SlaWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.flush()  # also on an error: the lines before a bad one are written, as line by line they were


def dump_line(obj: Any) -> bytes:
    """One JSON Lines record (aware datetimes as ISO 8601 with Z)."""
    return orjson.dumps(obj, option=orjson.OPT_UTC_Z | orjson.OPT_APPEND_NEWLINE)


def dump_lines(objs: Iterable[Any]) -> Iterator[bytes]:
    """JSON Lines records."""
    return (dump_line(o) for o in objs)
