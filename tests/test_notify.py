"""Notifications: a fired step's message, through Apprise, to a local webhook receiver.

Every tracker of the contract suite (the real Redmine, the GitLab and Jira fakes,
the in-memory tracker) runs the same passes; the messages arrive over real HTTP
at ``tests.fakes.receiver.Receiver`` through Apprise's ``json://`` and ``form://``
schemes.  The expected texts are written by hand from the policy: P1, resolution
8h on a 24x7 UTC calendar, an issue created at 08:00.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from sla_sync.calendar import utc_seconds
from sla_sync.notify import AppriseSender, Message, SendError, check_channels, step_message, url_secrets
from sla_sync.policy import parse_policy
from sla_sync.redact import REDACTOR
from sla_sync.state import Store
from sla_sync.sync import PassResult, run_pass
from sla_sync.upcoming import Upcoming
from tests.contract.harness import BODY
from tests.fakes.receiver import Receiver

KINDS = ["redmine", "gitlab", "jira", "memory"]
ONCALL_ENV, LEAD_ENV = "SLA_TEST_ONCALL_URL", "SLA_TEST_LEAD_URL"

NOTIFY_BODY = BODY.replace(
    "    watchers: [manager]\n", "    watchers: [manager]\n    notify: oncall\n"
).replace(
    '    comment: "SLA breached: escalated to the manager."\n',
    '    comment: "SLA breached: escalated to the manager."\n    notify: [oncall, lead]\n',
) + f"""
notify:
  channels:
    oncall: {{url_env: {ONCALL_ENV}}}
    lead: {{url_env: {LEAD_ENV}}}
