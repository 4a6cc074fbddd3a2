"""The Prometheus alert rules and the Grafana dashboard in deploy/, against the metrics
sla-sync really exports.

promtool is Debian's (scripts/promtool_local.py unpacks it from the prometheus package
on first use): it checks the rules, runs their unit tests (deploy/prometheus/alerts-test.yaml)
and lints metrics files that real runs against the test Redmine wrote.  Every query of
the dashboard and every rule names only metrics and labels that sla-sync exports (as
``sla_sync.observe`` documents them and real runs show them), and parses as PromQL.
Each check is also shown a broken copy that it must reject.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import promtool_local
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

import sla_sync.observe
from tests.support import block_on_put

ROOT = Path(__file__).resolve().parent.parent
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yaml"
ALERT_TESTS = ROOT / "deploy" / "prometheus" / "alerts-test.yaml"
DASHBOARD = ROOT / "deploy" / "grafana" / "sla-sync.json"
SLA_SYNC = str(Path(sys.executable).parent / "sla-sync")
NOW = "2026-11-03T12:00:00Z"  # Tuesday, 13:00 in Madrid
SCRAPE_LABELS = {"job", "instance"}  # added by Prometheus to every series
ALERT_NAMES = {"SlaSyncNoSuccessfulPass", "SlaSyncPassErrors", "SlaSyncBreachesRising", "SlaSyncPassesRefused"}


@pytest.fixture(scope="session")
def promtool() -> Path:
    """Debian's promtool; where it cannot be had, skipped (on CI, CI=true, a failure)."""
    try:
        return promtool_local.ensure_promtool()
    except promtool_local.PromtoolError as exc:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"promtool: {exc}")
        pytest.skip(f"promtool cannot be had here: {exc}")


def run_promtool(promtool: Path, *args: str, stdin: str | None = None,
                 cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(promtool), *args], input=stdin, capture_output=True, text=True, timeout=120,
                          cwd=cwd, check=False)


# -- what sla-sync exports ----------------------------------------------------------


def exported() -> dict[str, set[str]]:
    """Series name -> label names, as ``sla_sync.observe`` documents them, checked
    against the registry it builds (a counter ``x`` is ``x_total`` and ``x_created``)."""
    documented = {
        name: set(labels.split(","))
        for name, labels in re.findall(r"``(sla_sync_\w+)\{([\w,]+)\}``", sla_sync.observe.__doc__ or "")
    }
    families = {f.name: f.type for f in sla_sync.observe.Metrics().registry.collect()}
    names: dict[str, set[str]] = {}
    for family, kind in families.items():
        series = [f"{family}_total", f"{family}_created"] if kind == "counter" else [family]
        labels = documented.get(series[0])
        assert labels is not None, f"{series[0]} is exported but not documented in sla_sync/observe.py"
        names.update({s: labels for s in series})
    assert set(documented) <= set(names), "observe.py documents a metric it does not export"
    return names


def test_the_documented_metrics_are_the_exported_ones() -> None:
    names = exported()
    assert names["sla_sync_issues"] == {"policy", "level", "metric", "state"}
    assert names["sla_sync_errors_total"] == names["sla_sync_errors_created"] == {"policy", "kind"}
    assert "sla_sync_pass_duration_seconds" in names


# -- PromQL: the metric and label names a query uses ----------------------------------

PROMQL_WORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "offset",
                "bool", "inf", "nan"}


