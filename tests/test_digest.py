"""Digests: when one is due (pure), what it says (pure), that a pass sends each once,
and ``sla-sync digest`` end to end: the GitLab fake over real HTTP and a local SMTP
server (aiosmtpd) that receives the mail Apprise sends.

Dates: 2026-12-02 is a Wednesday; Berlin is on CET (UTC+1) in December, so its
09:00 is 08:00 UTC.  Berlin moves to CEST on Sunday 2026-03-29 and back on Sunday
2026-10-25.  New York is on EST (UTC-5) from 1 November 2026.
"""

from __future__ import annotations

import email
import os
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import Message as MailMessage
from pathlib import Path
from typing import Any

import pytest

from sla_sync.digest import digest_message, due_instant, schedule_key, send_due_digests
from sla_sync.model import IssueSla, SlaState, State
from sla_sync.notify import Message, SendError
from sla_sync.plan import IssuePlan
from sla_sync.policy import Digest, load_policy, parse_policy
from sla_sync.redact import REDACTOR
from sla_sync.state import Store
from sla_sync.sync import Outcome, PassResult
from tests.fakes.gitlab_fake import DEVELOPER, GUEST, MAINTAINER, GitLabFake
from tests.support import HOUR, MINUTE, calendar, ts, weekdays
from tests.test_gitlab_cli import sla_sync  # the same child-process runner

ROOT = Path(__file__).resolve().parent.parent

OFFICE = calendar("Europe/Berlin", weekdays("09:00-17:00"), holidays=["2026-12-24", "2026-12-25"])
WEEKDAYS_9 = Digest(1, "support-mail", "0 9 * * mon-fri", "office", OFFICE)


def digest(cron: str, *, in_berlin: bool = True) -> Digest:
    return Digest(1, "support-mail", cron, "office" if in_berlin else None, OFFICE if in_berlin else None)


# -- when a digest is due ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "schedule", "last_sent_for", "now", "expected"),
    [
        ("at the scheduled instant itself", WEEKDAYS_9, "2026-12-01T08:00:00Z", "2026-12-02T08:00:00Z",
         "2026-12-02T08:00:00Z"),
        ("a minute before it, nothing new", WEEKDAYS_9, "2026-12-01T08:00:00Z", "2026-12-02T07:59:00Z", None),
        ("missed at 09:00, a pass at 15:00 still sends it", WEEKDAYS_9, "2026-12-01T08:00:00Z",
         "2026-12-02T14:00:00Z", "2026-12-02T08:00:00Z"),
        ("already sent: not again", WEEKDAYS_9, "2026-12-02T08:00:00Z", "2026-12-02T14:00:00Z", None),
        ("two instants passed (Tuesday's and Wednesday's): only the latest", WEEKDAYS_9, "2026-11-30T08:00:00Z",
         "2026-12-02T10:00:00Z", "2026-12-02T08:00:00Z"),
        ("missed yesterday, before today's: yesterday's is still within its period", WEEKDAYS_9,
         "2026-11-30T08:00:00Z", "2026-12-02T07:00:00Z", "2026-12-01T08:00:00Z"),
        ("never sent: the latest one", WEEKDAYS_9, None, "2026-12-02T10:00:00Z", "2026-12-02T08:00:00Z"),
        ("Friday's, missed, is sent on Saturday: the next is Monday", WEEKDAYS_9, "2026-12-03T08:00:00Z",
         "2026-12-05T10:00:00Z", "2026-12-04T08:00:00Z"),
        ("nothing on Sunday once Friday's went", WEEKDAYS_9, "2026-12-04T08:00:00Z", "2026-12-06T10:00:00Z", None),
        ("a holiday of the calendar is skipped", WEEKDAYS_9, "2026-12-23T08:00:00Z", "2026-12-24T10:00:00Z", None),
        ("...and the day before it is a period old by then", WEEKDAYS_9, None, "2026-12-24T10:00:00Z", None),
        ("the next working day's is sent", WEEKDAYS_9, "2026-12-23T08:00:00Z", "2026-12-28T08:30:00Z",
         "2026-12-28T08:00:00Z"),
        ("without a calendar: UTC", digest("0 9 * * *", in_berlin=False), "2026-12-01T09:00:00Z",
         "2026-12-02T09:00:00Z", "2026-12-02T09:00:00Z"),
        ("09:00 stays 09:00 local when DST begins (07:00 UTC)", digest("0 9 * * *"), "2026-03-28T08:00:00Z",
         "2026-03-29T07:00:00Z", "2026-03-29T07:00:00Z"),
        ("...and is not due at the winter's 08:00 UTC before it", digest("0 9 * * *"), "2026-03-28T08:00:00Z",
         "2026-03-29T06:59:00Z", None),
        ("02:30, skipped by the spring-forward gap, fires when it ends (03:00 CEST)", digest("30 2 * * *"),
         "2026-03-28T01:30:00Z", "2026-03-29T01:10:00Z", "2026-03-29T01:00:00Z"),
        ("02:30, repeated by the fall-back hour, counts once (at its first occurrence)", digest("30 2 * * *"),
         "2026-10-25T00:30:00Z", "2026-10-25T01:45:00Z", None),
        ("...and a pass in the repeated hour sends the first one if it was missed", digest("30 2 * * *"),
         "2026-10-24T00:30:00Z", "2026-10-25T01:45:00Z", "2026-10-25T00:30:00Z"),
        ("a date that never comes (30 February): never due", digest("0 9 30 2 *"), None, "2026-12-02T10:00:00Z",
         None),
    ],
    ids=lambda v: v if isinstance(v, str) and not v[:1].isdigit() else "",
)
def test_the_digest_due_is_the_latest_scheduled_one_not_yet_sent(
    case: str, schedule: Digest, last_sent_for: str | None, now: str, expected: str | None
) -> None:
    last = ts(last_sent_for) if last_sent_for else None
    got = due_instant(schedule, last, ts(now))
    assert got == (ts(expected) if expected else None)


