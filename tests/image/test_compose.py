"""deploy/docker-compose.yml as its comments walk an admin through it, with podman-compose.

The compose file, its policy and the env file example are used as they are, from the
session's copy of deploy/ beside its copy of the build files (so that nothing is written
into the work tree); only the project name is the test's own (``-p``), so that its
containers, volumes and network never meet anybody else's.  ``redmine:5`` is a
stand-in made from Debian's Redmine 5.0 (scripts/podman_local.py).  The steps the
comments do in Redmine's web UI (default configuration, REST API, project, custom
field, API key) are done with one ``rails runner`` in the Redmine container.

What podman-compose 1.x on Debian's podman 4.3 does differently from Docker Compose, and
how the steps below deal with it (README.md, "A local trial with Redmine"):
- a service with a profile is left out unless its profile is enabled, even when a
  command names it: ``build sla-sync`` and ``run --rm sla-sync`` need ``--profile sync``;
- health checks run on a schedule only through systemd: ``podman healthcheck run`` runs
  the compose file's check by hand, and ``depends_on: condition: service_healthy`` is
  ignored (sla-sync starts at once; its passes fail until Redmine answers).
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import podman_local
import pytest

pytestmark = pytest.mark.image

REDMINE_URL = "http://127.0.0.1:3000"  # the compose file publishes Redmine there
POLICY = "/etc/sla-sync/policies/redmine-trial.yaml"

# The compose file's step 2 and 3, done in one go instead of in the web UI.
REDMINE_SET_UP = """
Redmine::DefaultData::Loader.load('en') if Redmine::DefaultData::Loader.no_data?
Setting.rest_api_enabled = '1'
admin = User.find_by_login('admin')
admin.password = admin.password_confirmation = 'trial-secret-1'
admin.must_change_passwd = false
admin.save!
Project.find_by_identifier('support') || Project.create!(name: 'Support', identifier: 'support')
field = IssueCustomField.find_by_name('SLA') || IssueCustomField.new(name: 'SLA', field_format: 'list')
field.multiple = true
field.possible_values = %w[sla:P1 sla:P2 sla:P3 sla:at-risk sla:breached sla:escalated-1 sla:escalated-2 escalated]
field.trackers = Tracker.all
field.is_for_all = true
field.save!
puts "API-KEY #{admin.api_key}"
"""


@dataclass
class Trial:
    folder: Path  # the copy of deploy/
    project: str
    exe: Path
    api_key: str
    timings: dict[str, float]

    def compose(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """``podman-compose -p PROJECT ARGS`` in the copy of deploy/, with this set-up's podman."""
        return subprocess.run([str(self.exe), "-p", self.project, *args], cwd=self.folder,
                              env=podman_local.podman_env(), capture_output=True, text=True, timeout=timeout,
                              check=False)

    def container(self, service: str) -> str:
        return f"{self.project}_{service}_1"

    def redmine(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        request = urllib.request.Request(
            REDMINE_URL + path, method=method, data=None if body is None else json.dumps(body).encode(),
            headers={"X-Redmine-API-Key": self.api_key, "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read()
        return json.loads(text) if text.strip() else None


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


@pytest.fixture(scope="module")
def trial(image: Any, compose_ready: float, image_timings: dict[str, str]) -> Iterator[Trial]:
    """Steps 1 to 3 of the compose file's comments: build, Redmine up and set up, env file."""
    timings: dict[str, float] = {"redmine stand-in (made meanwhile)": compose_ready}
    started = time.monotonic()
    exe = podman_local.ensure_podman_compose()
    # The session's copy of the build files, with deploy/ beside them: the compose file's
    # build context (..) holds the very files the session's image was built from.
    trial = Trial(image.context / "deploy", f"sla-sync-trial-{uuid.uuid4().hex[:8]}", exe, "", timings)
    built: dict[str, str] = {}

    def finish() -> None:
        trial.compose("--profile", "sync", "down", "-v")  # 5.
        tag = "localhost/sla-sync:0.1.0"
        now = podman_local.podman("image", "inspect", "--format", "{{.Id}}", tag, check=False).stdout.strip()
        if built and now == built["id"]:  # the tag compose built (unless another build has taken it since)
            podman_local.podman("rmi", tag, check=False)
        image_timings["compose trial"] = (f"{time.monotonic() - started:.0f} s ("
                                          + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()) + ")")

    with contextlib.ExitStack() as cleanup:
        cleanup.enter_context(podman_local.exclusive("compose-trial"))  # another session's: wait
        assert port_is_free(3000), "port 3000 on 127.0.0.1 is taken: the compose file publishes Redmine there"
        cleanup.callback(finish)

        # 1. docker compose build sla-sync  (+ --profile sync, + the build's CA mount)
        t = time.monotonic()
        done = trial.compose("--profile", "sync", "--podman-build-args", " ".join(podman_local.build_args()),
                             "build", "sla-sync", timeout=900)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        timings["compose build"] = time.monotonic() - t
        built["id"] = podman_local.podman("image", "inspect", "--format", "{{.Id}}",
                                          "localhost/sla-sync:0.1.0").stdout.strip()
        #    docker compose up -d redmine
        up = trial.compose("up", "-d", "redmine")
        assert up.returncode == 0, up.stdout + up.stderr
        timings["redmine healthy"] = podman_local.wait_healthy(trial.container("redmine"))
        # 2. and 3. in Redmine: configuration, REST API, project, custom field; the API key
        done = podman_local.podman("exec", "-i", trial.container("redmine"), "sh", "-c",
                                   "cat > /tmp/set-up.rb && bin/rails runner /tmp/set-up.rb",
                                   input_text=REDMINE_SET_UP, check=False, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        (key,) = [line.split()[1] for line in done.stdout.splitlines() if line.startswith("API-KEY ")]
        trial.api_key = key
        #    cp sla-sync.env.example sla-sync.env  # and paste the key after REDMINE_API_KEY=
        example = (trial.folder / "sla-sync.env.example").read_text()
        assert "REDMINE_API_KEY=paste-the-api-key-here" in example
        (trial.folder / "sla-sync.env").write_text(
            example.replace("REDMINE_API_KEY=paste-the-api-key-here", f"REDMINE_API_KEY={key}"))
        yield trial


def test_the_trial_redmine_answers_the_compose_files_health_check(trial: Trial) -> None:
    status = podman_local.podman("inspect", "--format", "{{.State.Health.Status}}", trial.container("redmine"))
    assert status.stdout.strip() == "healthy"
    assert trial.redmine("GET", "/projects/support.json")["project"]["identifier"] == "support"


def test_check_online_finds_everything_in_place_on_the_trial_redmine(trial: Trial) -> None:
    # 4. docker compose run --rm sla-sync check --online /etc/sla-sync/policies/redmine-trial.yaml
    done = trial.compose("--profile", "sync", "run", "--rm", "sla-sync", "check", "--online", POLICY)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{POLICY}: tracker: project, fields, users and groups are all in place" in done.stdout


def test_the_watch_service_labels_a_new_issue_and_stops_cleanly_then_down_removes_all(trial: Trial) -> None:
    priorities = {p["name"]: p["id"]
                  for p in trial.redmine("GET", "/enumerations/issue_priorities.json")["issue_priorities"]}
    created = trial.redmine("POST", "/issues.json", {"issue": {"project_id": "support", "subject": "Checkout down",
                                                                "priority_id": priorities["Immediate"]}})
    key = created["issue"]["id"]
    # 4. docker compose --profile sync up -d ; docker compose logs -f sla-sync
    up = trial.compose("--profile", "sync", "up", "-d")
    assert up.returncode == 0, up.stdout + up.stderr
    sync = trial.container("sla-sync")
    log = podman_local.wait_log(sync, "issues fetched")
    assert "trial-support: 1 issues fetched (1 with new history), 1 updated" in log, log
    issue = trial.redmine("GET", f"/issues/{key}.json")["issue"]
    (sla,) = [f["value"] for f in issue["custom_fields"] if f["name"] == "SLA"]
    assert "sla:P1" in sla
    assert issue["due_date"] is not None  # its value follows the real clock: not checked
    inspect = json.loads(podman_local.podman("inspect", sync).stdout)[0]
    assert inspect["Config"]["User"] == "10001:10001"
    assert inspect["HostConfig"]["Init"] is True
    state = next(m for m in inspect["Mounts"] if m["Destination"] == "/var/lib/sla-sync")
    assert state["Type"] == "volume" and (Path(state["Source"]) / "state.sqlite").stat().st_uid == 10001

    # stop: SIGTERM through the init process; watch ends after the write in flight
    stopped = trial.compose("--profile", "sync", "stop", "sla-sync")
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert podman_local.podman("inspect", "--format", "{{.State.ExitCode}}", sync).stdout.strip() == "0"
    assert "SIGTERM: stopping after the write in flight" in podman_local.podman("logs", sync).stderr

    # 5. docker compose --profile sync down -v
    down = trial.compose("--profile", "sync", "down", "-v")
    assert down.returncode == 0, down.stdout + down.stderr
    label = f"label=io.podman.compose.project={trial.project}"
    assert podman_local.podman("ps", "-a", "-q", "--filter", label).stdout.strip() == ""
    assert podman_local.podman("volume", "ls", "-q", "--filter", label).stdout.strip() == ""
    networks = podman_local.podman("network", "ls", "--format", "{{.Name}}").stdout.split()
    assert not [n for n in networks if n.startswith(trial.project)], networks
