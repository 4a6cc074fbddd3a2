"""The semantic checks of a policy file: what a schema cannot express.

A level naming an unknown calendar, a rule naming an unknown level, a rule never
reached, no rule that always holds, revisions out of order...  They read the raw
document, defensively, so that they are reported in the same pass as the schema's
own problems; each is ``(path, message, point at the key)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .calendar import country_holidays
from .model import METRICS
from .positions import Loc
from .schema import EVENT_KEYS, EVENT_WORDS, apply_revision
from .values import parse_duration, parse_instant

LEVEL_KEYS = frozenset({"calendar", "description", *METRICS})


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _seq(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def semantic_problems(data: dict[str, Any], known_kinds: Sequence[str] | None) -> list[tuple[Loc, str, bool]]:
    """Problems a schema cannot see: (path, message, point at the key).

    They read the raw document, defensively, so that they are reported in the same
    pass as the schema's own problems.
    """
    out: list[tuple[Loc, str, bool]] = []
    calendars = _mapping(data.get("calendars"))
    levels = _mapping(data.get("levels"))
    custom = _mapping(data.get("metrics"))
    out += _metric_problems(custom)
    metrics = (*METRICS, *(m for m in custom if m not in METRICS))
    defined: set[str] = set()
    for name, level in levels.items():
        level = _mapping(level)
        cal = level.get("calendar")
        if isinstance(cal, str) and cal not in calendars:
            known = ", ".join(calendars) or "none"
            out.append((("levels", name, "calendar"),
                        f"level {name!r} names calendar {cal!r}, which is not defined (calendars: {known})", False))
        out += _custom_targets(("levels", name), level, custom, revision=False)
        targets = {m for m in metrics if level.get(m)}
        defined |= targets
        if not targets:
            out.append((("levels", name),
                        f"level {name!r} sets no target: give it first_response, workaround and/or resolution", True))
    out += _revision_problems(data, levels, calendars, defined, metrics, custom)
    rules = _seq(data.get("classify"))
    catch_all: int | None = None
    for i, rule in enumerate(rules):
        rule = _mapping(rule)
        level_name = rule.get("level")
        if isinstance(level_name, str) and levels and level_name not in levels:
            out.append((("classify", i, "level"),
                        f"rule {i + 1} names level {level_name!r}, which is not defined (levels: {', '.join(levels)})",
                        False))
        out += _rule_problems(i, rule, calendars)
        if catch_all is not None:
            out.append((("classify", i),
                        f"rule {i + 1} is never reached: rule {catch_all + 1} before it always holds", False))
        elif not rule.get("if"):
            catch_all = i
    if "classify" in data and catch_all is None:
        out.append((("classify",),
                    "no rule always holds: end classify with a rule without `if`, e.g. `- level: P3`", True))
    for i, step in enumerate(_seq(data.get("escalate"))):
        step = _mapping(step)
        metric = str(step.get("when") or "").split(" ")[0]
        if metric and metric not in metrics:
            out.append((("escalate", i, "when"), f"{metric!r} is not a metric: write '<metric> <N>%' or "
                                                 f"'<metric> breached', metric one of {', '.join(metrics)}", False))
        elif metric in metrics and levels and metric not in defined:
            out.append((("escalate", i, "when"),
                        f"no level sets a {metric} target, so this step can never fire", False))
        if not any(step.get(k) for k in ("assign", "watchers", "add_labels", "comment", "notify")):
            out.append((("escalate", i),
                        "a step needs at least one action: assign, watchers, add_labels, comment or notify", False))
    due = _mapping(data.get("writeback")).get("due_date")  # the default may go unused
    if isinstance(due, str) and due != "none" and due not in metrics:
        out.append((("writeback", "due_date"), f"{due!r} is not a metric: use one of {', '.join(metrics)} or none",
                    False))
    elif due in metrics and levels and due not in defined:
        out.append((("writeback", "due_date"), f"no level sets a {due} target", False))
    for name, cal in calendars.items():
        cal = _mapping(cal)
        out += _working_hours_problems(name, cal)
        country, subdiv = cal.get("holidays_country"), cal.get("holidays_subdiv")
        if isinstance(country, str):
            try:
                country_holidays(country, subdiv if isinstance(subdiv, str) else None)
            except NotImplementedError as exc:
                key = "holidays_subdiv" if subdiv and "subdivision" in str(exc) else "holidays_country"
                out.append((("calendars", name, key), f"the holidays package does not know it: {exc}", False))
        elif subdiv:
            out.append((("calendars", name, "holidays_subdiv"), "holidays_subdiv needs holidays_country", True))
    out += _label_problems(data)
    out += _notify_problems(data, calendars)
    tracker = data.get("tracker")
    if isinstance(tracker, dict):
        kind = tracker.get("kind")
        if known_kinds is not None and isinstance(kind, str) and kind not in known_kinds:
            out.append((("tracker", "kind"),
                        f"unknown tracker kind {kind!r}: installed adapters are {', '.join(sorted(known_kinds))}",
                        False))
        out += _writeback_tracker_problems(kind, _mapping(data.get("writeback")))
        if not (tracker.get("api_key_env") or tracker.get("api_key_file")):
            out.append((("tracker",),
                        "set api_key_env (an environment variable) or api_key_file: "
                        "secrets never go in the policy file", True))
    return out


def _notify_problems(data: dict[str, Any], calendars: dict[str, Any]) -> list[tuple[Loc, str, bool]]:
    """Channels and calendars that ``notify``, the steps and the digests name."""
    out: list[tuple[Loc, str, bool]] = []
    notify = _mapping(data.get("notify"))
    channels = _mapping(notify.get("channels"))
    known = ", ".join(channels) or "none: define them under notify.channels"
    for name, channel in channels.items():
        given = [k for k in ("url_env", "url_file") if _mapping(channel).get(k)]
        if len(given) != 1:
            out.append((("notify", "channels", name),
                        f"channel {name!r}: set exactly one of url_env (an environment variable) or url_file: "
                        "an Apprise URL holds a secret, so it never goes in the policy file", True))
    quiet = notify.get("quiet_outside")
    if isinstance(quiet, str) and quiet not in calendars:
        out.append((("notify", "quiet_outside"),
                    f"calendar {quiet!r} is not defined (calendars: {', '.join(calendars) or 'none'})", False))
    for i, step in enumerate(_seq(data.get("escalate"))):
        names = _mapping(step).get("notify")
        for name in [names] if isinstance(names, str) else _seq(names):
            if isinstance(name, str) and name not in channels:
                out.append((("escalate", i, "notify"), f"channel {name!r} is not defined (channels: {known})", False))
    for i, digest in enumerate(_seq(data.get("digest"))):
        digest = _mapping(digest)
        channel, calendar = digest.get("channel"), digest.get("calendar")
        if isinstance(channel, str) and channel not in channels:
            out.append((("digest", i, "channel"), f"channel {channel!r} is not defined (channels: {known})", False))
        if isinstance(calendar, str) and calendar not in calendars:
            out.append((("digest", i, "calendar"),
                        f"calendar {calendar!r} is not defined (calendars: {', '.join(calendars) or 'none'})", False))
    return out


def _writeback_tracker_problems(kind: Any, writeback: dict[str, Any]) -> list[tuple[Loc, str, bool]]:
    """Writeback settings the tracker kind cannot honour."""
    out: list[tuple[Loc, str, bool]] = []
    if kind == "gitlab" and writeback.get("remaining_field"):
        out.append((("writeback", "remaining_field"),
                    "a gitlab tracker has no custom fields: remove remaining_field (health_status: true shows "
                    "the SLA state on GitLab Premium; the sla: labels filter and sort everywhere)", True))
    if kind in ("redmine", "jira") and writeback.get("health_status") is True:
        out.append((("writeback", "health_status"),
                    f"a {kind} tracker has no health status (only gitlab has it): remove it, or use remaining_field",
                    True))
    return out


def _working_hours_problems(name: str, cal: dict[str, Any]) -> list[tuple[Loc, str, bool]]:
    """A calendar needs working time in its week, or no clock on it could ever run
    or come due.  Malformed hours are the schema's to report."""
    hours = cal.get("hours")
    if not isinstance(hours, dict) or not all(isinstance(v, list) and not v for v in hours.values()):
        return []
    return [(
        ("calendars", name, "hours"),
        f"calendar {name!r} has no working hours in the week: give at least one day an interval, "
        'e.g. mon: ["09:00-17:00"], or write hours: 24x7',
        True,
    )]