def test_a_pass_after_each_other_pass_never_sends_twice_for_one_instant() -> None:
    sent: list[int] = []
    last: int | None = ts("2026-12-18T08:00:00Z")  # Friday's went
    for now in range(ts("2026-12-21T00:00:00Z"), ts("2026-12-29T00:00:00Z"), 20 * MINUTE):  # Christmas week
        due = due_instant(WEEKDAYS_9, last, now)
        if due is not None:
            sent.append(due)
            last = due
    assert sent == [ts(f"2026-12-{d}T08:00:00Z") for d in (21, 22, 23, 28)]


# -- what a digest says --------------------------------------------------------------------

POLICY = parse_policy("""
name: support
tracker: {kind: jira, url: "https://jira.example.com/", project: SUP, api_key_env: JIRA_TOKEN}
calendars:
  always: {timezone: UTC, hours: 24x7}
  office:
    timezone: Europe/Berlin
    hours: {mon: ["09:00-17:00"], tue: ["09:00-17:00"], wed: ["09:00-17:00"], thu: ["09:00-17:00"],
            fri: ["09:00-17:00"]}
    holidays: ["2026-12-24", "2026-12-25"]
levels:
  P1: {calendar: always, first_response: 1h, resolution: 8h}
  P2: {calendar: always, first_response: 2h, resolution: 24h}
classify:
  - level: P1
notify:
  channels:
    support-mail: {url_env: SUPPORT_MAIL_URL}
digest:
  - channel: support-mail
    at: "0 9 * * mon-fri"
    calendar: office
""")
NOW = ts("2026-12-02T14:00:00Z")  # 15:00 in Berlin


def metric(name: str, state: State, target: int, remaining: int, *, due: str | None = None,
           stopped: str | None = None, at_risk: bool = False) -> SlaState:
    at = ts(due) if due else None
    return SlaState(name, state, at_risk, target, target - remaining, remaining, at,
                    at if state is State.BREACHED else None, ts(stopped) if stopped else None)