"""
OFFICE = "  office:\n    timezone: UTC\n    hours: {mon: 09:00-17:00, tue: 09:00-17:00, wed: 09:00-17:00}\n"
QUIET_BODY = NOTIFY_BODY.replace("calendars:\n", "calendars:\n" + OFFICE, 1) + "  quiet_outside: office\n"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture(params=KINDS)
def harness(request: pytest.FixtureRequest) -> Any:
    return request.getfixturevalue(request.param)


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    hook = Receiver()
    monkeypatch.setenv(ONCALL_ENV, hook.url("json", "/oncall"))
    monkeypatch.setenv(LEAD_ENV, hook.url("form", "/lead"))
    yield hook
    hook.close()


def one_pass(harness: Any, store: Store, now: str, *, body: str = NOTIFY_BODY, apply: bool = True,
             sender: Any = None) -> PassResult:
    policy = harness.policy(body)
    chosen = sender if sender is not None else AppriseSender(policy.notify, os.environ)
    return run_pass(harness.tracker(policy), policy, store, utc_seconds(at(now)), apply=apply, run_id="t",
                    sender=chosen if apply else None)


def test_each_step_sends_its_message_once(harness: Any, receiver: Receiver, tmp_path: Path) -> None:
    store = Store(str(tmp_path / "state.sqlite"))
    key = harness.create_issue("Checkout down", priority="P1", created_at=at("2026-11-02T08:00:00"))
    name = harness.policy(NOTIFY_BODY).name
    link = harness.policy(NOTIFY_BODY).tracker.issue_url(key)
    assert (link is None) == (harness.kind == "memory")  # a plugin's tracker kind has no known page
    link = f"{link}\n" if link else ""

    # 13:00: 5h of 8h: step 1 (resolution 50 %) fires; only the oncall channel
    first = one_pass(harness, store, "2026-11-02T13:00:00")
    assert first.errors == []
    assert receiver.messages == [(
        "/oncall", f"[{name}] {key} resolution 3h left: step 1",
        f"{key}: Checkout down\n{link}level P1: resolution running, 3h left of 8h, due 2026-11-02T16:00:00Z\n"
        "escalation step 1: when resolution 50% (watchers manager)",
    )]
    assert [m.channel for m in first.sent] == ["oncall"]

    one_pass(harness, store, "2026-11-02T13:00:00")  # a quiet pass: nothing again
    one_pass(harness, store, "2026-11-02T14:00:00")
    assert len(receiver.messages) == 1

    # 17:00: 9h > 8h: step 2 fires, to both channels
    one_pass(harness, store, "2026-11-02T17:00:00")
    breached = (f"{key}: Checkout down\n{link}level P1: resolution breached, 1h over (target 8h)\n"
                "escalation step 2: when resolution breached (assigned to manager)")
    assert receiver.messages[1:] == [
        ("/oncall", f"[{name}] {key} resolution breached: step 2", breached),
        ("/lead", f"[{name}] {key} resolution breached: step 2", breached),
    ]
    one_pass(harness, store, "2026-11-02T17:30:00")
    assert len(receiver.messages) == 3


def test_plan_sends_nothing_and_shows_the_messages(harness: Any, receiver: Receiver, tmp_path: Path) -> None:
    key = harness.create_issue("Checkout down", priority="P1", created_at=at("2026-11-02T08:00:00"))
    result = one_pass(harness, Store(str(tmp_path / "state.sqlite")), "2026-11-02T13:00:00", apply=False)
    planned = {o.key: o.plan.notices for o in result.outcomes}
    assert [(n.step, n.channel) for n in planned[key]] == [(1, "oncall")]
    assert receiver.messages == []


def test_messages_wait_outside_working_time(memory: Any, receiver: Receiver, tmp_path: Path) -> None:
    """The office works 09:00-17:00 UTC: a step at 00:30 on Wednesday 2026-11-04 writes
    to the tracker at once; its message waits for 09:00 and carries that pass's figures."""
    store = Store(str(tmp_path / "state.sqlite"))
    key = memory.create_issue("Typo in invoice", priority="P3", created_at=at("2026-11-02T08:00:00"))  # 80h
    night = one_pass(memory, store, "2026-11-04T00:30:00", body=QUIET_BODY)  # 40.5h of 80h: step 1
    assert memory.watchers(key) == {"manager"}  # the tracker write did not wait
    assert receiver.messages == []
    assert night.quiet and [(n.key, n.step, n.channel) for n in night.waiting] == [(key, 1, "oncall")]
    assert night.upcoming == Upcoming(utc_seconds(at("2026-11-04T09:00:00")), key, "held messages go out")

    one_pass(memory, store, "2026-11-04T08:59:59", body=QUIET_BODY)
    assert receiver.messages == []
    one_pass(memory, store, "2026-11-04T09:00:00", body=QUIET_BODY)
    assert receiver.messages == [(
        "/oncall", f"[contract-memory] {key} resolution 31h left: step 1",
        f"{key}: Typo in invoice\nlevel P3: resolution running, 31h left of 80h, due 2026-11-05T16:00:00Z\n"
        "escalation step 1: when resolution 50% (watchers manager)",  # 09:00's figures, not 00:30's
    )]
    one_pass(memory, store, "2026-11-04T09:05:00", body=QUIET_BODY)
    assert len(receiver.messages) == 1


