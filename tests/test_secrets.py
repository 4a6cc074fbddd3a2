"""Secrets stay in: every form of the token is redacted at every exit.

A tracker whose error body echoes the request's headers (some proxies and
gateways do) puts the token, as sent, into the error message: raw, in Basic
authentication (Jira Cloud: ``base64(e-mail:token)``) or URL-encoded.  A whole
``run`` against such a tracker must leave it in none of: stdout, stderr (the log
lines, plain and JSON), the ``plan --format json`` output, the metrics file and
the state store.
"""

from __future__ import annotations

import base64
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from sla_sync.redact import Redactor, forms
from tests.fakes.http import Fault
from tests.fakes.jira_fake import JiraFake
from tests.test_jira_cli import CLI, NOW, at, build, policy_file

TOKEN = "jira-cli-test-token"  # what tests.test_jira_cli.build() makes the fake accept
EMAIL = "sla-bot@example.com"
BASIC = base64.b64encode(f"{EMAIL}:{TOKEN}".encode()).decode()


def test_every_form_of_a_secret_is_known() -> None:
    known = forms("s3cr/et+key", "me@example.com")
    assert {"s3cr/et+key", quote("s3cr/et+key", safe=""), "s3cr%2Fet%2Bkey",
            base64.b64encode(b"me@example.com:s3cr/et+key").decode()} <= known


@pytest.mark.parametrize(
    "text",
    [f"token {TOKEN} here", f"Authorization: Basic {BASIC}", f"url?key={quote(TOKEN, safe='')}",
     f"Bearer {TOKEN}", f"{{'authorization': 'Basic {BASIC}'}}"],
)
def test_the_redactor_blanks_each_form(text: str) -> None:
    redact = Redactor()
    redact.add(TOKEN, EMAIL)
    cleaned = redact(text)
    assert TOKEN not in cleaned and BASIC not in cleaned and quote(TOKEN, safe="") not in cleaned
    assert "***" in cleaned


@pytest.fixture
def echoing() -> Iterator[JiraFake]:
    fake = build()
    yield fake
    fake.close()


def leaks(text: str) -> list[str]:
    return [name for name, form in (("raw", TOKEN), ("basic", BASIC), ("url-encoded", quote(TOKEN, safe="")))
            if form in text]


def test_a_tracker_echoing_the_headers_leaks_the_token_nowhere(echoing: JiraFake, tmp_path: Path) -> None:
    echoing.create_issue("SD", "Checkout down", created=at("2026-11-02T08:00:00"), by="erin", priority="Highest")
    policy = policy_file(echoing, tmp_path)
    state, metrics = tmp_path / "state.sqlite", tmp_path / "metrics.prom"
    env = {**os.environ, "JIRA_USER": EMAIL, "JIRA_API_TOKEN": TOKEN}

    def sla_sync(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=120, check=False)
        assert "Traceback" not in done.stderr, done.stderr
        return done

    echoing.fail_next(Fault(kind="echo", status=400, method="PUT"), times=20)  # every write: refused, echoed
    echoing.fail_next(Fault(kind="echo", status=400, method="POST"), times=20)
    run = sla_sync("run", str(policy), "--now", NOW, "--state", str(state), "--metrics-file", str(metrics),
                   "--log-format", "json")
    assert run.returncode == 1, run.stderr  # the writes failed, and said so
    assert "bad request" in run.stdout + run.stderr  # the echoed error did reach the output...
    plain = sla_sync("run", str(policy), "--now", NOW, "--state", str(state))
    echoing.fail_next(Fault(kind="echo", status=400, method="GET"), times=50)
    failed_fetch = sla_sync("plan", str(policy), "--now", NOW, "--state", str(state), "--format", "json")
    assert failed_fetch.returncode == 1 and "bad request" in failed_fetch.stderr

    outputs = {
        "run stdout": run.stdout, "run stderr (json logs)": run.stderr,
        "run stdout (plain)": plain.stdout, "run stderr (plain logs)": plain.stderr,
        "plan stdout": failed_fetch.stdout, "plan stderr": failed_fetch.stderr,
        "metrics file": metrics.read_text(),
        "state store": state.read_bytes().decode("latin-1"),
    }
    assert {name: leaks(text) for name, text in outputs.items() if leaks(text)} == {}  # ...without the token