def outcome(key: str, title: str, level: str, *metrics: SlaState, assignee: str | None = None) -> Outcome:
    sla = IssueSla(key, level, {m.metric: m for m in metrics}, 1, "UTC")
    return Outcome(key, sla, IssuePlan(key, level), title=title, assignee=assignee)


MET = metric("first_response", State.MET, HOUR, 30 * MINUTE, stopped="2026-12-01T10:30:00Z")
OUTCOMES = [
    outcome("SUP-1", "Checkout down", "P1", MET,
            metric("resolution", State.BREACHED, 8 * HOUR, -4 * HOUR, due="2026-12-02T10:00:00Z"),
            assignee="alice"),
    outcome("SUP-2", "Login slow", "P2",  # breached at 00:30 in Berlin: today there
            metric("first_response", State.BREACHED, 2 * HOUR, -(14 * HOUR + 30 * MINUTE),
                   due="2026-12-01T23:30:00Z"),
            metric("resolution", State.RUNNING, 24 * HOUR, HOUR, due="2026-12-02T16:00:00Z", at_risk=True)),
    outcome("SUP-3", "Export fails", "P1", MET,
            metric("resolution", State.RUNNING, 8 * HOUR, 90 * MINUTE, due="2026-12-02T15:30:00Z", at_risk=True),
            assignee="bob"),
    outcome("SUP-4", "Answered late", "P2",  # breached today, but answered: open, not listed
            metric("first_response", State.BREACHED, 2 * HOUR, -HOUR, due="2026-12-02T09:00:00Z",
                   stopped="2026-12-02T10:00:00Z"),
            metric("resolution", State.RUNNING, 24 * HOUR, 20 * HOUR, due="2026-12-03T10:00:00Z")),
    outcome("SUP-5", "Closed late", "P1",  # resolved: neither listed nor counted
            metric("first_response", State.MET, HOUR, 10 * MINUTE, stopped="2026-12-02T01:00:00Z"),
            metric("resolution", State.BREACHED, 8 * HOUR, -HOUR, due="2026-12-02T09:00:00Z",
                   stopped="2026-12-02T10:00:00Z")),
    outcome("SUP-6", "Waiting for the customer", "P1", MET,
            metric("resolution", State.PAUSED, 8 * HOUR, 30 * MINUTE)),
    outcome("SUP-7", "Payments retry", "P1", MET,
            metric("resolution", State.RUNNING, 8 * HOUR, HOUR, due="2026-12-02T15:00:00Z", at_risk=True),
            assignee="carol"),
]


def test_the_digest_lists_breached_then_at_risk_soonest_first_with_the_days_counts() -> None:
    message = digest_message(POLICY, OUTCOMES, NOW, "support-mail", OFFICE)
    assert message.channel == "support-mail"
    assert message.title == "[support] SLA digest 2026-12-02: 2 at risk, 2 breached"
    assert message.body.splitlines() == [
        "Breached (2), the longest breached first:",
        "- SUP-2 Login slow [P2]: first_response 14h30m over (target 2h), resolution 1h left of 24h, "
        "due 2026-12-02 17:00 CET; unassigned",
        "  https://jira.example.com/browse/SUP-2",
        "- SUP-1 Checkout down [P1]: resolution 4h over (target 8h); assignee alice",
        "  https://jira.example.com/browse/SUP-1",
        "At risk (2), the soonest due first:",
        "- SUP-7 Payments retry [P1]: resolution 1h left of 8h, due 2026-12-02 16:00 CET; assignee carol",
        "  https://jira.example.com/browse/SUP-7",
        "- SUP-3 Export fails [P1]: resolution 1h30m left of 8h, due 2026-12-02 16:30 CET; assignee bob",
        "  https://jira.example.com/browse/SUP-3",
        "",
        "2026-12-02 (Europe/Berlin): 6 open, 2 at risk, 2 breached, 3 breached today.",
    ]