def _label_problems(data: dict[str, Any]) -> list[tuple[Loc, str, bool]]:
    """Labels the tracker would mangle.  Everywhere: an empty ``label_prefix``
    (sla-sync's labels would be bare words such as ``P1`` or ``breached``, which
    people use too).  On GitLab: a prefix holding ``::`` makes every managed label
    a scoped label of one scope, which GitLab Premium keeps exclusive (adding
    ``sla::breached`` drops ``sla::P1``), so the labels would fight every pass; and
    a comma in a label, since GitLab splits ``add_labels`` on commas."""
    out: list[tuple[Loc, str, bool]] = []
    tracker = _mapping(data.get("tracker"))
    gitlab = tracker.get("kind") == "gitlab"
    prefix = _mapping(data.get("writeback")).get("label_prefix")
    here: Loc = ("writeback", "label_prefix")
    if isinstance(prefix, str) and not prefix.strip():
        out.append((here, "an empty prefix would make sla-sync's labels bare words (P1, breached) that people "
                          "use too: keep the default \"sla:\" or name another", False))
    elif isinstance(prefix, str) and gitlab and "::" in prefix:
        out.append((here, f"{prefix!r} makes sla-sync's labels GitLab scoped labels of one scope, which GitLab "
                          "keeps exclusive (adding the breach label removes the level label), so they would "
                          "change on every pass: use a prefix without '::', such as \"sla:\"", False))
    elif isinstance(prefix, str) and gitlab and "," in prefix:
        out.append((here, f"{prefix!r}: GitLab splits labels on commas: use a prefix without one", False))
    if not gitlab:
        return out
    for i, step in enumerate(_seq(data.get("escalate"))):
        labels = _mapping(step).get("add_labels")
        found = [(("escalate", i, "add_labels"), labels)] if isinstance(labels, str) else [
            (("escalate", i, "add_labels", j), label) for j, label in enumerate(_seq(labels))]
        for loc, label in found:
            if isinstance(label, str) and "," in label:
                out.append((loc, f"the label {label!r} holds a comma, and GitLab splits labels on commas "
                                 "(it would add one label per part): write one label per list item", False))
    return out


