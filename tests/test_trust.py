"""Trust and scope (issue 9): what a policy file may not say, one state per policy,
odd answers, redirects, certificates and plain HTTP.

The trackers' own scoping and forged markers are tested with each adapter
(``test_redmine_scope.py``, ``test_gitlab_adapter.py``, ``test_jira_adapter.py``);
this module holds what is the same for every tracker kind, driven through the
command line (``python -m sla_sync.cli``) wherever the outcome is what a user sees.
"""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from sla_sync.errors import TrackerError, UserError
from sla_sync.policy import PolicyError, parse_policy
from sla_sync.state import Store
from sla_sync.sync import run_pass
from sla_sync.tracker import AdapterOptions, open_tracker
from tests.fakes.gitlab_fake import GitLabFake
from tests.fakes.jira_fake import JiraFake
from tests.fakes.memory import Memory, MemoryTracker
from tests.fakes.proxy import Answering, FaultProxy, Redirector
from tests.support import HOUR, run_cli, ts

TRACKERS = {
    "redmine": "tracker: {kind: redmine, url: 'https://r.example.com', project: support, api_key_env: K}\n",
    "gitlab": "tracker: {kind: gitlab, url: 'https://g.example.com', project: a/b, api_key_env: K}\n",
    "jira": "tracker: {kind: jira, url: 'https://j.example.com', project: SD, api_key_env: K}\n",
    "none": "# offline: no tracker\n",
}
BODY = """\
calendars:
  always: {timezone: UTC, hours: 24x7}
levels:
  P1: {calendar: always, resolution: 8h}
classify:
  - level: P1
"""


def policy_text(kind: str, tail: str) -> str:
    return "name: trust\n" + TRACKERS[kind] + BODY + tail


def problems(text: str) -> list[tuple[int, int, str]]:
    try:
        parse_policy(text, "p.yaml")
    except PolicyError as exc:
        return [(p.line, p.col, p.message) for p in exc.problems]
    return []


# -- label prefixes and step labels (12, 14) ---------------------------------------------

PREFIX = "writeback:\n  label_prefix: {value}\n"  # the value sits on line 10, column 17
STEP = "escalate:\n  - when: resolution breached\n    add_labels: {value}\n"  # the value: line 11, column 17


@pytest.mark.parametrize(("kind", "tail", "where", "words"), [
    ("gitlab", PREFIX.format(value='"sla::"'), (10, 17), ["scoped", "::"]),
    ("gitlab", PREFIX.format(value='"sla::x-"'), (10, 17), ["scoped"]),  # sla::x-P1, sla::x-at-risk: one scope
    ("gitlab", PREFIX.format(value='"sla,x:"'), (10, 17), ["comma"]),
    ("gitlab", STEP.format(value='["escalated,urgent"]'), (11, 18), ["comma", "escalated,urgent"]),
    ("gitlab", STEP.format(value='"escalated,urgent"'), (11, 17), ["comma"]),
    *[(kind, PREFIX.format(value='""'), (10, 17), ["empty"]) for kind in TRACKERS],
])
def test_check_rejects_a_label_the_tracker_would_mangle(kind: str, tail: str, where: tuple[int, int],
                                                        words: list[str]) -> None:
    found = [(line, col) for line, col, message in problems(policy_text(kind, tail))
             if all(w in message for w in words)]
    assert found == [where], problems(policy_text(kind, tail))


@pytest.mark.parametrize(("kind", "tail"), [
    ("redmine", PREFIX.format(value='"sla::"')),  # scoped labels are GitLab's
    ("jira", PREFIX.format(value='"sla::"')),
    ("none", PREFIX.format(value='"sla::"')),
    ("gitlab", PREFIX.format(value='"sla:"')),
    ("redmine", STEP.format(value='["escalated,urgent"]')),  # a comma is fine where labels are not split
    ("jira", STEP.format(value='["escalated,urgent"]')),
])
def test_check_accepts_labels_the_tracker_keeps_as_they_are(kind: str, tail: str) -> None:
    assert problems(policy_text(kind, tail)) == []


def test_check_names_the_scoped_prefix_at_file_line_col(tmp_path: Path) -> None:
    path = tmp_path / "incidents.yaml"
    path.write_text(policy_text("gitlab", PREFIX.format(value='"sla::"')))
    done = run_cli("check", str(path))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stdout.splitlines() if "label_prefix" in line]
    assert len(lines) == 1 and lines[0].startswith(f"{path}:10:17: writeback.label_prefix: "), done.stdout
    assert "exclusive" in lines[0]


# -- one state per policy: name and tracker (10) ------------------------------------------