def test_a_failed_send_is_an_error_retried_next_pass(memory: Any, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    down = Receiver(status=503)
    monkeypatch.setenv(ONCALL_ENV, down.url("json", "/oncall"))
    monkeypatch.setenv(LEAD_ENV, down.url("form", "/lead"))
    store = Store(str(tmp_path / "state.sqlite"))
    key = memory.create_issue("Checkout down", priority="P1", created_at=at("2026-11-02T08:00:00"))
    try:
        failed = one_pass(memory, store, "2026-11-02T13:00:00")
        assert memory.watchers(key) == {"manager"}  # the tracker writes landed all the same
        assert failed.exit_code == 1
        assert [e.split(":")[0] for e in failed.errors] == [key]
        assert "channel oncall: sending failed" in failed.errors[0]
        assert ONCALL_ENV not in failed.errors[0] and str(down.port) not in failed.errors[0]
        down.status = 200
        again = one_pass(memory, store, "2026-11-02T13:05:00")
        assert again.errors == [] and [m.channel for m in again.sent] == ["oncall"]
        assert len(down.messages) == 2  # the refused one, then the retry
        one_pass(memory, store, "2026-11-02T13:10:00")
        assert len(down.messages) == 2
    finally:
        down.close()


class Killed(BaseException):
    """The process dies here (nothing after it runs, nothing catches it)."""


class DyingSender:
    """Delivers the message, then the process dies before anything else happens."""

    def __init__(self, inner: AppriseSender) -> None:
        self.inner = inner

    def send(self, message: Message) -> None:
        self.inner.send(message)
        raise Killed


def test_a_pass_killed_after_sending_never_sends_twice(memory: Any, receiver: Receiver, tmp_path: Path) -> None:
    store_path = str(tmp_path / "state.sqlite")
    key = memory.create_issue("Checkout down", priority="P1", created_at=at("2026-11-02T08:00:00"))
    policy = memory.policy(NOTIFY_BODY)
    with pytest.raises(Killed):
        one_pass(memory, Store(store_path), "2026-11-02T13:00:00",
                 sender=DyingSender(AppriseSender(policy.notify, os.environ)))
    assert len(receiver.messages) == 1
    later = one_pass(memory, Store(store_path), "2026-11-02T13:05:00")
    assert later.errors == [] and later.sent == []
    assert [m[1] for m in receiver.messages] == [f"[contract-memory] {key} resolution 3h left: step 1"]


def killed_after_the_write(memory: Any, body: str, store_path: str, now: str) -> None:
    """A pass whose process dies just after its first tracker write landed."""
    policy = memory.policy(body)
    tracker = memory.tracker(policy)
    real_apply = tracker.apply

    def apply_then_die(issue: str, changes: Any) -> None:
        real_apply(issue, changes)
        raise Killed

    tracker.apply = apply_then_die
    with pytest.raises(Killed):
        run_pass(tracker, policy, Store(store_path), utc_seconds(at(now)), apply=True,
                 run_id="t", sender=AppriseSender(policy.notify, os.environ))


def test_a_pass_killed_after_the_tracker_write_still_sends_once(memory: Any, receiver: Receiver,
                                                                  tmp_path: Path) -> None:
    """The write landed and the process died before it heard so: the history shows the
    step's marker was sla-sync's, so the next pass sends the message, once."""
    store_path = str(tmp_path / "state.sqlite")
    key = memory.create_issue("Checkout down", priority="P1", created_at=at("2026-11-02T08:00:00"))
    killed_after_the_write(memory, NOTIFY_BODY, store_path, "2026-11-02T13:00:00")
    assert receiver.messages == [] and memory.watchers(key) == {"manager"}
    later = one_pass(memory, Store(store_path), "2026-11-02T13:05:00")
    assert [o.plan.fired for o in later.outcomes] == [()]  # nothing fires again
    assert [m[1] for m in receiver.messages] == [f"[contract-memory] {key} resolution 2h55m left: step 1"]
    one_pass(memory, Store(store_path), "2026-11-02T13:10:00")
    assert len(receiver.messages) == 1


REPLY_NOTIFY = BODY.replace("levels:", """metrics:
  next_reply:
    start: [{comment: customer}]
    stop: [{comment: agent}]
    repeat: true
levels:""").replace("P1: {calendar: always, first_response: 30m, resolution: 8h}",
                    "P1: {calendar: always, first_response: 30m, next_reply: 1h, resolution: 80h}").replace(
    """escalate:
  - when: resolution 50%
    watchers: [manager]
  - when: resolution breached
    assign: manager
    comment: "SLA breached: escalated to the manager."
""", """escalate:
  - when: next_reply 50%
    watchers: [manager]
    notify: oncall
""") + f"""
notify:
  channels:
    oncall: {{url_env: {ONCALL_ENV}}}
"""


def test_a_step_on_a_repeating_metric_sends_once_per_cycle_even_after_a_kill(
        memory: Any, receiver: Receiver, tmp_path: Path) -> None:
    """Cycle 1's message goes out once; in cycle 2 the pass dies after the tracker
    write: the history shows the marker added in cycle 2, so the next pass sends
    cycle 2's message, once, and fires nothing again."""
    store_path = str(tmp_path / "state.sqlite")
    key = memory.create_issue("Checkout down", priority="P1", created_at=at("2026-11-02T08:00:00"))
    memory.comment(key, "Any news?", by="erin", public=True, at=at("2026-11-02T09:00:00"))
    one_pass(memory, Store(store_path), "2026-11-02T09:31:00", body=REPLY_NOTIFY)
    one_pass(memory, Store(store_path), "2026-11-02T09:35:00", body=REPLY_NOTIFY)
    assert [m[1] for m in receiver.messages] == [f"[contract-memory] {key} next_reply 29m left: step 1"]

    memory.comment(key, "On it.", by="alice", public=True, at=at("2026-11-02T09:40:00"))
    memory.comment(key, "Still down.", by="erin", public=True, at=at("2026-11-02T10:00:00"))
    one_pass(memory, Store(store_path), "2026-11-02T10:05:00", body=REPLY_NOTIFY)  # cycle 1's marker comes off
    assert "sla:escalated-1" not in memory.observe(key).labels
    killed_after_the_write(memory, REPLY_NOTIFY, store_path, "2026-11-02T10:31:00")
    assert "sla:escalated-1" in memory.observe(key).labels and len(receiver.messages) == 1
    later = one_pass(memory, Store(store_path), "2026-11-02T10:32:00", body=REPLY_NOTIFY)
    assert [o.plan.fired for o in later.outcomes] == [()]
    assert [m[1] for m in receiver.messages][1:] == [f"[contract-memory] {key} next_reply 28m left: step 1"]
    one_pass(memory, Store(store_path), "2026-11-02T10:40:00", body=REPLY_NOTIFY)
    assert len(receiver.messages) == 2


def test_backlog_mark_sends_nothing(memory: Any, receiver: Receiver, tmp_path: Path) -> None:
    key = memory.create_issue("Checkout down", priority="P1", created_at=at("2026-11-01T08:00:00"))
    body = NOTIFY_BODY + "writeback:\n  backlog_steps: mark\n"
    result = one_pass(memory, Store(str(tmp_path / "state.sqlite")), "2026-11-02T17:00:00", body=body)
    assert [o.plan.marked for o in result.outcomes] == [(1, 2)]
    assert memory.watchers(key) == set() and memory.observe(key).assignee is None
    assert receiver.messages == []


# -- the URLs: secrets, syntax, check --online ---------------------------------------------


def test_a_channel_url_is_a_secret_in_every_piece() -> None:
    url = "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ/#support"
    assert {"T1JJ3T3L2", "A1BRTD4JD", "TIiajkdnlazkcOXrIdevi7FQ", url} <= set(url_secrets(url))
    hook = "json://bot:s3cr3t-pass@hooks.example.com/api/abcdef123456"
    assert "s3cr3t-pass" in url_secrets(hook) and "hooks.example.com" not in url_secrets(hook)


def test_check_online_validates_urls_and_secrets_without_sending(tmp_path: Path) -> None:
    text = """
name: n
calendars: {utc: {timezone: UTC, hours: 24x7}}
levels: {P1: {calendar: utc, resolution: 8h}}
classify: [{level: P1}]
escalate: [{when: resolution 50%, notify: [good, bad, unset, missing_file]}]
notify:
  channels:
    good: {url_env: SLA_T_GOOD}
    bad: {url_env: SLA_T_BAD}
    unset: {url_env: SLA_T_UNSET}
    missing_file: {url_file: FILE}
""".replace("FILE", str(tmp_path / "nope"))
    policy = parse_policy(text)
    hook = Receiver()
    try:
        env = {"SLA_T_GOOD": hook.url(), "SLA_T_BAD": "nosuchscheme://token-abcdef-123456"}
        lines = check_channels(policy, env)
        assert hook.messages == []
    finally:
        hook.close()
    assert lines == [
        "channel bad: its URL is not one Apprise can read: check the scheme and the parts it needs "
        "(https://github.com/caronc/apprise/wiki)",
        "channel unset: the environment variable SLA_T_UNSET is empty or unset: set it to the Apprise URL",
        f"channel missing_file: cannot read the Apprise URL file {tmp_path / 'nope'}: No such file or directory",
    ]
    assert not any("token-abcdef-123456" in line for line in lines)


def test_a_send_error_never_shows_the_url() -> None:
    text = """
name: n
calendars: {utc: {timezone: UTC, hours: 24x7}}
levels: {P1: {calendar: utc, resolution: 8h}}
classify: [{level: P1}]
notify: {channels: {oncall: {url_env: SLA_T_URL}}}
"""
    policy = parse_policy(text)
    secret_url = "json://127.0.0.1:9/hook-Sup3rSecretPath"
    sender = AppriseSender(policy.notify, {"SLA_T_URL": secret_url})
    with pytest.raises(SendError) as caught:
        sender.send(Message("oncall", "t", "b"))
    assert "Sup3rSecretPath" not in str(caught.value)
    assert "Sup3rSecretPath" not in REDACTOR(f"echo {secret_url}")


def test_the_message_names_the_issue_level_metric_and_step() -> None:
    text = """
name: desk
tracker: {kind: jira, url: "https://acme.atlassian.net/", project: SD, api_key_env: T}
calendars: {utc: {timezone: UTC, hours: 24x7}}
levels: {P1: {calendar: utc, first_response: 30m}}
classify: [{level: P1}]
escalate: [{when: first_response 80%, assign: l2, notify: oncall}]
notify: {channels: {oncall: {url_env: U}}}
"""
    from sla_sync.model import IssueSla, SlaState, State

    policy = parse_policy(text)
    sla = IssueSla("SD-7", "P1", {"first_response": SlaState("first_response", State.RUNNING, True, 1800, 1500, 300,
                                                             1_793_610_300, None, None)})
    message = step_message(policy, "SD-7", "VPN down", sla, policy.steps[0], "oncall")
    assert message == Message(
        "oncall", "[desk] SD-7 first_response 5m left: step 1",
        "SD-7: VPN down\nhttps://acme.atlassian.net/browse/SD-7\n"
        "level P1: first_response running, 5m left of 30m, at risk, due 2026-11-02T09:05:00Z\n"
        "escalation step 1: when first_response 80% (assigned to l2)",
    )


class Collect:
    """A sender that keeps what it is given (the digest's channel here)."""

    def __init__(self, inner: AppriseSender) -> None:
        self.inner, self.digests = inner, []  # type: list[Message]

    def send(self, message: Message) -> None:
        if "SLA digest" in message.title:
            self.digests.append(message)
        else:
            self.inner.send(message)


@pytest.mark.parametrize("kind", ["redmine", "gitlab", "jira"])
def test_one_policy_with_notify_digest_sla_fields_and_backlog_steps(kind: str, request: pytest.FixtureRequest,
                                                                      receiver: Receiver, tmp_path: Path) -> None:
    """Issue 12's keys together in one policy, on each tracker: the breach step's message,
    the 09:00 digest, the time left (Redmine, Jira) or the health status (GitLab), and
    backlog_steps: last on an issue adopted with both steps due."""
    from tests.contract.harness import REMAINING_FIELD

    h = request.getfixturevalue(kind)
    field = "  health_status: true\n" if kind == "gitlab" else f"  remaining_field: {REMAINING_FIELD}\n"
    body = (NOTIFY_BODY + 'digest:\n  - {channel: lead, at: "0 9 * * *"}\n'
            + "writeback:\n  backlog_steps: last\n" + field)
    key = h.create_issue("Checkout down", priority="P1", created_at=at("2026-11-02T08:00:00"))
    policy = h.policy(body)
    sender = Collect(AppriseSender(policy.notify, os.environ))
    store = Store(str(tmp_path / "state.sqlite"))
    first = run_pass(h.tracker(policy), policy, store, utc_seconds(at("2026-11-03T09:30:00")), apply=True,
                     run_id="t", sender=sender)  # 25h30m: breached, both steps due at once
    assert first.errors == []
    assert [(o.plan.marked, o.plan.fired) for o in first.outcomes if o.key == key] == [((1,), (1, 2))]
    assert [(p, t) for p, t, _ in receiver.messages] == [  # step 2's message only: step 1 was marked
        ("/oncall", f"[{policy.name}] {key} resolution breached: step 2"),
        ("/lead", f"[{policy.name}] {key} resolution breached: step 2"),
    ]
    assert [m.title for m in sender.digests] == [f"[{policy.name}] SLA digest 2026-11-03: 0 at risk, 1 breached"]
    seen = h.observe(key)
    assert seen.assignee == "manager" and "manager" not in h.watchers(key)
    if kind == "gitlab":
        assert seen.health_status == "at_risk"
    else:
        assert float(seen.remaining or "nan") == -18  # 25h30m of 8h: 17h30m over, rounded down to whole hours
    again = run_pass(h.tracker(policy), policy, store, utc_seconds(at("2026-11-03T09:40:00")), apply=True,
                     run_id="t2", sender=sender)
    assert [o.key for o in again.outcomes if o.plan.changes] == [] and len(receiver.messages) == 2
    assert len(sender.digests) == 1