_EVENT_HELP = ("use created, resolved, reopened, {status: [..]}, {label: [..]}, {assignee: [..]}, "
               "{priority: [..]}, {field: {NAME: [..]}}, {comment: agent} or {comment: customer}")


def _metric_problems(custom: dict[str, Any]) -> list[tuple[Loc, str, bool]]:
    """A custom metric is not named like a built-in one, and each event of its
    ``start`` and ``stop`` is one the clocks know."""
    out: list[tuple[Loc, str, bool]] = []
    for name, spec in custom.items():
        if name in METRICS:
            out.append((("metrics", name), f"{name} is a built-in metric: give yours another name", True))
            continue
        if name in LEVEL_KEYS:
            out.append((("metrics", name), f"{name!r} is a key of a level: give the metric another name", True))
        for part in ("start", "stop"):
            for i, event in enumerate(_seq(_mapping(spec).get(part))):
                problem = _event_problem(event)
                if problem:
                    out.append((("metrics", name, part, i), problem, False))
    return out


def _event_problem(event: Any) -> str | None:
    """What is wrong with one event of a metric's start or stop, or ``None``."""
    if isinstance(event, str):
        return None if event in EVENT_WORDS else f"unknown event {event!r}: {_EVENT_HELP}"
    if not isinstance(event, dict):
        return None  # the schema reports it
    if len(event) != 1:
        return f"an event is one key, not {len(event)} ({', '.join(map(str, event))}): {_EVENT_HELP}"
    key, value = next(iter(event.items()))
    if key not in EVENT_KEYS:
        return f"unknown event {key!r}: {_EVENT_HELP}"
    if key == "comment":
        return None if value in ("agent", "customer") else f"comment: {value!r}: write agent or customer"
    if key == "field":
        if not isinstance(value, dict) or len(value) != 1:
            return "field: name one custom field and its values, e.g. {field: {Severity: [critical]}}"
        value = next(iter(value.values()))
    values = value if isinstance(value, list) else [value]
    if not values or not all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in values):
        return f"{key}: give one or more values, e.g. {{{key}: [..]}}"
    return None