SAME_NAME = """\
name: helpdesk
tracker:
  kind: memory
  url: {url}
  project: helpdesk
  api_key_env: SLA_SYNC_TEST_MEMORY_TOKEN
calendars:
  always: {{timezone: UTC, hours: 24x7}}
levels:
  P3: {{calendar: always, first_response: 8h, resolution: 80h}}
classify:
  - level: P3
"""


def test_two_policies_named_alike_on_two_trackers_keep_two_states(tmp_path: Path) -> None:
    trackers: dict[str, Memory] = {}
    policies = {}
    store = Store(str(tmp_path / "state.sqlite"))
    created = ts("2026-11-02T08:00:00Z")
    now = created + 50 * HOUR
    # the same key on both trackers, opened a day apart
    opened = {"memory://eu": created, "memory://us": created + 24 * HOUR}
    for url, at in opened.items():
        memory = Memory(users=("erin",), now=now)
        memory.create("Printer on fire", priority="Normal", by="erin", at=at)  # MEM-1
        policy = parse_policy(SAME_NAME.format(url=url), f"<{url}>")
        tracker = MemoryTracker(memory, url=url, project="helpdesk", secret=memory.token, options=AdapterOptions())
        result = run_pass(tracker, policy, store, now, apply=True, run_id=url)
        assert result.errors == [], result.errors
        trackers[url], policies[url] = memory, policy

    # resolution 80h after 08:00 on the 2nd is the 5th, 16:00; the US issue was opened a day later
    assert trackers["memory://eu"].issues["MEM-1"].due_date == "2026-11-05"
    assert trackers["memory://us"].issues["MEM-1"].due_date == "2026-11-06"
    assert policies["memory://eu"].state_key != policies["memory://us"].state_key
    assert store.cursor(policies["memory://eu"].state_key) is not None
    assert store.cursor(policies["memory://us"].state_key) is not None


@pytest.mark.parametrize("command", [["check"], ["run", "--state", "STATE"], ["watch", "--passes", "1",
                                                                              "--state", "STATE"]])
def test_two_files_with_one_name_in_one_invocation_are_refused(tmp_path: Path,
                                                              command: list[str]) -> None:
    first, second = tmp_path / "eu.yaml", tmp_path / "us.yaml"
    state = tmp_path / "state.sqlite"
    for path, host in ((first, "eu"), (second, "us")):
        path.write_text(policy_text("redmine", "").replace("r.example.com", f"{host}.example.invalid"))
    done = run_cli(*[str(state) if a == "STATE" else a for a in command], str(first), str(second))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    said = done.stdout + done.stderr
    line = next(line for line in said.splitlines() if "trust" in line and "name" in line)
    assert str(first) in line and str(second) in line, said
    assert not state.exists()  # refused before any pass: nothing was opened


# -- redirects to another host (7a) -------------------------------------------------------


def other_tracker(kind: str, request: pytest.FixtureRequest) -> tuple[Any, str, str, Any]:
    """A tracker that would accept the credentials, recording every request:
    (the server, its URL, the secret, a callback that closes it)."""
    if kind == "redmine":
        redmine = request.getfixturevalue("redmine")
        proxy = FaultProxy(redmine.instance.url)  # the real Redmine, behind a proxy that records
        return proxy, proxy.url, redmine.instance.admin_api_key, proxy.close
    if kind == "gitlab":
        gitlab = GitLabFake()
        gitlab.add_user("sla-sync")
        gitlab.add_project("support/helpdesk", {"sla-sync": 40})
        token = gitlab.token_for("sla-sync", "glpat-redirect-secret-0001")
        return gitlab, gitlab.start(), token, gitlab.close
    jira = JiraFake(cloud=False, token="jira-redirect-secret-0001")
    jira.add_project("SD")
    jira.start()
    return jira, jira.url, jira.token, jira.close


CREDENTIALS = {"redmine": "x-redmine-api-key", "gitlab": "private-token", "jira": "authorization"}
PROJECTS = {"redmine": "support", "gitlab": "support/helpdesk", "jira": "SD"}


def tracker_policy(kind: str, url: str) -> Any:
    return parse_policy(
        f"name: trust-{kind}\ntracker:\n  kind: {kind}\n  url: {url}\n  project: {PROJECTS[kind]}\n"
        "  api_key_env: SLA_SYNC_TEST_SECRET\n  timeout: 5\n  max_attempts: 3\n" + BODY, f"<{kind}>")