def selectors(expr: str) -> list[tuple[str, set[str]]]:
    """(metric name, label names in its matchers) of every series selector in ``expr``,
    and ("", labels) for the labels of by/without/on/ignoring clauses."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings hold no names
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges and subqueries
    text = re.sub(r"(?<![\w:])\d[\w.]*", " ", text)  # numbers and durations (offset 1h)
    found: list[tuple[str, set[str]]] = []
    for words in re.findall(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", text):
        found.append(("", {w.strip() for w in words.split(",") if w.strip()}))
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    for match in re.finditer(r"([A-Za-z_:][\w:]*)?\s*(\{[^}]*\})?", text):
        name, matchers = match.group(1), match.group(2)
        if not name and not matchers:
            continue
        rest = text[match.end():].lstrip()
        if name and (rest.startswith("(") or name.lower() in PROMQL_WORDS):
            name = None  # a function or a keyword
        labels = set(re.findall(r"([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)", matchers or ""))
        if name or labels:
            found.append((name or "", labels))
    return found


def name_problems(expr: str, names: dict[str, set[str]]) -> list[str]:
    problems = []
    used = selectors(expr)
    metrics = [n for n, _ in used if n]
    if not metrics:
        problems.append(f"names no metric: {expr}")
    known_labels = set().union(*(names.get(n, set()) for n in metrics)) | SCRAPE_LABELS
    for name, labels in used:
        if name and name not in names:
            problems.append(f"{name} is not a metric sla-sync exports")
            continue
        allowed = (names.get(name, set()) | SCRAPE_LABELS) if name else known_labels
        problems += [f"{name or 'a grouping'}: no label {label!r}" for label in sorted(labels - allowed)]
    return problems


@pytest.mark.parametrize(
    ("expr", "problem"),
    [
        ('sum by (kind) (increase(sla_sync_writes_total{policy=~"a|b"}[5m]))', None),
        ("time() - max(sla_sync_last_success_timestamp_seconds)", None),
        ("sla_sync_write_total", "sla_sync_write_total is not a metric"),
        ("sum(rate(sla_sync_writes[5m]))", "sla_sync_writes is not a metric"),
        ('sla_sync_issues{state="breached", severity="x"}', "no label 'severity'"),
        ("sum by (kind) (sla_sync_issues)", "a grouping: no label 'kind'"),
        ("vector(1)", "names no metric"),
        ("up", "up is not a metric"),
    ],
)
def test_the_name_check_finds_unknown_metrics_and_labels(expr: str, problem: str | None) -> None:
    problems = name_problems(expr, exported())
    if problem is None:
        assert problems == []
    else:
        assert any(problem in p for p in problems), problems


# -- the alert rules -------------------------------------------------------------------


def rules() -> list[dict[str, Any]]:
    data = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    return [rule for group in data["groups"] for rule in group["rules"]]


def test_the_alert_rules_pass_promtool_check_rules(promtool: Path, tmp_path: Path) -> None:
    done = run_promtool(promtool, "check", "rules", str(ALERTS))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 4 rules found" in done.stdout
    broken = tmp_path / "alerts.yaml"
    broken.write_text(ALERTS.read_text().replace("max_over_time(sla_sync_last_success_timestamp_seconds[1d])",
                                                 "max_over_time(sla_sync_last_success_timestamp_seconds)", 1))
    done = run_promtool(promtool, "check", "rules", str(broken))
    assert done.returncode != 0 and "expected type range vector" in done.stdout + done.stderr


def test_the_alerts_are_the_four_the_operators_need() -> None:
    found = {rule["alert"]: rule for rule in rules()}
    assert set(found) == ALERT_NAMES
    for rule in found.values():
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
    assert found["SlaSyncNoSuccessfulPass"]["labels"]["severity"] == "critical"


def test_every_alert_names_only_what_sla_sync_exports() -> None:
    names = exported()
    problems = {rule["alert"]: name_problems(rule["expr"], names) for rule in rules()}
    assert problems == {name: [] for name in problems}


def test_the_alert_rules_pass_their_unit_tests(promtool: Path) -> None:
    tested = {t["alertname"] for case in yaml.safe_load(ALERT_TESTS.read_text())["tests"]
              for t in case["alert_rule_test"]}
    assert tested == ALERT_NAMES
    done = run_promtool(promtool, "test", "rules", ALERT_TESTS.name, cwd=ALERT_TESTS.parent)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


@pytest.mark.parametrize(
    ("change", "failing"),
    [
        (("> 900\n", "> 1800\n"), "SlaSyncNoSuccessfulPass"),  # 6 periods instead of 3
        (("max by (policy) (sla_sync_pass_duration_seconds offset 15m)\n",
          "max by (policy) (sla_sync_pass_duration_seconds offset 15m) * 0 > 1\n"), "SlaSyncNoSuccessfulPass"),
        (('count by (policy, kind) (time() - sla_sync_errors_created{kind!="locked"} < 600)',
          'count by (policy, kind) (time() - sla_sync_errors_created{kind!="locked"} < 0)'), "SlaSyncPassErrors"),
        (('increase(sla_sync_errors_total{kind!="locked"}[10m])', 'increase(sla_sync_errors_total[10m])'),
         "SlaSyncPassErrors"),
        (("          and on (policy) sum by (policy) (sla_sync_issues offset 1h)\n", "\n"), "SlaSyncBreachesRising"),
        (("for: 30m", "for: 5m"), "SlaSyncPassesRefused"),
        (('max_over_time(sla_sync_errors_created{kind="locked"}[15m])', 'sla_sync_errors_created{kind="locked"}'),
         "SlaSyncPassesRefused"),
    ],
)
def test_the_unit_tests_catch_a_broken_rule(promtool: Path, tmp_path: Path, change: tuple[str, str],
                                            failing: str) -> None:
    text = ALERTS.read_text(encoding="utf-8")
    assert change[0] in text
    (tmp_path / "alerts.yaml").write_text(text.replace(*change), encoding="utf-8")
    shutil.copyfile(ALERT_TESTS, tmp_path / ALERT_TESTS.name)
    done = run_promtool(promtool, "test", "rules", ALERT_TESTS.name, cwd=tmp_path)
    assert done.returncode != 0
    assert set(re.findall(r"alertname: (\w+), time:", done.stdout + done.stderr)) == {failing}


# -- the dashboard ---------------------------------------------------------------------


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return data


def dashboard_queries(data: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, PromQL) of every panel target and every query variable."""
    out = []
    for panel in data["panels"]:
        for target in panel.get("targets", []):
            out.append((f"panel {panel['title']!r} {target['refId']}", target["expr"]))
    for var in data["templating"]["list"]:
        if var["type"] == "query":
            query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            inner = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", query)
            assert inner, query
            out.append((f"variable {var['name']}", f"count by ({inner.group(2)}) ({inner.group(1)})"))
    return out


