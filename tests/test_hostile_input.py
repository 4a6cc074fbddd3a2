"""Hostile or mistaken input around the tracker secret: an API key file or variable
that holds more than the key is refused with a message that names where the key was
looked for and never shows it.

A key file may end with one line break (``echo KEY > file`` writes one); anything
else around or inside the key (more lines, spaces, tabs, a lone carriage return) is
a mistake that would otherwise reach an HTTP header, and is refused.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sla_sync.adapters.base import read_secret

from sla_sync.errors import UserError
from sla_sync.schema import TrackerSpec

TOKEN = "tok-secret-1"
SECOND = "second-line-2"


def spec(**secret: str) -> TrackerSpec:
    return TrackerSpec(kind="redmine", url="http://127.0.0.1:9", project="support", **secret)


@pytest.mark.parametrize("content", [TOKEN, TOKEN + "\n", TOKEN + "\r\n"], ids=["bare", "newline", "crlf"])
def test_an_api_key_file_may_end_with_one_line_break(tmp_path: Path, content: str) -> None:
    key = tmp_path / "key"
    key.write_bytes(content.encode())
    assert read_secret(spec(api_key_file=str(key)), {}) == TOKEN


BAD_KEYS = [
    # (id, content of the file or the variable)
    ("two_lines", f"{TOKEN}\n{SECOND}\n"),
    ("two_lines_without_final_newline", f"{TOKEN}\n{SECOND}"),
    ("two_line_breaks", f"{TOKEN}\n\n"),
    ("inner_space", f"{TOKEN} {SECOND}"),
    ("leading_space", f" {TOKEN}"),
    ("trailing_tab", f"{TOKEN}\t"),
    ("lone_carriage_return", f"{TOKEN}\r"),
]


@pytest.mark.parametrize("content", [b[1] for b in BAD_KEYS], ids=[b[0] for b in BAD_KEYS])
def test_an_api_key_file_with_more_than_the_key_is_refused_without_showing_it(tmp_path: Path, content: str) -> None:
    key = tmp_path / "key"
    key.write_bytes(content.encode())
    with pytest.raises(UserError) as caught:
        read_secret(spec(api_key_file=str(key)), {})
    message = str(caught.value)
    assert str(key) in message and "one line" in message
    assert TOKEN not in message and SECOND not in message


@pytest.mark.parametrize("content", [b[1] for b in BAD_KEYS], ids=[b[0] for b in BAD_KEYS])
def test_an_api_key_variable_follows_the_same_rule(content: str) -> None:
    with pytest.raises(UserError) as caught:
        read_secret(spec(api_key_env="SLA_TEST_KEY"), {"SLA_TEST_KEY": content})
    message = str(caught.value)
    assert "SLA_TEST_KEY" in message and "one line" in message
    assert TOKEN not in message and SECOND not in message


@pytest.mark.parametrize("content", [TOKEN, TOKEN + "\n", TOKEN + "\r\n"], ids=["bare", "newline", "crlf"])
def test_an_api_key_variable_may_end_with_one_line_break(content: str) -> None:
    assert read_secret(spec(api_key_env="SLA_TEST_KEY"), {"SLA_TEST_KEY": content}) == TOKEN


def test_a_bad_key_variable_is_not_silently_replaced_by_the_key_file(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text(TOKEN + "\n")
    with pytest.raises(UserError, match="SLA_TEST_KEY"):
        read_secret(spec(api_key_env="SLA_TEST_KEY", api_key_file=str(key)), {"SLA_TEST_KEY": f"{TOKEN}\n{SECOND}"})


POLICY = """\
name: hostile
tracker:
  kind: redmine
  url: http://127.0.0.1:9
  project: support
  api_key_file: {key}
calendars:
  always: {{timezone: UTC, hours: 24x7}}
levels:
  P1: {{calendar: always, first_response: 30m}}
classify:
  - level: P1
"""


@pytest.mark.parametrize("command", ["plan", "run"])
def test_a_two_line_key_file_stops_the_pass_with_exit_2_and_never_shows_the_key(tmp_path: Path, command: str) -> None:
    key = tmp_path / "key"
    key.write_text(f"{TOKEN}\n{SECOND}\n")
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY.format(key=key))
    done = subprocess.run(
        [sys.executable, "-m", "sla_sync.cli", command, str(policy), "--state", str(tmp_path / "s.sqlite"),
         "--now", "2026-11-02T10:00:00Z"],
        capture_output=True, text=True, timeout=60,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert "Traceback" not in output
    assert TOKEN not in output and SECOND not in output
    assert [line for line in done.stderr.splitlines() if str(key) in line and "one line" in line], done.stderr