def test_an_empty_digest_says_so_and_its_day_is_the_calendars() -> None:
    quiet = [o for o in OUTCOMES if o.key in ("SUP-4", "SUP-5")]
    late = ts("2026-12-02T23:30:00Z")  # already 3 December in Berlin
    in_berlin = digest_message(POLICY, quiet, late, "support-mail", OFFICE)
    assert (in_berlin.title, in_berlin.body) == (
        "[support] SLA digest 2026-12-03: 0 at risk, 0 breached",
        "No issue at risk or breached.\n\n2026-12-03 (Europe/Berlin): 1 open, 0 at risk, 0 breached, "
        "0 breached today.")
    in_utc = digest_message(POLICY, quiet, late, "support-mail", None)
    assert (in_utc.title, in_utc.body) == (
        "[support] SLA digest 2026-12-02: 0 at risk, 0 breached",
        "No issue at risk or breached.\n\n2026-12-02 (UTC): 1 open, 0 at risk, 0 breached, 1 breached today.")


# -- a pass sends each due digest once -----------------------------------------------------


class Collector:
    """A ``Sender`` that keeps what it is given, or fails while ``failing`` is set."""

    def __init__(self) -> None:
        self.sent: list[Message] = []
        self.failing: str | None = None

    def send(self, message: Message) -> None:
        if self.failing:
            raise SendError(self.failing)
        self.sent.append(message)


def a_pass(at: str) -> PassResult:
    return PassResult("run-1", "support", "run", ts(at), outcomes=list(OUTCOMES))


def test_a_due_digest_is_sent_once_and_again_at_the_next_scheduled_instant(tmp_path: Path) -> None:
    store, sender = Store(str(tmp_path / "state.sqlite")), Collector()
    schedule = schedule_key(POLICY.digests[0])
    assert schedule == "support-mail 0 9 * * mon-fri in office"

    first = a_pass("2026-12-02T08:05:00Z")
    assert send_due_digests(POLICY, store, sender, first, first.now) == 1
    assert [m.title for m in sender.sent] == ["[support] SLA digest 2026-12-02: 2 at risk, 2 breached"]
    assert sender.sent[0].body == digest_message(POLICY, OUTCOMES, first.now, "support-mail", OFFICE).body
    assert store.digest_sent_for(POLICY.state_key, schedule) == ts("2026-12-02T08:00:00Z")

    later = a_pass("2026-12-02T16:00:00Z")
    assert send_due_digests(POLICY, store, sender, later, later.now) == 0
    assert len(sender.sent) == 1

    tomorrow = a_pass("2026-12-03T08:01:00Z")
    assert send_due_digests(POLICY, store, sender, tomorrow, tomorrow.now) == 1
    assert [m.title for m in sender.sent] == ["[support] SLA digest 2026-12-02: 2 at risk, 2 breached",
                                              "[support] SLA digest 2026-12-03: 2 at risk, 2 breached"]
    assert store.digest_sent_for(POLICY.state_key, schedule) == ts("2026-12-03T08:00:00Z")
    assert first.errors == later.errors == tomorrow.errors == []


def test_a_failed_send_is_an_error_recorded_nowhere_and_retried_next_pass(tmp_path: Path) -> None:
    store, sender = Store(str(tmp_path / "state.sqlite")), Collector()
    REDACTOR.add("hooks-secret-0451")
    sender.failing = "channel support-mail: sending failed: 421 for smtp://hooks-secret-0451@mail"
    failed = a_pass("2026-12-02T08:05:00Z")
    assert send_due_digests(POLICY, store, sender, failed, failed.now) == 0
    assert failed.errors == ["digest 1 (support-mail 0 9 * * mon-fri in office): channel support-mail: "
                             "sending failed: 421 for smtp://***@mail"]
    assert store.digest_sent_for(POLICY.state_key, schedule_key(POLICY.digests[0])) is None

    sender.failing = None
    retried = a_pass("2026-12-02T08:10:00Z")
    assert send_due_digests(POLICY, store, sender, retried, retried.now) == 1
    assert len(sender.sent) == 1 and retried.errors == []


