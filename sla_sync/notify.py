"""Messages to people through Apprise: escalation notices and digests.

A channel (``notify.channels``) is an Apprise URL (Slack, Teams, Mattermost,
e-mail, ntfy, a JSON webhook...), which holds a secret: the policy names the
variable or the file that holds it, and every piece of it is known to the
redactor before anything is sent.  The texts are composed here (pure); sending
is ``AppriseSender``'s, behind the ``Sender`` protocol that the sync receives, so
tests can inject their own.

When a message goes out is the sync's: once per step firing, after the step's
tracker writes landed, recorded in the state store before the pass sends it and
marked sent right after Apprise accepted it.  With ``notify.quiet_outside`` it
waits for that calendar's working time (``in_working_time``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

from .calendar import Calendar, iso_utc
from .errors import SlaSyncError, UserError
from .model import IssueSla, SlaState, State
from .policy import Notify, Policy, Step
from .redact import REDACTOR
from .secrets import read_reference
from .values import format_duration

APPRISE_DOCS = "https://github.com/caronc/apprise/wiki"


@dataclass(frozen=True)
class Message:
    """One message for one channel."""

    channel: str
    title: str
    body: str


class SendError(SlaSyncError):
    """A channel refused or failed a message (the sync retries it next pass)."""


class Sender(Protocol):
    """What the sync sends messages through."""

    def send(self, message: Message) -> None:
        """Deliver one message, or raise ``SendError``."""


# -- the texts (pure) ---------------------------------------------------------------


def time_left(metric: SlaState) -> str:
    """``1h30m over (target 8h)`` once breached, else ``20m left of 30m`` (messages
    and digests alike)."""
    target = format_duration(metric.target_s)
    if metric.state is State.BREACHED:
        return f"{format_duration(-metric.remaining_s)} over (target {target})"
    return f"{format_duration(metric.remaining_s)} left of {target}"


def metric_text(metric: SlaState) -> str:
    """``resolution breached, 1h30m over (target 8h)``, ``first_response running,
    20m left of 30m, at risk``, ``workaround paused, 3h left of 8h``, ``... met``."""
    if metric.state is State.BREACHED:
        return f"{metric.metric} breached, {time_left(metric)}"
    if metric.state is State.MET:
        return f"{metric.metric} met ({format_duration(metric.elapsed_s)} of {format_duration(metric.target_s)})"
    risk = ", at risk" if metric.at_risk else ""
    due = f", due {iso_utc(metric.due_at)}" if metric.due_at is not None and metric.state is State.RUNNING else ""
    return f"{metric.metric} {metric.state}, {time_left(metric)}{risk}{due}"


def step_message(policy: Policy, key: str, title: str, sla: IssueSla | None, step: Step, channel: str) -> Message:
    """The message a fired step sends: the issue (key, title, link), its level, the
    step's metric with its state and time left or over, and the step."""
    link = policy.tracker.issue_url(key) if policy.tracker is not None else None
    metric = sla.metrics.get(step.metric) if sla is not None else None
    state = metric_text(metric) if metric is not None else f"{step.metric}: no figures (the issue is out of view)"
    lines = [f"{key}: {title}" if title else key]
    if link:
        lines.append(link)
    lines.append(f"level {sla.level}: {state}" if sla is not None else state)
    lines.append(f"escalation step {step.number}: when {step.spec.when}{_actions(step)}")
    what = _short_state(metric) if metric is not None else step.metric
    headline = f"[{policy.name}] {key} {what}: step {step.number}"
    return Message(channel, headline, "\n".join(lines))


def _short_state(metric: SlaState) -> str:
    if metric.state is State.BREACHED:
        return f"{metric.metric} breached"
    return f"{metric.metric} {format_duration(max(metric.remaining_s, 0))} left"


def _actions(step: Step) -> str:
    spec = step.spec
    done = [f"assigned to {spec.assign}" if spec.assign else "",
            f"watchers {', '.join(spec.watchers)}" if spec.watchers else "",
            f"labels {', '.join(spec.add_labels)}" if spec.add_labels else ""]
    done = [d for d in done if d]
    return f" ({'; '.join(done)})" if done else ""


