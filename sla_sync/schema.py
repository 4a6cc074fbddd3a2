"""The policy file's schema: frozen pydantic v2 models that forbid unknown keys.

``PolicyFile`` is the file as written; ``sla_sync.policy`` compiles it into the
``Policy`` the clocks use.  Plain YAML scalars arrive as strings (see
``sla_sync.positions``), so validators here convert them.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from datetime import date
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
)

from .model import METRICS
from .values import parse_duration, parse_instant, parse_interval, parse_percent


def _check_duration(text: str) -> str:
    parse_duration(text)
    return text


def _check_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"{name!r} is not an IANA timezone: write it like Europe/Madrid or UTC"
        ) from None
    return name


def _check_percent(text: str) -> str:
    parse_percent(text)
    return text


def _listify(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


Duration = Annotated[str, AfterValidator(_check_duration)]


def _check_zero_or_duration(text: str) -> str:
    if text.strip() != "0":
        parse_duration(text)
    return text


ZeroOrDuration = Annotated[str, AfterValidator(_check_zero_or_duration)]


def duration_or_zero(text: str) -> int:
    """Seconds of a duration that may be written ``0``."""
    return 0 if text.strip() == "0" else parse_duration(text)
Timezone = Annotated[str, AfterValidator(_check_timezone)]
Percent = Annotated[str, AfterValidator(_check_percent)]
Names = Annotated[tuple[str, ...], BeforeValidator(_listify)]


def _check_interval(text: str) -> str:
    parse_interval(text)
    return text


def _check_day(texts: tuple[str, ...]) -> tuple[str, ...]:
    spans = sorted(parse_interval(t) for t in texts)
    for (_, end), (start, _) in itertools.pairwise(spans):
        if start < end:
            raise ValueError(f"intervals {', '.join(texts)} overlap")
    return texts


IntervalText = Annotated[str, AfterValidator(_check_interval)]
DayHours = Annotated[tuple[IntervalText, ...], BeforeValidator(_listify), AfterValidator(_check_day)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# -- the schema ----------------------------------------------------------------


class Agents(_Frozen):
    """Who counts as an agent (support staff): tracker logins and group names."""

    users: Names = ()
    groups: Names = ()


class TrackerSpec(_Frozen):
    """Where the issues live and how to reach them: the settings every tracker
    kind has.  Secrets by reference only.  ``tracker`` in a policy file is one of
    the subclasses, chosen by ``kind``."""

    kind: str = Field(description="redmine | gitlab | jira, or a plugin's name")
    url: str
    project: str
    api_key_env: str | None = Field(None, description="environment variable holding the API key or token")
    api_key_file: str | None = Field(None, description="file holding the API key or token")
    agents: Agents | None = Field(None, description="default: anyone but the issue's author")
    timeout: Annotated[float, Field(gt=0)] = 30.0
    max_attempts: Annotated[int, Field(ge=1, le=10)] = 5
    max_wait: Annotated[float, Field(gt=0, le=3600, description="longest wait between two attempts, seconds")] = 60.0
    overlap: Duration = Field("5m", description="how far each incremental fetch reaches back")
    reconcile_every: ZeroOrDuration = Field(
        default="6h", description="a full pass (every open issue listed) once the last is this old; 0: every pass")

    @property
    def due_instant_field(self) -> str | None:
        """The datetime custom field for the exact due instant, where the kind has one."""
        return None

    def issue_url(self, key: str) -> str | None:
        """The issue's page on the tracker, for messages (``None`` where the kind's is unknown)."""
        return None

    @property
    def _base(self) -> str:
        return self.url.strip().rstrip("/")


_DUE_FIELD = Field(None, description="a datetime custom field for the exact due instant")


class RedmineSpec(TrackerSpec):
    """A Redmine project (``kind: redmine``)."""

    kind: Literal["redmine"]
    labels_field: str = Field("SLA", description="the multi-value list custom field holding the SLA labels")
    due_field: str | None = _DUE_FIELD
    include_subprojects: bool = Field(
        False, description="also the issues of the project's subprojects (default: the project's own issues only)")

    @property
    def due_instant_field(self) -> str | None:
        return self.due_field

    def issue_url(self, key: str) -> str | None:
        return f"{self._base}/issues/{key}"


class GitLabSpec(TrackerSpec):
    """A GitLab project (``kind: gitlab``): status and priority live in scoped labels;
    it has no custom fields, so no ``due_field``."""

    kind: Literal["gitlab"]
    status_labels: str | None = Field(None, description="scoped-label prefix holding the status, e.g. 'status::'")
    priority_labels: str | None = Field(None, description="scoped-label prefix holding the priority")

    def issue_url(self, key: str) -> str | None:
        if self.project.isdigit():  # a numeric id: GitLab redirects /projects/ID to the project
            return f"{self._base}/projects/{self.project}"
        return f"{self._base}/{self.project.strip('/')}/-/issues/{key}"


class JiraSpec(TrackerSpec):
    """A Jira Cloud or Data Center project (``kind: jira``)."""

    kind: Literal["jira"]
    user_env: str | None = Field(None, description="Jira Cloud: variable holding the account e-mail")
    due_field: str | None = _DUE_FIELD

    @property
    def due_instant_field(self) -> str | None:
        return self.due_field

    def issue_url(self, key: str) -> str | None:
        return f"{self._base}/browse/{key}"


class PluginSpec(TrackerSpec):
    """A tracker of a third-party adapter: every setting a built-in kind knows."""

    user_env: str | None = None
    labels_field: str = "SLA"
    due_field: str | None = _DUE_FIELD
    status_labels: str | None = None
    priority_labels: str | None = None

    @property
    def due_instant_field(self) -> str | None:
        return self.due_field


BUILTIN_TRACKERS: dict[str, type[TrackerSpec]] = {"redmine": RedmineSpec, "gitlab": GitLabSpec, "jira": JiraSpec}


def _tracker_kind(value: Any) -> str:
    kind = value.get("kind") if isinstance(value, dict) else getattr(value, "kind", None)
    return kind if isinstance(kind, str) and kind in BUILTIN_TRACKERS else "plugin"


AnyTrackerSpec = Annotated[
    Annotated[RedmineSpec, Tag("redmine")]
    | Annotated[GitLabSpec, Tag("gitlab")]
    | Annotated[JiraSpec, Tag("jira")]
    | Annotated[PluginSpec, Tag("plugin")],
    Discriminator(_tracker_kind),
]


def kinds_with(setting: str) -> tuple[str, ...]:
    """The built-in tracker kinds that have a setting (for a clear error where one has not)."""
    return tuple(kind for kind, model in BUILTIN_TRACKERS.items() if setting in model.model_fields)


class CalendarSpec(_Frozen):
    """A business calendar: working hours per weekday in one timezone, and holidays."""

    timezone: Timezone
    hours: Annotated[
        Annotated[Literal["24x7"], Tag("always")]
        | Annotated[dict[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"], DayHours], Tag("weekly")],
        Discriminator(lambda v: "always" if isinstance(v, str) else "weekly"),
        Field(description='"24x7", or local intervals per weekday: mon: ["09:00-13:00", "14:00-18:00"]'),
    ]
    holidays: tuple[date, ...] = ()
    holidays_country: str | None = Field(None, description="ISO 3166 code, for the `holidays` package")
    holidays_subdiv: str | None = Field(None, description="a subdivision of that country, e.g. MD")


class LevelSpec(_Frozen):
    """A priority level: the calendar its clocks run on, and the targets (those of
    the built-in metrics, and of the metrics of ``metrics:`` by their names)."""

    model_config = ConfigDict(frozen=True, extra="allow", json_schema_extra={
        "additionalProperties": {"type": "string", "description": "the target of a metric of `metrics:`"}})

    calendar: str
    first_response: Duration | None = None
    workaround: Duration | None = None
    resolution: Duration | None = None
    description: str | None = None


def _check_effective(text: str) -> str:
    parse_instant(text)
    return text


class LevelChange(_Frozen):
    """A level as a revision changes it: only the keys written change; ``null``
    removes a target."""

    model_config = ConfigDict(frozen=True, extra="allow", json_schema_extra={
        "additionalProperties": {"type": ["string", "null"], "description": "a metric of `metrics:`"}})

    calendar: str | None = None
    first_response: Duration | None = None
    workaround: Duration | None = None
    resolution: Duration | None = None
    description: str | None = None


class RevisionSpec(_Frozen):
    """A dated change of the agreement: from ``effective_from`` on, the levels it
    names take these values (on top of the revisions before it)."""

    effective_from: Annotated[str, AfterValidator(_check_effective)] = Field(
        description="a date (00:00 UTC that day) or an ISO instant with a timezone"
    )
    levels: dict[str, LevelChange]
    description: str | None = None


RULE_KEYS = ("priority", "type", "status", "labels", "assignee", "project", "milestone")


class RuleSpec(_Frozen):
    """``if`` (all keys must hold; a list means any of) → ``level``."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    when: dict[str, Names] | None = Field(None, alias="if")
    level: str
    calendar: str | None = Field(None, description="the calendar of the issues this rule classifies (not the level's)")
    from_: Annotated[str, AfterValidator(_check_effective)] | None = Field(
        None, alias="from", description="the rule holds for issues created at or after this date or instant")
    until: Annotated[str, AfterValidator(_check_effective)] | None = Field(
        None, description="...and before this one (a contract's period)")

    @field_validator("when")
    @classmethod
    def _keys(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        for key in value or {}:
            if key not in RULE_KEYS and not (key.startswith("fields.") and len(key) > 7):
                raise ValueError(
                    f"unknown condition {key!r}: use one of {', '.join(RULE_KEYS)} or fields.NAME"
                )
        return value


EVENT_WORDS = ("created", "resolved", "reopened")
EVENT_KEYS = ("status", "label", "assignee", "priority", "field", "comment")
CONDITION_KEYS = ("priority", "type", "status", "labels", "assignee", "project", "milestone")

# An event of a metric's start or stop: a word, or a one-key mapping (the semantic
# checks, ``sla_sync.checks``, say what is wrong with one, where it is).
EventSpec = Annotated[
    str | dict[str, Any],
    Field(description="created, resolved, reopened, {status: [..]}, {label: [..]}, {assignee: [..]}, "
                      "{priority: [..]}, {field: {NAME: [..]}}, {comment: agent} or {comment: customer}"),
]


class MetricSpec(_Frozen):
    """A metric of your own: a clock that starts at any of ``start``'s events and
    stops at any of ``stop``'s, paused while ``pause_when`` holds (and in the
    pause statuses, unless ``pause_statuses: false``); with ``repeat``, a start
    after a stop opens a new cycle."""

    start: tuple[EventSpec, ...] = Field(min_length=1)
    stop: tuple[EventSpec, ...] = Field(min_length=1)
    pause_when: dict[str, Names] | None = Field(None, description="a condition, in the language of classify's if")
    pause_statuses: bool = True
    repeat: bool = False
    description: str | None = None

    @field_validator("pause_when")
    @classmethod
    def _keys(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        for key in value or {}:
            if key not in CONDITION_KEYS and not (key.startswith("fields.") and len(key) > 7):
                raise ValueError(f"unknown condition {key!r}: use one of {', '.join(CONDITION_KEYS)} or fields.NAME")
        return value


class ClockSpec(_Frozen):
    """Which statuses and labels pause, resolve, or provide a workaround."""

    pause_statuses: Names = ()
    resolved_statuses: Names = ("Resolved", "Closed")
    workaround_statuses: Names = ()
    workaround_labels: Names = ()


_WHEN = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\s+(breached|\d{1,3}(?:\.\d+)?\s*%)$")


class StepSpec(_Frozen):
    """An escalation step: fires once per issue when its condition first holds."""

    when: str = Field(description='"<metric> <N>%" or "<metric> breached"')
    assign: str | None = None
    watchers: Names = ()
    add_labels: Names = ()
    comment: str | None = None
    private: bool = True
    notify: Names = Field(default=(),
                          description="channels of `notify.channels` that get a message when the step fires")

    @field_validator("when")
    @classmethod
    def _when(cls, value: str) -> str:
        m = _WHEN.match(value.strip())
        if not m:
            raise ValueError(
                f"{value!r}: write it as '<metric> <N>%' or '<metric> breached', "
                f"metric one of {', '.join(METRICS)} or of `metrics:`"
            )
        if m.group(2) != "breached":
            parse_percent(m.group(2))
        return value


class WritebackSpec(_Frozen):
    """What sla-sync writes into the tracker."""

    due_date: str = Field(default="resolution", description="the metric whose due instant is written: "
                          "first_response, workaround, resolution, one of `metrics:`, or none")
    labels: bool = True
    label_prefix: str = "sla:"
    on_manual_change: Literal["keep", "override"] = "keep"
    remaining_field: str | None = Field(
        default=None,
        description="a number custom field (Redmine: integer or float; Jira: number) that gets the time left "
                    "of the due_date metric in working hours, negative once breached")
    remaining_step: Duration = Field(default="1h", description="remaining_field changes only by steps of this size")
    health_status: bool = Field(
        default=False, description="GitLab Premium: the issue's health status follows the SLA state")
    backlog_steps: Literal["last", "all", "mark"] = Field(
        default="last",
        description="when several escalation steps of an issue are due at once (an issue seen for the first "
                    "time, or after an outage): run only the last one's actions and mark the earlier ones "
                    "(last), run them all (all), or mark them all as fired without acting (mark)")

    @field_validator("remaining_step")
    @classmethod
    def _step(cls, value: str) -> str:
        if parse_duration(value) < 60:
            raise ValueError(f"{value!r}: a step of at least 1m, e.g. 1h or 30m")
        return value


class ChannelSpec(_Frozen):
    """A notification channel: an Apprise URL, which holds a secret, so only by
    reference (exactly one of the two)."""

    url_env: str | None = Field(default=None, description="environment variable holding the Apprise URL")
    url_file: str | None = Field(default=None, description="file holding the Apprise URL")


class NotifySpec(_Frozen):
    """Where escalation messages and digests go (Apprise: Slack, Teams, e-mail, ntfy, webhooks...)."""

    channels: dict[str, ChannelSpec] = Field(default_factory=dict)
    quiet_outside: str | None = Field(
        default=None, description="a calendar: messages due outside its working time wait for the next working time")


def _check_cron(text: str) -> str:
    from croniter import croniter  # only policies with a digest need it

    if not croniter.is_valid(text) or len(text.split()) != 5:
        raise ValueError(f"{text!r} is not a cron expression: five fields, minute hour day month weekday, "
                         'e.g. "0 9 * * mon-fri"')
    return text


class DigestSpec(_Frozen):
    """A scheduled message listing the open issues at risk and breached."""

    channel: str = Field(description="a channel of notify.channels")
    at: Annotated[str, AfterValidator(_check_cron)] = Field(
        description='a cron expression in the calendar\'s timezone, e.g. "0 9 * * mon-fri"')
    calendar: str | None = Field(default=None, description="its timezone and holidays (skipped on them); default UTC")


class ReportSpec(_Frozen):
    """Settings of ``sla-sync report``."""

    csat_field: str | None = None
    csat_values: dict[str, float] = Field(default_factory=dict)


class PolicyFile(_Frozen):
    """A policy file, as written."""

    name: str
    tracker: AnyTrackerSpec | None = None
    calendars: dict[str, CalendarSpec]
    metrics: dict[str, MetricSpec] = Field(default_factory=dict,
                                           description="metrics of your own: start, stop and pause conditions")
    levels: dict[str, LevelSpec]
    revisions: tuple[RevisionSpec, ...] = Field((), description="dated changes of the levels, oldest first")
    classify: tuple[RuleSpec, ...]
    clock: ClockSpec = ClockSpec()
    warn_at: Percent = "75%"
    escalate: tuple[StepSpec, ...] = ()
    writeback: WritebackSpec = WritebackSpec()
    report: ReportSpec = ReportSpec()
    notify: NotifySpec = NotifySpec()
    digest: tuple[DigestSpec, ...] = Field(default=(),
                                           description="scheduled messages of the issues at risk and breached")


def json_schema() -> dict[str, Any]:
    """The policy file's JSON Schema (for editors)."""
    schema = PolicyFile.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "sla-sync policy file"
    return schema



def apply_revision(levels: Mapping[str, Mapping[str, Any]],
                   changes: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """The levels (as plain mappings) after a revision: each changed level takes the
    keys the revision writes on top of its current ones.  The semantic checks run it
    on the raw document, the compiler on the validated one."""
    out = {name: dict(values) for name, values in levels.items()}
    for name, change in changes.items():
        if name in out:
            out[name] = {**out[name], **change}
    return out