@pytest.mark.parametrize("status", [301, 302, 307])
@pytest.mark.parametrize("kind", ["redmine", "gitlab", "jira"])
def test_a_redirect_to_another_host_is_refused_and_the_credentials_stay_home(
        kind: str, status: int, request: pytest.FixtureRequest) -> None:
    other, other_url, secret, close = other_tracker(kind, request)
    other.record = []
    redirector = Redirector(other_url, status)
    try:
        tracker = open_tracker(tracker_policy(kind, redirector.url), {"SLA_SYNC_TEST_SECRET": secret},
                               sleep=lambda _s: None)
        with pytest.raises(TrackerError) as caught:
            tracker.fetch(None, {})
        assert isinstance(caught.value, UserError)  # a setting to fix: exit 2, never retried
        message = str(caught.value)
        here, there = redirector.url.removeprefix("http://"), other_url.removeprefix("http://")
        assert here in message and there in message and "redirect" in message, message
        assert secret not in message
        assert sum(redirector.counts.values()) == 1  # not retried
        leaked = [r.path for r in other.record if CREDENTIALS[kind] in r.headers]
        assert leaked == [], leaked
    finally:
        redirector.close()
        close()


# -- plain HTTP, private certificate authorities, proxies (7f, 7g) --------------------------


def cli_env(**extra: str) -> dict[str, str]:
    """The environment of a child ``sla-sync``: no proxy or CA settings of the machine's."""
    drop = {"REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY",
            "NO_PROXY", "http_proxy", "https_proxy", "all_proxy", "no_proxy"}
    return {**{k: v for k, v in os.environ.items() if k not in drop}, **extra}


def sla_sync(env: dict[str, str], *args: str) -> Any:
    done = subprocess.run([sys.executable, "-m", "sla_sync.cli", *args], env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert "Traceback" not in done.stderr, done.stderr
    return done


@pytest.fixture
def gitlab_fake() -> Iterator[GitLabFake]:
    gitlab = GitLabFake()
    gitlab.add_user("sla-sync")
    gitlab.add_user("erin")
    gitlab.add_project("support/helpdesk", {"sla-sync": 40, "erin": 10})
    gitlab.token_for("sla-sync", "glpat-trust-secret-0001")
    yield gitlab
    gitlab.close()


def test_a_token_sent_over_plain_http_to_another_host_is_warned_about_once(gitlab_fake: Any, tmp_path: Path) -> None:
    gitlab_fake.start()
    gitlab_fake.create_issue("support/helpdesk", "Down", author="erin", created_at=datetime(2026, 11, 2, tzinfo=UTC))
    path = tmp_path / "gitlab.yaml"
    # a host name that is not loopback; the "proxy" that carries the requests is the fake itself
    path.write_text("name: trust-gitlab\ntracker:\n  kind: gitlab\n  url: http://gitlab.example.com\n"
                    "  project: support/helpdesk\n  api_key_env: SLA_SYNC_TEST_SECRET\n  timeout: 5\n" + BODY)
    env = cli_env(SLA_SYNC_TEST_SECRET="glpat-trust-secret-0001", HTTP_PROXY=gitlab_fake.url)
    state = str(tmp_path / "state.sqlite")

    done = sla_sync(env, "watch", str(path), "--passes", "2", "--every", "1s", "--state", state,
                    "--now", "2026-11-02T12:00:00Z")

    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if "unencrypted" in line]
    assert len(warnings) == 1, done.stderr  # two passes, a dozen requests: one warning
    assert "gitlab.example.com" in warnings[0] and "https://" in warnings[0]
    assert "glpat-trust-secret-0001" not in done.stderr
    assert gitlab_fake.writes > 0  # the pass did go through the proxy


def test_plain_http_to_loopback_is_not_warned_about(gitlab_fake: Any, tmp_path: Path) -> None:
    url = gitlab_fake.start()
    path = tmp_path / "gitlab.yaml"
    path.write_text(f"name: trust-gitlab\ntracker:\n  kind: gitlab\n  url: {url}\n  project: support/helpdesk\n"
                    "  api_key_env: SLA_SYNC_TEST_SECRET\n  timeout: 5\n" + BODY)
    done = sla_sync(cli_env(SLA_SYNC_TEST_SECRET="glpat-trust-secret-0001"), "plan", str(path),
                    "--state", str(tmp_path / "s.sqlite"))
    assert done.returncode == 0, done.stderr
    assert "unencrypted" not in done.stderr


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key (made by the openssl command)."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True, timeout=60)
    return cert, key


@pytest.fixture
def tls_gitlab(gitlab_fake: Any, certificate: tuple[Path, Path]) -> Any:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    gitlab_fake.tls = context
    gitlab_fake.start()
    return gitlab_fake