# -- `sla-sync digest` end to end: GitLab fake, SMTP server --------------------------------

PROJECT = "platform/incidents"
TOKEN = "glpat-digest-test-secret-3"
CLI_NOW = "2026-11-03T12:00:00Z"  # Tuesday, 07:00 in New York
DIGEST_SECTIONS = """
notify:
  channels:
    support-mail: {url_env: SUPPORT_MAIL_URL}
    oncall-chat: {url_env: ONCALL_CHAT_URL}
digest:
  - channel: support-mail
    at: "0 9 * * mon-fri"
    calendar: oncall
"""


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


class Mailbox:
    """An aiosmtpd handler that keeps every message it receives."""

    def __init__(self) -> None:
        self.envelopes: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(envelope)
        return "250 OK"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    from aiosmtpd.controller import Controller

    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


@pytest.fixture
def gitlab(tmp_path: Path) -> Iterator[tuple[GitLabFake, Path]]:
    """The GitLab fake with three open issues, and the ready GitLab policy pointed at
    it with a notify section and a digest added."""
    fake = GitLabFake(now=at("2026-11-03T12:00:00"))
    for login in ("sla-sync", "alice", "erin", "oncall-lead", "incident-manager"):
        fake.add_user(login)
    fake.add_project(PROJECT, {"sla-sync": MAINTAINER, "alice": DEVELOPER, "oncall-lead": DEVELOPER,
                               "incident-manager": DEVELOPER, "erin": GUEST})
    fake.token_for("sla-sync", TOKEN)
    fake.start()
    # SEV1 on the 24x7 UTC calendar, 10h old, unanswered: every target breached
    fake.create_issue(PROJECT, "Checkout down", author="erin", created_at=at("2026-11-03T02:00:00"),
                      labels=["priority::1"], assignee="alice")
    # SEV2, 50 minutes old, unanswered: first response (1h) at risk (75 %), due 12:10 UTC
    fake.create_issue(PROJECT, "Payments retry", author="erin", created_at=at("2026-11-03T11:10:00"),
                      labels=["priority::2"])
    # SEV3, answered: nothing to list
    typo = fake.create_issue(PROJECT, "Typo on the status page", author="erin", created_at=at("2026-11-02T14:00:00"))
    fake.add_note(PROJECT, typo, "Thanks, we will fix it", by="alice", at=at("2026-11-02T14:30:00"))
    text = (ROOT / "policies" / "gitlab-incidents.yaml").read_text()
    assert "url: https://gitlab.example.com" in text and "\nnotify:" not in text and "\ndigest:" not in text
    policy = tmp_path / "gitlab-incidents.yaml"
    policy.write_text(text.replace("url: https://gitlab.example.com", f"url: {fake.url}") + DIGEST_SECTIONS)
    try:
        yield fake, policy
    finally:
        fake.close()



def plain_text(mail: MailMessage) -> str:
    """The HTML part's text (Apprise's plain part joins the lines)."""
    for part in mail.walk():
        if part.get_content_type() == "text/html":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return payload.decode(part.get_content_charset() or "utf-8")
    raise AssertionError("no HTML part")