def in_working_time(calendar: Calendar | None, now: int) -> bool:
    """Whether a message may go out now under ``notify.quiet_outside``."""
    return calendar is None or calendar.working_seconds(now, now + 1) == 1


def next_working_instant(calendar: Calendar | None, now: int) -> int | None:
    """When held messages may next go out (``now`` if they may now)."""
    if in_working_time(calendar, now):
        return now
    assert calendar is not None
    try:
        return calendar.add_working_seconds(now, 1) - 1
    except ValueError:
        return None


# -- the URLs, and sending ----------------------------------------------------------


def _token_like(piece: str) -> bool:
    """A piece of a URL that may be a token: long, or mixing letters and digits
    (``oncall``, ``hooks.slack.com`` or ``127.0.0.1`` are not, ``T1JJ3T3L2`` is:
    Apprise puts tokens where a host would be, too)."""
    if "." in piece:
        return False  # a host name or an address
    return len(piece) >= 12 or (len(piece) >= 6 and any(c.isdigit() for c in piece)
                                and any(c.isalpha() for c in piece))


def url_secrets(url: str) -> list[str]:
    """What of an Apprise URL to redact: the URL, what follows its scheme, its
    password, and each token-like piece of it (user, path segments, query
    values); never a host name or plain words."""
    found = [url]
    if "://" in url:
        rest = url.split("://", 1)[1]
        found.append(rest)
        password = urlsplit(url).password
        found += [password] if password else []
        found += [p for p in re.split(r"[/:@?&=#,]", rest) if _token_like(p)]
    return found


def channel_url(notify: Notify, name: str, env: Mapping[str, str]) -> str:
    """A channel's Apprise URL from its variable or file (known to the redactor from now on)."""
    spec = notify.channels[name]
    url = read_reference(spec.url_env, spec.url_file, env, what="Apprise URL",
                         missing=f"notify.channels.{name}: set url_env or url_file")
    for piece in url_secrets(url):
        REDACTOR.add(piece)
    return url


def _quiet_apprise() -> logging.Logger:
    """Apprise's logger, kept from Python's last-resort stderr handler (its lines may hold a URL)."""
    logger = logging.getLogger("apprise")
    logger.propagate = False
    if not logger.handlers:
        logger.addHandler(logging.NullHandler())
    return logger


class AppriseSender:
    """Sends through Apprise; the channels' URLs are read on first use."""

    def __init__(self, notify: Notify, env: Mapping[str, str]) -> None:
        self.notify, self.env = notify, env
        self._urls: dict[str, str] = {}

    def _url(self, channel: str) -> str:
        if channel not in self._urls:
            try:
                self._urls[channel] = channel_url(self.notify, channel, self.env)
            except UserError as exc:
                raise SendError(f"channel {channel}: {exc}") from None
        return self._urls[channel]

    def send(self, message: Message) -> None:
        import apprise  # only a pass that sends needs it

        _quiet_apprise()
        box = apprise.Apprise()
        if not box.add(self._url(message.channel)):
            raise SendError(f"channel {message.channel}: Apprise cannot read its URL (see {APPRISE_DOCS})")
        with apprise.LogCapture(level=logging.WARNING, fmt="%(message)s") as captured:  # type: ignore[no-untyped-call]
            ok = box.notify(title=message.title, body=message.body)
        if not ok:
            lines = [ln.strip() for ln in captured.getvalue().splitlines() if ln.strip()]
            why = REDACTOR(lines[-1])[:300] if lines else "Apprise reported a failure"
            raise SendError(f"channel {message.channel}: sending failed: {why}")


def check_channels(policy: Policy, env: Mapping[str, str]) -> list[str]:
    """``check --online``'s lines for the channels: each secret set and each URL one
    Apprise can read.  Sends nothing, and never shows a URL."""
    if not policy.notify.channels:
        return []
    import apprise

    _quiet_apprise()
    out = []
    for name in policy.notify.channels:
        try:
            url = channel_url(policy.notify, name, env)
        except UserError as exc:
            out.append(f"channel {name}: {exc}")
            continue
        if apprise.Apprise.instantiate(url) is None:
            out.append(f"channel {name}: its URL is not one Apprise can read: check the scheme and the parts "
                       f"it needs ({APPRISE_DOCS})")
    return out