def as_promql(expr: str) -> str:
    """Grafana's variables replaced by values Prometheus would get."""
    return expr.replace("$__rate_interval", "5m").replace("$__range", "1h").replace("$policy", ".*")


def test_every_dashboard_query_names_only_what_sla_sync_exports() -> None:
    names = exported()
    problems = {where: name_problems(as_promql(expr), names) for where, expr in dashboard_queries(dashboard())}
    assert problems == {where: [] for where in problems}
    broken = DASHBOARD.read_text().replace("sla_sync_issues_at_risk{", "sla_sync_issue_at_risk{", 1)
    found = [p for _w, e in dashboard_queries(json.loads(broken)) for p in name_problems(as_promql(e), names)]
    assert found == ["sla_sync_issue_at_risk is not a metric sla-sync exports"]


def test_every_dashboard_query_parses_as_promql(promtool: Path, tmp_path: Path) -> None:
    """promtool checks each query's syntax as the expression of a recording rule."""
    queries = dashboard_queries(dashboard())
    exprs = [as_promql(expr) for _where, expr in queries]
    recording: dict[str, Any] = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"sla_sync:dashboard:{n}", "expr": expr} for n, expr in enumerate(exprs)
    ]}]}
    path = tmp_path / "dashboard-queries.yaml"
    path.write_text(yaml.safe_dump(recording), encoding="utf-8")
    done = run_promtool(promtool, "check", "rules", str(path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(queries)} rules found" in done.stdout
    recording["groups"][0]["rules"][0]["expr"] = "sum by (kind (sla_sync_writes_total)"
    path.write_text(yaml.safe_dump(recording), encoding="utf-8")
    assert run_promtool(promtool, "check", "rules", str(path)).returncode != 0


def test_the_dashboard_shows_what_an_operator_watches() -> None:
    data = dashboard()
    panels = data["panels"]
    assert data["uid"] == "sla-sync" and data["schemaVersion"] >= 36
    assert len({p["id"] for p in panels}) == len(panels)
    every = " ".join(t["expr"] for p in panels for t in p["targets"])
    titles = " ".join(p["title"].lower() for p in panels)
    for subject in ("compliance", "at risk", "breaches", "writes", "errors", "pass duration"):
        assert subject in titles, subject
    for metric in ("sla_sync_issues{", "sla_sync_issues_at_risk", "sla_sync_writes_total", "sla_sync_errors_total",
                   "sla_sync_pass_duration_seconds", "sla_sync_last_success_timestamp_seconds"):
        assert metric in every, metric
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert all('policy=~"$policy"' in t["expr"] for t in panel["targets"]), panel["title"]
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
    cells = [(p["gridPos"]["x"] + dx, p["gridPos"]["y"] + dy) for p in panels
             for dx in range(p["gridPos"]["w"]) for dy in range(p["gridPos"]["h"])]
    assert len(cells) == len(set(cells)), "panels overlap"


# -- metrics files from real runs --------------------------------------------------------


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def samples(text: str) -> dict[str, list[dict[str, str]]]:
    out: dict[str, list[dict[str, str]]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, []).append(dict(s.labels))
    return out


@pytest.fixture
def real_metrics(redmine_cli: tuple[Any, Path, dict[str, str]], tmp_path: Path) -> Iterator[dict[str, str]]:
    """Metrics files of real `run`s against the test Redmine: a pass that wrote, a pass
    refused because the first still ran, and a pass whose key was rejected."""
    redmine, policy, env = redmine_cli
    redmine.create_issue("Checkout down", priority="Urgent", created_at=at("2026-11-02T08:00:00"))
    redmine.create_issue("Slow search", priority="High", created_at=at("2026-11-03T10:30:00"))  # P2: 1h30 of 2h
    redmine.create_issue("Typo", priority="Normal", created_at=at("2026-11-03T09:00:00"))
    state = str(tmp_path / "state.sqlite")
    files = {name: tmp_path / f"{name}.prom" for name in ("wrote", "refused", "auth")}
    reached, release = block_on_put(redmine, 1)
    first = subprocess.Popen([SLA_SYNC, "run", str(policy), "--now", NOW, "--state", state,
                              "--metrics-file", str(files["wrote"])], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert reached.wait(120), "the first pass never wrote"
        refused = subprocess.run([SLA_SYNC, "run", str(policy), "--now", NOW, "--state", state,
                                  "--metrics-file", str(files["refused"])], env=env,
                                 capture_output=True, text=True, timeout=120, check=False)
    finally:
        release.set()
        _out, err = first.communicate(timeout=120)
        redmine.hook(None)
    assert first.returncode == 0, err
    assert refused.returncode == 2, refused.stderr
    auth = subprocess.run([SLA_SYNC, "run", str(policy), "--now", NOW, "--state", str(tmp_path / "other.sqlite"),
                           "--metrics-file", str(files["auth"])], env={**env, "REDMINE_API_KEY": "not-the-key"},
                          capture_output=True, text=True, timeout=120, check=False)
    assert auth.returncode == 2, auth.stderr
    yield {name: path.read_text() for name, path in files.items()}


def test_metrics_files_of_real_runs_pass_promtool_check_metrics(promtool: Path, real_metrics: dict[str, str]) -> None:
    for name, text in real_metrics.items():
        done = run_promtool(promtool, "check", "metrics", stdin=text)
        assert (done.returncode, done.stdout + done.stderr) == (0, ""), f"{name}.prom:\n{done.stdout}{done.stderr}"
    bad = real_metrics["wrote"].replace("sla_sync_writes_total", "sla_sync_writes").replace(
        "sla_sync_pass_duration_seconds", "sla_sync_pass_duration_ms")
    done = run_promtool(promtool, "check", "metrics", stdin=bad)
    assert done.returncode != 0
    assert 'counter metrics should have "_total" suffix' in done.stdout + done.stderr


def test_real_metrics_files_hold_what_the_rules_and_the_dashboard_read(real_metrics: dict[str, str]) -> None:
    names = exported()
    for name, text in real_metrics.items():
        for series, label_sets in samples(text).items():
            assert series in names, f"{name}.prom: {series} is not documented"
            assert all(set(labels) == names[series] for labels in label_sets), (name, series, label_sets)
    wrote, refused, auth = (samples(real_metrics[n]) for n in ("wrote", "refused", "auth"))
    assert {"sla_sync_issues", "sla_sync_issues_at_risk", "sla_sync_writes_total", "sla_sync_pass_duration_seconds",
            "sla_sync_last_success_timestamp_seconds", "sla_sync_issues_fetched"} <= set(wrote)
    assert {labels["state"] for labels in wrote["sla_sync_issues"]} >= {"breached", "running"}
    # What the rules rely on (deploy/prometheus/alerts.yaml): a run that did not succeed
    # has no last-success series, and its error series comes with *_created.
    (policy,) = {labels["policy"] for labels in wrote["sla_sync_pass_duration_seconds"]}
    for failed, kind in ((refused, "locked"), (auth, "auth")):
        assert "sla_sync_last_success_timestamp_seconds" not in failed
        assert failed["sla_sync_errors_total"] == failed["sla_sync_errors_created"] == [
            {"policy": policy, "kind": kind}]
        assert "sla_sync_pass_duration_seconds" in failed


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_the_metrics_watch_serves_pass_promtool_check_metrics(
    promtool: Path, redmine_cli: tuple[Any, Path, dict[str, str]], tmp_path: Path
) -> None:
    redmine, policy, env = redmine_cli
    redmine.create_issue("Checkout down", priority="Urgent", created_at=at("2026-11-02T08:00:00"))
    port = free_port()
    proc = subprocess.Popen(
        [SLA_SYNC, "watch", str(policy), "--every", "1h", "--now", NOW, "--state", str(tmp_path / "s.sqlite"),
         "--metrics-port", str(port), "--metrics-addr", "127.0.0.1"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stderr is not None
        for line in proc.stderr:  # until the pass's summary line
            if "issues fetched" in line:
                break
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30).read().decode()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    assert "sla_sync_writes_total" in body
    done = run_promtool(promtool, "check", "metrics", stdin=body)
    assert (done.returncode, done.stdout + done.stderr) == (0, "")
