"""The image as an admin runs it: built from the Dockerfile as it is, then run with podman.

The build stands on a stand-in python:3.11-slim (Debian's Python 3.11.2; see
scripts/podman_local.py).  Against the real Redmine of the test session the cron
recipe's own line (deploy/crontab) is run by /bin/sh, with podman standing in for
docker, so that what is verified is that line with its options.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import podman_local
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support import block_on_put

pytestmark = pytest.mark.image

ROOT = Path(__file__).resolve().parent.parent.parent
POLICY_DIR = "/etc/sla-sync/policies"
STATE_DIR = "/var/lib/sla-sync"
NOW = "2026-11-03T12:00:00Z"  # Tuesday, 13:00 in Madrid


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def world_readable_dir(path: Path, files: dict[str, str]) -> Path:
    """A folder to mount as the policies: uid 10001 must read it (pytest's are 0700)."""
    path.mkdir()
    path.chmod(0o755)
    for name, text in files.items():
        (path / name).write_text(text, encoding="utf-8")
        (path / name).chmod(0o644)
    return path


# -- offline -------------------------------------------------------------------------


def test_help_is_the_default_command(image: Any) -> None:
    done = image.run()
    assert done.returncode == 0, done.stderr
    for command in ("check", "plan", "run", "watch", "export", "report"):
        assert f" {command} " in done.stdout, command


def ready_policies(image: Any) -> list[str]:
    return sorted(p.name for p in (image.context / "policies").glob("*.yaml"))


def test_every_ready_policy_in_the_image_passes_check(image: Any) -> None:
    ready = ready_policies(image)
    assert len(ready) >= 4
    listed = image.shell(f"ls {POLICY_DIR}")
    assert listed.stdout.split() == ready, "the image's policies are not the repository's policies/"
    done = image.run("check", *[f"{POLICY_DIR}/{name}" for name in ready])
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count(": ok (") == len(ready)


def test_the_compose_trial_policy_passes_check_mounted_read_only(image: Any) -> None:
    done = image.run("check", f"{POLICY_DIR}/redmine-trial.yaml",
                     options=("--volume", f"{ROOT / 'deploy' / 'policies'}:{POLICY_DIR}:ro"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{POLICY_DIR}/redmine-trial.yaml: ok (" in done.stdout


def test_a_bad_policy_exits_2_naming_file_line_and_column(image: Any, tmp_path: Path) -> None:
    text = (ROOT / "policies" / "redmine-support.yaml").read_text(encoding="utf-8")
    assert "first_response: 30m" in text
    folder = world_readable_dir(tmp_path / "policies",
                                {"bad.yaml": text.replace("first_response: 30m", "first_response: 30 minutes")})
    done = image.run("check", f"{POLICY_DIR}/bad.yaml", options=("--volume", f"{folder}:{POLICY_DIR}:ro"))
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"{POLICY_DIR}/bad.yaml:35:" in done.stdout
    assert "'30 minutes' is not a duration" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr


def test_it_runs_as_uid_10001_never_root(image: Any) -> None:
    done = image.run("-u", options=("--entrypoint", "id"))
    assert (done.returncode, done.stdout.strip()) == (0, "10001"), done.stderr
    user = podman_local.podman("image", "inspect", "--format", "{{.Config.User}}", image.image_id).stdout.strip()
    assert user == "10001:10001"


def test_a_read_only_root_file_system_is_enough(image: Any) -> None:
    done = image.run("check", *[f"{POLICY_DIR}/{name}" for name in ready_policies(image)],
                     options=("--read-only", "--read-only-tmpfs=false"))
    assert done.returncode == 0, done.stdout + done.stderr
    refused = image.run("-c", f"touch /opt/sla-sync/x {STATE_DIR}/x /tmp/x",
                        options=("--read-only", "--read-only-tmpfs=false", "--entrypoint", "/bin/sh"))
    assert refused.returncode != 0 and "Read-only file system" in refused.stderr


def test_the_image_holds_no_build_tools_sources_or_build_secrets(image: Any) -> None:
    script = r"""
    for p in /src /wheels /etc/pip.conf /root/host-ca.crt /root/.config/pip \
             /opt/sla-sync/bin/pip /opt/sla-sync/bin/pip3; do
        [ -e "$p" ] && echo "present: $p"
    done
    for c in gcc cc c++ g++ clang make ld; do command -v "$c" >/dev/null && echo "compiler: $c"; done
    /opt/sla-sync/bin/python -c 'import pip' 2>/dev/null && echo "pip in the venv"
    python3 -c 'import pip' 2>/dev/null && echo "pip in the base's python"
    for c in pip pip3; do command -v "$c" >/dev/null && echo "installer: $c"; done
    /opt/sla-sync/bin/python -c 'import setuptools' 2>/dev/null && echo "setuptools in the venv"
    [ -n "$(find /opt/sla-sync -name '*.pyc' -print -quit)" ] || echo "no byte-code in the venv"
    true
    """
    done = image.shell(script, user="0")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""
    # The build's pip config and CA bundle were mounted over /root for the RUN steps only.
    diff = podman_local.podman("image", "diff", image.image_id).stdout.split("\n")
    assert not [line for line in diff if line.split(" ")[-1].startswith("/root")], diff


def test_the_build_used_the_unchanged_dockerfile_on_the_stand_in_base(image: Any) -> None:
    log = image.build_log
    assert "FROM python:3.11-slim AS builder" in log
    assert "Successfully tagged" in log
    python = image.run("--version", options=("--entrypoint", "python"))
    assert python.stdout.startswith("Python 3.11."), python.stdout + python.stderr


# -- against the real Redmine of the test session --------------------------------------


def crontab_command() -> str:
    lines = [line for line in (ROOT / "deploy" / "crontab").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert len(lines) == 1
    return lines[0].split(None, 5)[5]


DOCKER_SHIM = r"""import json, os, sys
# `docker` as the crontab line calls it, run by podman with the tests' set-up (its
# CONTAINERS_* variables are in the environment): the same options, the test's folders,
# volume and image instead of the host's, the host's network (the test Redmine listens
# on loopback) and a pinned clock.
swap = json.loads(os.environ["SHIM_SWAP"])
args = sys.argv[1:]
assert args[0] == "run", args
out = []
for arg in args[1:]:
    for old, new in swap.items():
        if arg == old or arg.startswith(old + ":"):
            arg = new + arg[len(old):]
    out.append(arg)
extra = json.loads(os.environ["SHIM_EXTRA"])
argv = ["podman", "run", "--network", "host", "--label", os.environ["SHIM_LABEL"], *out, *extra]
with open(os.environ["SHIM_ARGV"], "a") as f:
    f.write(json.dumps(argv) + "\n")
os.execvp("podman", argv)
"""


def run_crontab_line(tmp_path: Path, image: Any, volume: str, folder: Path,
                     env_file: Path) -> subprocess.CompletedProcess[str]:
    """The crontab's line, by /bin/sh as cron runs it, with the shim as `docker`."""
    bin_dir = tmp_path / "bin"
    if not bin_dir.exists():
        bin_dir.mkdir()
        (bin_dir / "docker").write_text(f"#!{sys.executable}\n{DOCKER_SHIM}", encoding="utf-8")
        (bin_dir / "docker").chmod(0o755)
    podman_conf = podman_local.podman_env({})  # CONTAINERS_CONF and CONTAINERS_STORAGE_CONF
    env = {
        **podman_conf,
        "HOME": str(tmp_path),
        "PATH": f"{bin_dir}:/usr/bin:/bin:/usr/sbin:/sbin",
        "SHELL": "/bin/sh",
        "LOGNAME": "cron",
        "SHIM_LABEL": podman_local.TEST_LABEL,
        "SHIM_ARGV": str(tmp_path / "argv.jsonl"),
        "SHIM_SWAP": json.dumps({
            "/etc/sla-sync/sla-sync.env": str(env_file),
            "/etc/sla-sync/policies": str(folder),
            "sla-sync-state": volume,
            "sla-sync:0.1.0": image.image_id,
        }),
        "SHIM_EXTRA": json.dumps(["--now", NOW, "--metrics-file", f"{STATE_DIR}/sla_sync.prom"]),
    }
    return subprocess.run(["/bin/sh", "-c", crontab_command()], env=env, capture_output=True, text=True,
                          timeout=300, check=False)


def volume_path(volume: str) -> Path:
    return Path(podman_local.podman("volume", "inspect", "--format", "{{.Mountpoint}}", volume).stdout.strip())


def test_the_cron_line_syncs_a_real_redmine_from_the_image(
    image: Any, redmine_cli: tuple[Any, Path, dict[str, str]], tmp_path: Path
) -> None:
    redmine, policy, env = redmine_cli
    p1 = redmine.create_issue("Checkout down", priority="Urgent", created_at=at("2026-11-02T08:00:00"))
    p3 = redmine.create_issue("Typo on the invoice", priority="Normal", created_at=at("2026-11-02T09:00:00"))
    folder = world_readable_dir(tmp_path / "policies", {"redmine-support.yaml": policy.read_text(encoding="utf-8")})
    env_file = tmp_path / "sla-sync.env"
    env_file.write_text(f"REDMINE_API_KEY={env['REDMINE_API_KEY']}\n", encoding="utf-8")
    env_file.chmod(0o600)
    volume = image.volume()
    mounts = ("--network", "host", "--env-file", str(env_file), "--volume", f"{folder}:{POLICY_DIR}:ro")

    online = image.run("check", "--online", f"{POLICY_DIR}/redmine-support.yaml", options=mounts)
    assert online.returncode == 0, online.stdout + online.stderr
    assert "all in place" in online.stdout
    assert set(redmine.requests()) == {"GET"}

    first = run_crontab_line(tmp_path, image, volume, folder, env_file)
    log = (tmp_path / "sla-sync.log").read_text()
    assert first.returncode == 0 and first.stdout == "", first.stdout + log
    (argv,) = [json.loads(line) for line in (tmp_path / "argv.jsonl").read_text().splitlines()]
    assert {"--rm", "--init", "--env-file"} <= set(argv), argv
    assert "acme-support: 2 issues fetched (2 with new history), 2 updated" in log, log
    seen = redmine.observe(p1)
    assert seen.due_date == "2026-11-03"
    assert {"sla:P1", "sla:breached"} <= seen.labels
    assert redmine.observe(p3).due_date == "2026-11-17"
    assert redmine.requests().get("PUT", 0) > 0

    state = volume_path(volume) / "state.sqlite"
    assert state.is_file()
    assert (state.stat().st_uid, state.stat().st_gid) == (10001, 10001)
    assert (state.parent.stat().st_uid, state.parent.stat().st_gid) == (10001, 10001)
    assert state.read_bytes()[:16] == b"SQLite format 3\x00"  # read as bytes: no journal left behind
    writes = {s.labels["kind"]: s.value
              for f in text_string_to_metric_families((state.parent / "sla_sync.prom").read_text())
              for s in f.samples if s.name == "sla_sync_writes_total"}
    assert writes["due_date"] == 2

    redmine.reset_requests()
    second = run_crontab_line(tmp_path, image, volume, folder, env_file)
    log = (tmp_path / "sla-sync.log").read_text()
    assert second.returncode == 0 and second.stdout == "", second.stdout + log
    assert set(redmine.requests()) == {"GET"}, "the second run wrote"
    assert log.count(", 0 updated,") == 1, log

    # As a Kubernetes CronJob runs it: read-only root, an empty /tmp, the same state.
    redmine.reset_requests()
    again = image.run("run", f"{POLICY_DIR}/redmine-support.yaml", "--now", NOW,
                      options=(*mounts, "--read-only", "--read-only-tmpfs=false", "--tmpfs", "/tmp",
                               "--volume", f"{volume}:{STATE_DIR}"))
    assert again.returncode == 0, again.stdout + again.stderr
    assert "0 updated" in again.stderr
    assert set(redmine.requests()) == {"GET"}
    assert env["REDMINE_API_KEY"] not in log + again.stdout + again.stderr + online.stdout


def test_a_pass_that_starts_while_another_container_runs_one_exits_2(
    image: Any, redmine_cli: tuple[Any, Path, dict[str, str]], tmp_path: Path
) -> None:
    """The per-policy lock (a flock on a file beside the state) holds across containers
    sharing the named volume: the second pass exits 2 at once and writes nothing."""
    redmine, policy, env = redmine_cli
    redmine.create_issue("Checkout down", priority="Urgent", created_at=at("2026-11-02T08:00:00"))
    folder = world_readable_dir(tmp_path / "policies", {"redmine-support.yaml": policy.read_text(encoding="utf-8")})
    volume = image.volume()
    options = ["--rm", "--label", podman_local.TEST_LABEL, "--network", "host", "--env", "REDMINE_API_KEY",
               "--volume", f"{folder}:{POLICY_DIR}:ro", "--volume", f"{volume}:{STATE_DIR}"]
    reached, release = block_on_put(redmine, 1)
    first = subprocess.Popen(
        ["podman", "run", *options, image.image_id, "run", f"{POLICY_DIR}/redmine-support.yaml", "--now", NOW],
        env=podman_local.podman_env(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert reached.wait(120), "the first pass never wrote"
        second = podman_local.podman("run", *options, image.image_id, "run", f"{POLICY_DIR}/redmine-support.yaml",
                                     "--now", NOW, "--metrics-file", f"{STATE_DIR}/refused.prom",
                                     env=env, check=False)
    finally:
        release.set()
        out, err = first.communicate(timeout=300)
        redmine.hook(None)
    assert second.returncode == 2, second.stdout + second.stderr
    assert "another sla-sync pass is running for policy 'acme-support" in second.stderr
    assert "this one writes nothing" in second.stderr
    assert first.returncode == 0, out + err
    refused = [(s.name, s.labels.get("kind"), s.value) for f in text_string_to_metric_families(
        (volume_path(volume) / "refused.prom").read_text()) for s in f.samples if s.name.startswith("sla_sync_errors")]
    assert ("sla_sync_errors_total", "locked", 1.0) in refused