def test_the_digest_command_sends_one_mail_and_records_nothing(
        gitlab: tuple[GitLabFake, Path], smtp: tuple[Mailbox, int], tmp_path: Path) -> None:
    fake, policy = gitlab
    box, port = smtp
    state = str(tmp_path / "state.sqlite")
    env = {**os.environ, "GITLAB_TOKEN": TOKEN,
           "SUPPORT_MAIL_URL": f"mailto://127.0.0.1:{port}?from=sla@example.com&to=lead@example.com"}
    title = "[platform-incidents] SLA digest 2026-11-03: 1 at risk, 1 breached"
    link = f"{fake.url}/{PROJECT}/-/issues"

    shown = sla_sync(env, "digest", str(policy), "--channel", "support-mail", "--now", CLI_NOW, "--state", state)
    assert shown.stdout.splitlines() == [
        title,
        "",
        "Breached (1), the longest breached first:",
        "- 1 Checkout down [SEV1]: first_response 9h45m over (target 15m), workaround 8h over (target 2h), "
        "resolution 2h over (target 8h); assignee alice",
        f"  {link}/1",
        "At risk (1), the soonest due first:",
        "- 2 Payments retry [SEV2]: first_response 10m left of 1h, due 2026-11-03 07:10 EST; unassigned",
        f"  {link}/2",
        "",
        # Checkout down breached its resolution at 10:00 UTC, 05:00 in New York: today there;
        # its first response and workaround breached on the 2nd, New York time.
        "2026-11-03 (America/New_York): 3 open, 1 at risk, 1 breached, 1 breached today.",
    ]
    assert box.envelopes == [] and fake.writes == 0

    sent = sla_sync(env, "digest", str(policy), "--channel", "support-mail", "--now", CLI_NOW, "--state", state,
                    "--send")
    assert sent.stdout == shown.stdout
    assert sent.stderr.splitlines()[-1] == "digest sent to support-mail"
    assert len(box.envelopes) == 1
    envelope = box.envelopes[0]
    assert (envelope.mail_from, envelope.rcpt_tos) == ("sla@example.com", ["lead@example.com"])
    mail = email.message_from_bytes(envelope.content)
    assert mail["Subject"] == title
    text = plain_text(mail)
    assert "1 Checkout down [SEV1]" in text and "2 Payments retry [SEV2]" in text
    assert "Typo on the status page" not in text
    assert fake.writes == 0

    policy_obj = load_policy(policy)
    assert Store(state).digest_sent_for(policy_obj.state_key, schedule_key(policy_obj.digests[0])) is None


def test_the_digest_command_names_the_channels_it_knows(gitlab: tuple[GitLabFake, Path]) -> None:
    _, policy = gitlab
    done = sla_sync(dict(os.environ), "digest", str(policy), "--channel", "support-chat", code=2)
    assert done.stderr.strip() == ("sla-sync: --channel 'support-chat' is not a channel of the policy "
                                   "'platform-incidents': use one of oncall-chat, support-mail")


def test_a_digest_that_cannot_be_sent_is_one_line_and_exit_1(
        gitlab: tuple[GitLabFake, Path], tmp_path: Path) -> None:
    _, policy = gitlab
    env = {**os.environ, "GITLAB_TOKEN": TOKEN,
           "SUPPORT_MAIL_URL": f"mailto://127.0.0.1:{free_port()}?from=sla@example.com&to=lead@example.com"}
    done = sla_sync(env, "digest", str(policy), "--channel", "support-mail", "--now", CLI_NOW,
                    "--state", str(tmp_path / "state.sqlite"), "--send", code=1)
    assert done.stdout.startswith("[platform-incidents] SLA digest 2026-11-03")
    last = done.stderr.strip().splitlines()
    assert len(last) == 1 and last[0].startswith("sla-sync: channel support-mail: sending failed: ")


def test_a_channel_whose_url_is_not_set_is_a_settings_error_before_any_request(
        gitlab: tuple[GitLabFake, Path], tmp_path: Path) -> None:
    fake, policy = gitlab
    env = {k: v for k, v in os.environ.items() if k != "SUPPORT_MAIL_URL"}
    done = sla_sync({**env, "GITLAB_TOKEN": TOKEN}, "digest", str(policy), "--channel", "support-mail",
                    "--now", CLI_NOW, "--state", str(tmp_path / "state.sqlite"), "--send", code=2)
    assert done.stderr.strip() == ("sla-sync: channel support-mail: the environment variable SUPPORT_MAIL_URL "
                                   "is empty or unset: set it to the Apprise URL")
    assert done.stdout == "" and fake.by_method() == {}
