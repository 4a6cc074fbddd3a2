"""Logs and Prometheus metrics of the sync job.

Logs: every record carries the run id, the policy and the issue key ("-" when it
is about the whole pass), as plain lines or JSON objects (``--log-format json``).
A redacting filter replaces any secret the process knows with ``***``, as a second
line of defence: no message is built with a secret in the first place.

Metrics (prometheus_client), per policy:

``sla_sync_issues{policy,level,metric,state}``
    issues by level and SLA state of each metric, as of the last pass;
``sla_sync_issues_at_risk{policy,level,metric}``
    running metrics flagged at risk;
``sla_sync_writes_total{policy,kind}``
    changes written, by kind (due_date, add_labels, comment...);
``sla_sync_errors_total{policy,kind}``
    errors by kind: ``issue`` (one issue's write failed), ``fetch`` (the pass
    failed), ``auth``, ``locked``;
``sla_sync_pass_duration_seconds{policy}``, ``sla_sync_last_success_timestamp_seconds{policy}``,
``sla_sync_issues_fetched{policy}``.

``run --metrics-file`` writes them as a node-exporter textfile after the run (the
counters then count that run); ``watch --metrics-port`` serves them on
``/metrics`` (the counters accumulate while it runs).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server, write_to_textfile

from .redact import REDACTOR
from .sync import PassResult, states_of

LOGGER = "sla_sync"


class Redact(logging.Filter):
    """Replaces every form of a known secret in log messages (``redact.REDACTOR``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if REDACTOR:
            record.msg, record.args = REDACTOR(record.getMessage()), None
        return True


class PlainFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created))
        run = getattr(record, "run_id", "-")
        policy = getattr(record, "policy", "-")
        issue = getattr(record, "issue", "-")
        return f"{stamp} {record.levelname} run={run} policy={policy} issue={issue} {record.getMessage()}"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created)),
            "level": record.levelname.lower(),
            "run_id": getattr(record, "run_id", None),
            "policy": getattr(record, "policy", None),
            "issue": getattr(record, "issue", None),
            "message": record.getMessage(),
        }
        for key in ("changes", "kind"):
            if hasattr(record, key):
                doc[key] = getattr(record, key)
        return json.dumps(doc)


_REDACT = Redact()


def add_secret(secret: str, user: str | None = None) -> None:
    """Have every exit (logs, output, the store) redact this secret from now on, in
    every form it may take (raw, URL-encoded, Basic with ``user``)."""
    REDACTOR.add(secret, user)


def configure_logging(fmt: str, secrets: Iterable[str] = (), stream: Any = None) -> logging.Logger:
    """Send sla-sync's records to stderr as plain lines or JSON."""
    logger = logging.getLogger(LOGGER)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else PlainFormatter())
    for secret in secrets:
        add_secret(secret)
    handler.addFilter(_REDACT)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger


class Metrics:
    """The metrics of one process, over one or many passes."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        labels = ["policy"]
        self.issues = Gauge("sla_sync_issues", "Issues by level and SLA state of each metric, last pass",
                            [*labels, "level", "metric", "state"], registry=self.registry)
        self.at_risk = Gauge("sla_sync_issues_at_risk", "Running metrics flagged at risk, last pass",
                             [*labels, "level", "metric"], registry=self.registry)
        self.writes = Counter("sla_sync_writes", "Changes written to the tracker, by kind",
                              [*labels, "kind"], registry=self.registry)
        self.errors = Counter("sla_sync_errors", "Errors, by kind", [*labels, "kind"], registry=self.registry)
        self.duration = Gauge("sla_sync_pass_duration_seconds", "Duration of the last pass", labels,
                              registry=self.registry)
        self.last_success = Gauge("sla_sync_last_success_timestamp_seconds",
                                  "Unix time of the last pass that ended without error", labels, registry=self.registry)
        self.fetched = Gauge("sla_sync_issues_fetched", "Issues fetched by the last pass", labels,
                             registry=self.registry)

    def observe(self, result: PassResult, duration: float, finished_at: float) -> None:
        """Record a finished pass."""
        policy = result.policy
        self.issues.clear()
        self.at_risk.clear()
        states: dict[tuple[str, str, str], int] = {}
        risky: dict[tuple[str, str], int] = {}
        # every open issue of the mirror after the pass (a delta pass evaluates only some)
        tallies = result.tallies if result.tallies is not None else _count(states_of(o.sla) for o in result.outcomes)
        for tally, count in tallies.items():
            level, metrics = orjson.loads(tally)
            for name, state, at_risk in metrics:
                key = (level, name, state)
                states[key] = states.get(key, 0) + count
                if at_risk:
                    risky[(level, name)] = risky.get((level, name), 0) + count
        for (level, metric, state), n in states.items():
            self.issues.labels(policy, level, metric, state).set(n)
        for (level, metric), n in risky.items():
            self.at_risk.labels(policy, level, metric).set(n)
        for kind, n in result.counts()["writes"].items():
            self.writes.labels(policy, kind).inc(n)
        if result.errors:
            self.errors.labels(policy, "issue").inc(len(result.errors))
        self.duration.labels(policy).set(duration)
        self.fetched.labels(policy).set(result.fetched)
        if not result.errors:
            self.last_success.labels(policy).set(finished_at)

    def failed(self, policy: str, kind: str, duration: float) -> None:
        """Record a pass that ended with an error before finishing."""
        self.errors.labels(policy, kind).inc()
        self.duration.labels(policy).set(duration)

    def write_textfile(self, path: str) -> None:
        """Write the node-exporter textfile (atomically: a temporary file, renamed)."""
        write_to_textfile(path, self.registry)

    def serve(self, port: int, addr: str) -> None:
        """Serve ``/metrics`` on ``addr:port`` from a background thread."""
        start_http_server(port, addr=addr, registry=self.registry)


def _count(values: Iterable[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for value in values:
        out[value] = out.get(value, 0) + 1
    return out