def _custom_targets(here: Loc, level: dict[str, Any], custom: dict[str, Any], *,
                    revision: bool) -> list[tuple[Loc, str, bool]]:
    """A level's keys beyond the built-in ones are targets of metrics of ``metrics:``."""
    out: list[tuple[Loc, str, bool]] = []
    for key, value in level.items():
        if key in LEVEL_KEYS:
            continue
        if key not in custom:
            known = ", ".join(custom) or "none defined"
            out.append(((*here, key), f"unknown key {key!r}: a level takes calendar, description, first_response, "
                                      f"workaround, resolution and the metrics of metrics: ({known})", True))
        elif value is None and revision:
            continue  # a revision removes the target
        elif not isinstance(value, str):
            out.append(((*here, key), f"{key}: write a duration like 30m, 4h or 1h30m", False))
        else:
            try:
                parse_duration(value)
            except ValueError as exc:
                out.append(((*here, key), f"{key}: {exc}", False))
    return out


def _rule_problems(i: int, rule: dict[str, Any], calendars: dict[str, Any]) -> list[tuple[Loc, str, bool]]:
    """A rule's own calendar exists; its contract period is not empty."""
    out: list[tuple[Loc, str, bool]] = []
    cal = rule.get("calendar")
    if isinstance(cal, str) and cal not in calendars:
        out.append((("classify", i, "calendar"), f"rule {i + 1} names calendar {cal!r}, which is not defined "
                                                 f"(calendars: {', '.join(calendars) or 'none'})", False))
    start, end = rule.get("from"), rule.get("until")
    try:
        empty = start is not None and end is not None and parse_instant(str(end)) <= parse_instant(str(start))
    except ValueError:
        empty = False  # the schema reports it
    if empty:
        out.append((("classify", i, "until"), f"rule {i + 1}: until ({end}) must come after from ({start})", False))
    return out


def _revision_problems(
    data: dict[str, Any], levels: dict[str, Any], calendars: dict[str, Any], defined: set[str],
    metrics: tuple[str, ...] = METRICS, custom: dict[str, Any] | None = None,
) -> list[tuple[Loc, str, bool]]:
    """Revisions in increasing order, naming known levels and calendars, and
    leaving every level at least one target.  Adds the metrics that revisions
    set to ``defined``."""
    out: list[tuple[Loc, str, bool]] = []
    current = {name: dict(_mapping(level)) for name, level in levels.items()}
    previous: tuple[int, str] | None = None
    for i, rev in enumerate(_seq(data.get("revisions"))):
        rev = _mapping(rev)
        here: Loc = ("revisions", i)
        try:
            instant = parse_instant(str(rev.get("effective_from")))
        except ValueError:
            instant = None  # the schema reports it
        if instant is not None and previous is not None and instant <= previous[0]:
            out.append((
                (*here, "effective_from"),
                f"revision {i + 1} takes effect at {rev.get('effective_from')}, not after revision {previous[1]}: "
                "list revisions oldest first, each later than the one before",
                False,
            ))
        if instant is not None:
            previous = (instant, f"{i + 1} ({rev.get('effective_from')})")
        changes = _mapping(rev.get("levels"))
        if isinstance(rev.get("levels"), dict) and not changes:
            out.append(((*here, "levels"), f"revision {i + 1} changes no level: name at least one", True))
        for name, change in changes.items():
            change = _mapping(change)
            if name not in current:
                known = ", ".join(levels) or "none"
                out.append(((*here, "levels", name),
                            f"revision {i + 1} changes level {name!r}, which is not defined (levels: {known}); "
                            "a revision can only change a level of `levels`", True))
                continue
            cal = change.get("calendar")
            if "calendar" in change and not isinstance(cal, str):
                out.append(((*here, "levels", name, "calendar"),
                            f"revision {i + 1}: a level always has a calendar: name one or leave the key out", False))
            elif isinstance(cal, str) and cal not in calendars:
                out.append(((*here, "levels", name, "calendar"),
                            f"revision {i + 1} gives level {name!r} calendar {cal!r}, which is not defined "
                            f"(calendars: {', '.join(calendars) or 'none'})", False))
            out += _custom_targets((*here, "levels", name), change, custom or {}, revision=True)
            current = apply_revision(current, {name: change})
            targets = {m for m in metrics if current[name].get(m)}
            defined |= targets
            if not targets:
                out.append(((*here, "levels", name), f"revision {i + 1} leaves level {name!r} with no target", True))
    return out

