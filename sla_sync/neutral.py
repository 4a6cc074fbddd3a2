"""The neutral issue format (JSON Lines) in and out.

``issue_from_json`` turns one decoded line into an ``Issue``; ``issue_to_json``
does the reverse (``sla-sync export``); ``sla_to_json`` is the shape ``sla-sync
evaluate`` writes.  Bad input raises ``ValueError`` with a message that says which
key is wrong and how; callers add the file and line.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import IO, Any

import orjson

from .calendar import iso_utc
from .model import Event, Issue, IssueSla

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
    return replace(event, by_self=True)


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
        moment = datetime.fromisoformat(raw["at"])
        if moment.tzinfo is None:
            return None
        at = int(moment.timestamp())
        if not EARLIEST <= at < LATEST:
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
        "metrics": {
            name: {
                "state": m.state.value,
                "at_risk": m.at_risk,
                "target_s": m.target_s,
                "elapsed_s": m.elapsed_s,
                "remaining_s": m.remaining_s,
                "due_at": _moment(m.due_at),
                "breached_at": _moment(m.breached_at),
                "stopped_at": _moment(m.stopped_at),
            }
            for name, m in sla.metrics.items()
        },
    }


class LineError(ValueError):
    """A bad input line: ``FILE:LINE: message``."""

    def __init__(self, source: str, line: int, message: str) -> None:
        super().__init__(f"{source}:{line}: {message}")
        self.source, self.line, self.message = source, line, message


def read_issues(stream: IO[bytes], source: str) -> Iterator[tuple[int, Issue | LineError]]:
    """Decode a JSON Lines stream lazily: ``(line number, Issue or LineError)``.

    Blank lines are skipped.  The caller decides whether a bad line stops the run.
    """
    for number, raw in enumerate(stream, start=1):
        if not raw.strip():
            continue
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            yield number, LineError(source, number, f"not valid JSON: {exc}")
            continue
        try:
            yield number, issue_from_json(obj)
        except ValueError as exc:
            key = obj.get("key") if isinstance(obj, dict) else None
            prefix = f"issue {key}: " if isinstance(key, (str, int)) and key != "" else ""
            yield number, LineError(source, number, prefix + str(exc))


def dump_line(obj: Any) -> bytes:
    """One JSON Lines record (aware datetimes as ISO 8601 with Z)."""
    return orjson.dumps(obj, option=orjson.OPT_UTC_Z | orjson.OPT_APPEND_NEWLINE)


def dump_lines(objs: Iterable[Any]) -> Iterator[bytes]:
    """JSON Lines records."""
    return (dump_line(o) for o in objs)