@pytest.mark.parametrize("kind", ["redmine", "gitlab", "jira"])
def test_a_certificate_that_does_not_verify_is_not_retried_and_says_how_to_fix_it(
        kind: str, tls_gitlab: Any, tmp_path: Path) -> None:
    path = tmp_path / f"{kind}.yaml"
    path.write_text(f"name: trust-{kind}\ntracker:\n  kind: {kind}\n  url: {tls_gitlab.url}\n"
                    f"  project: {PROJECTS[kind]}\n  api_key_env: SLA_SYNC_TEST_SECRET\n  timeout: 5\n"
                    "  max_attempts: 3\n" + BODY)
    env = cli_env(SLA_SYNC_TEST_SECRET="glpat-trust-secret-0001")

    done = sla_sync(env, "plan", str(path), "--state", str(tmp_path / "s.sqlite"))

    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "certificate" in lines[0] and "REQUESTS_CA_BUNDLE" in lines[0] and "127.0.0.1" in lines[0], lines[0]
    assert "try again" not in lines[0]
    assert tls_gitlab.connections == 1  # one handshake: never retried


def test_requests_ca_bundle_makes_a_private_certificate_authority_trusted(tls_gitlab: Any, tmp_path: Path,
                                                                         certificate: tuple[Path, Path]) -> None:
    path = tmp_path / "gitlab.yaml"
    path.write_text(f"name: trust-gitlab\ntracker:\n  kind: gitlab\n  url: {tls_gitlab.url}\n"
                    "  project: support/helpdesk\n  api_key_env: SLA_SYNC_TEST_SECRET\n  timeout: 5\n" + BODY)
    env = cli_env(SLA_SYNC_TEST_SECRET="glpat-trust-secret-0001", REQUESTS_CA_BUNDLE=str(certificate[0]))
    done = sla_sync(env, "plan", str(path), "--state", str(tmp_path / "s.sqlite"))
    assert done.returncode == 0, done.stderr
    assert tls_gitlab.connections >= 1


# -- odd answers (8) ------------------------------------------------------------------------

ODD_BODIES = [b"{}", b"[]", b"null"]


@pytest.fixture(params=ODD_BODIES, ids=["object", "list", "null"])
def odd_server(request: pytest.FixtureRequest) -> Iterator[Answering]:
    server = Answering(request.param)
    yield server
    server.close()


def odd_policy(kind: str, url: str, tmp_path: Path) -> Path:
    path = tmp_path / f"{kind}.yaml"
    path.write_text(f"name: odd-{kind}\ntracker:\n  kind: {kind}\n  url: {url}\n  project: {PROJECTS[kind]}\n"
                    "  api_key_env: SLA_SYNC_TEST_SECRET\n  timeout: 5\n  max_attempts: 2\n" + BODY)
    return path


@pytest.mark.parametrize("command", [["plan"], ["run"], ["check", "--online"]], ids=["plan", "run", "check"])
@pytest.mark.parametrize("kind", ["redmine", "gitlab", "jira"])
def test_an_odd_answer_is_one_line_naming_the_request(kind: str, command: list[str], odd_server: Any,
                                                      tmp_path: Path) -> None:
    path = odd_policy(kind, odd_server.url, tmp_path)
    state = [] if command[0] == "check" else ["--state", str(tmp_path / "s.sqlite")]

    done = sla_sync(cli_env(SLA_SYNC_TEST_SECRET="odd-secret-0001"), *command, str(path), *state)

    assert done.returncode in (1, 2), done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    if command[0] == "check":
        lines = [line for line in lines if not line.endswith("policy files have problems")]
    assert len(lines) == 1, done.stderr
    body = odd_server.body.decode()
    assert f"answered {body}" in lines[0] and "odd-secret-0001" not in lines[0], lines[0]


@pytest.mark.parametrize("kind", ["redmine", "gitlab", "jira"])
def test_watch_logs_an_odd_answer_and_goes_on_to_the_next_pass(kind: str, odd_server: Any, tmp_path: Path) -> None:
    path = odd_policy(kind, odd_server.url, tmp_path)

    done = sla_sync(cli_env(SLA_SYNC_TEST_SECRET="odd-secret-0001"), "watch", str(path), "--passes", "2",
                    "--every", "1s", "--state", str(tmp_path / "s.sqlite"))

    assert done.returncode == 1, done.stderr
    failed = [line for line in done.stderr.splitlines() if "pass failed" in line]
    assert len(failed) == 2, done.stderr  # the first pass failed, the second one was made


@pytest.mark.parametrize("kind", ["redmine", "gitlab", "jira"])
def test_an_odd_answer_that_echoes_the_secret_never_shows_it(kind: str, tmp_path: Path) -> None:
    server = Answering(b'{"echo": "odd-secret-0001"}')
    try:
        path = odd_policy(kind, server.url, tmp_path)
        done = sla_sync(cli_env(SLA_SYNC_TEST_SECRET="odd-secret-0001"), "plan", str(path),
                        "--state", str(tmp_path / "s.sqlite"))
    finally:
        server.close()
    assert done.returncode == 1, done.stderr
    assert "odd-secret-0001" not in done.stderr and '"echo": "***"' in done.stderr, done.stderr
