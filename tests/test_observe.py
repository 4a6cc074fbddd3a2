"""Metrics (node-exporter textfile, /metrics) and logs (plain, JSON) of the sync job."""

from __future__ import annotations

import io
import json
import logging
import signal
import socket
import subprocess
import sys
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from sla_sync.observe import LOGGER, add_secret, configure_logging

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "sla_sync.cli"]
NOW = "2026-11-03T12:00:00Z"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture
def setup(redmine_cli: tuple[Any, Path, dict[str, str]]) -> tuple[Any, Path, dict[str, str]]:
    redmine = redmine_cli[0]
    # one P1 issue 28 h old (everything breached, three steps), one fresh P3 issue
    redmine.create_issue("Checkout down", priority="Urgent", created_at=at("2026-11-02T08:00:00"))
    redmine.create_issue("Typo", priority="Normal", created_at=at("2026-11-03T09:00:00"))
    return redmine_cli


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return found[(name, frozenset({"policy": "acme-support", **labels}.items()))]


def test_run_writes_a_metrics_textfile(setup: Any, tmp_path: Path) -> None:
    _, policy, env = setup
    prom = tmp_path / "sla_sync.prom"
    done = subprocess.run([*CLI, "run", str(policy), "--now", NOW, "--state", str(tmp_path / "s.sqlite"),
                           "--metrics-file", str(prom)], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    found = samples(prom.read_text())
    assert value(found, "sla_sync_issues", level="P1", metric="resolution", state="breached") == 1
    assert value(found, "sla_sync_issues", level="P3", metric="first_response", state="running") == 1
    assert value(found, "sla_sync_writes_total", kind="due_date") == 2
    assert value(found, "sla_sync_writes_total", kind="comment") == 1  # step 3 (backlog_steps: last marks 1 and 2)
    assert value(found, "sla_sync_issues_fetched") == 2
    assert value(found, "sla_sync_last_success_timestamp_seconds") > 0
    assert value(found, "sla_sync_pass_duration_seconds") > 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_watch_serves_metrics_and_json_logs_carry_run_and_issue(setup: Any, tmp_path: Path) -> None:
    redmine, policy, env = setup
    port = free_port()
    proc = subprocess.Popen(
        [*CLI, "watch", str(policy), "--every", "1h", "--now", NOW, "--state", str(tmp_path / "s.sqlite"),
         "--metrics-port", str(port), "--metrics-addr", "127.0.0.1", "--log-format", "json"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    lines = []
    try:
        assert proc.stderr is not None
        for line in proc.stderr:  # until the pass's summary line
            lines.append(line)
            if "issues fetched" in line:
                break
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30).read().decode()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    found = samples(body)
    assert value(found, "sla_sync_issues", level="P1", metric="first_response", state="breached") == 1
    assert value(found, "sla_sync_writes_total", kind="add_labels") == 2
    records = [json.loads(line) for line in lines]
    assert {r["run_id"] for r in records} and None not in {r["run_id"] for r in records}
    assert len({r["run_id"] for r in records}) == 1
    assert {r["issue"] for r in records if r["message"].startswith("wrote")} == {"1", "2"}
    assert all(r["issue"] for r in records)  # "-" for lines about the whole pass
    everything = "".join(lines) + body
    assert redmine.instance.admin_api_key not in everything


def test_log_lines_never_show_a_known_secret() -> None:
    stream = io.StringIO()
    configure_logging("plain", stream=stream)
    add_secret("s3cr3t-token-value")
    logging.getLogger(LOGGER).warning("GET https://x/api?key=%s failed", "s3cr3t-token-value",
                                      extra={"run_id": "r1", "policy": "p", "issue": "7"})
    line = stream.getvalue()
    assert "s3cr3t-token-value" not in line
    assert line.strip().endswith("run=r1 policy=p issue=7 GET https://x/api?key=*** failed")
