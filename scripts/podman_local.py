#!/usr/bin/env python3
"""Build and run sla-sync's container image with Debian's podman, offline.

Used by the image tests (``tests/image/``) and by hand. Stdlib only; it does not
import ``sla_sync``.

What it takes on this kind of machine (Debian 12, root, cgroup v1, no
CAP_SYS_RESOURCE, no container registry reachable):

* Debian's ``podman`` with ``runc`` (crun refuses this cgroup layout: "cgroups in
  hybrid mode not supported"), ``catatonit`` (``--init``), ``iptables`` and the CNI
  plugins (with ``dnsname``, so that compose services reach each other by name) for
  the build's and compose's networks, and ``mmdebstrap``; installed with apt on
  first use (``ensure_installed``).
* A ``containers.conf`` and a ``storage.conf`` of its own, named by
  ``CONTAINERS_CONF`` and ``CONTAINERS_STORAGE_CONF`` in the environment of every
  podman call (``podman_env``): runc, the cgroupfs manager, ulimits no higher than
  this machine's hard limits (podman's defaults fail with "setrlimit
  RLIMIT_NOFILE: Operation not permitted"), and images, volumes, networks and
  run-time state under ``$SLA_SYNC_PODMAN_CACHE`` (default
  ``/var/tmp/sla-sync-podman``) and ``/run/sla-sync-podman``. Nothing in ``/etc``
  changes, and the machine's own podman storage is left alone.
* A stand-in for the ``python:3.11-slim`` base (``ensure_python_base``), made once
  and kept in that storage: Debian bookworm's minimal root file system from the
  Debian archive the machine's apt uses, with python3, python3-venv, python3-pip
  and ca-certificates, and links for ``python``, ``python3`` and ``pip`` in
  ``/usr/local/bin`` as the official image has them. It is *not* the official
  image: Python is Debian's 3.11.2 under ``/usr``, not the official 3.11.x built
  under ``/usr/local``, and pip is Debian's.  Likewise ``redmine:5`` for the compose
  trial (``ensure_redmine_base``): Debian's Redmine 5.0 on SQLite (see ``REDMINE``).
* podman-compose from PyPI in a venv of its own (``ensure_podman_compose``).
* The build's pip trusts the certificate authorities the host's pip trusts: the
  host's CA bundle and a pip config naming it are bind-mounted over ``/root``
  (which exists in the base, so no mount point is left behind) for the RUN steps
  only (``build``); nothing of it ends up in the image.

Command line::

    python scripts/podman_local.py build [--tag sla-sync:0.1.0]   # install, base, build; prints the image id
    python scripts/podman_local.py env         # export lines for using the same podman set-up by hand
    python scripts/podman_local.py base [--rebuild]    # only the stand-in python:3.11-slim
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import posixpath
import resource
import shlex
import shutil
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("SLA_SYNC_PODMAN_CACHE", "/var/tmp/sla-sync-podman"))
RUN_DIR = Path(os.environ.get("SLA_SYNC_PODMAN_RUN", "/run/sla-sync-podman"))
APT_PACKAGES = (
    "podman", "runc", "catatonit", "mmdebstrap", "iptables", "containernetworking-plugins",
    "golang-github-containernetworking-plugin-dnsname",  # compose services find each other by name
)
STAND_IN_LABEL = "org.sla-sync.stand-in"
TEST_LABEL = "org.sla-sync.test"  # on every container and volume the tests make
SUITE = "bookworm"

DPKG_EXCLUDES = ("/usr/share/doc/*", "/usr/share/man/*", "/usr/share/info/*", "/usr/share/locale/*")


@dataclasses.dataclass(frozen=True)
class StandIn:
    """A Debian bookworm (minbase) image made with mmdebstrap in place of a registry's."""

    ref: str
    packages: tuple[str, ...]
    customize: tuple[str, ...]  # mmdebstrap --customize-hook commands ("$1" is the root)
    changes: tuple[str, ...]  # podman import --change instructions
    essential: tuple[str, ...] = ()  # mmdebstrap --essential-hook commands
    files: tuple[tuple[str, str], ...] = ()  # (path in the image, text): copied in first

    def key(self) -> str:
        """Names the recipe (what goes into the image): a change here makes a new image."""
        recipe = {k: v for k, v in dataclasses.asdict(self).items() if k != "ref"}
        text = json.dumps([SUITE, recipe, list(DPKG_EXCLUDES)])
        return hashlib.sha256(text.encode()).hexdigest()[:16]


# python:3.11-slim: the official image has python, python3 and pip in /usr/local/bin
# (and no EXTERNALLY-MANAGED marker: its pip may install into the system).
PYTHON = StandIn(
    ref="localhost/python:3.11-slim",  # `FROM python:3.11-slim` finds a local image first
    packages=("python3", "python3-venv", "python3-pip", "ca-certificates"),
    customize=(
        'ln -sf /usr/bin/python3 "$1/usr/local/bin/python"',
        'ln -sf /usr/bin/python3 "$1/usr/local/bin/python3"',
        'ln -sf /usr/bin/pip3 "$1/usr/local/bin/pip"',
        'rm -f "$1"/usr/lib/python3.*/EXTERNALLY-MANAGED',
    ),
    changes=(
        "ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin",
        "ENV LANG=C.UTF-8",
        'CMD ["python3"]',
    ),
)
PYTHON_BASE = PYTHON.ref

# redmine:5: Debian's Redmine 5.0 on SQLite, laid out as the official image is seen from
# outside: the database in /usr/src/redmine/sqlite (redmine.db), attachments in
# /usr/src/redmine/files, port 3000, Ruby for the compose file's health check.  The
# package's postinst migrates the database while the image is made (debconf answers
# below), so a new volume starts from a migrated database; the entrypoint migrates
# one that is missing.  Unlike the official image it runs as root and is Redmine 5.0.
REDMINE_DEBCONF = (
    "redmine redmine/current-instances string default",
    "redmine redmine/instances/default/dbconfig-install boolean true",
    "redmine redmine/instances/default/database-type select sqlite3",
    "redmine redmine/instances/default/default-language select en",
)
REDMINE_ENTRYPOINT = """#!/bin/sh
# Stand-in for the official redmine image's entrypoint (scripts/podman_local.py).
set -e
cd /usr/share/redmine
if [ ! -s /usr/src/redmine/sqlite/redmine.db ]; then
    bin/rake db:migrate
fi
rm -f /var/cache/redmine/default/tmp/pids/server.pid
exec "$@"
"""
REDMINE_DATABASE = """production:
  adapter: sqlite3
  database: /usr/src/redmine/sqlite/redmine.db
  pool: 5
  timeout: 10000
"""
REDMINE = StandIn(
    ref="localhost/redmine:5",
    packages=("redmine", "redmine-sqlite", "thin", "ca-certificates"),
    essential=tuple(f"echo '{line}' | chroot \"$1\" debconf-set-selections" for line in REDMINE_DEBCONF),
    files=(("/docker-entrypoint.sh", REDMINE_ENTRYPOINT),
           ("/etc/redmine/default/database.yml.stand-in", REDMINE_DATABASE)),
    customize=(
        'mkdir -p "$1/usr/src/redmine/sqlite" "$1/usr/src/redmine/files"',
        'mv "$1/var/lib/dbconfig-common/sqlite3/redmine/instances/default/redmine_default"'
        ' "$1/usr/src/redmine/sqlite/redmine.db"',
        'mv "$1/etc/redmine/default/database.yml.stand-in" "$1/etc/redmine/default/database.yml"',
        'rm -rf "$1/var/lib/redmine/default/files"; ln -s /usr/src/redmine/files "$1/var/lib/redmine/default/files"',
        'chmod 755 "$1/docker-entrypoint.sh"',
    ),
    changes=(
        "ENV RAILS_ENV=production",  # one ENV a variable: `podman import` takes no more
        "ENV REDMINE_INSTANCE=default",
        "ENV LANG=C.UTF-8",
        "ENV TZ=UTC",
        "WORKDIR /usr/share/redmine",
        "EXPOSE 3000",
        'ENTRYPOINT ["/docker-entrypoint.sh"]',
        'CMD ["bin/rails", "server", "-b", "0.0.0.0", "-p", "3000"]',
    ),
)


class PodmanError(RuntimeError):
    """Podman cannot be installed, configured or run here, or a step failed."""


# --------------------------------------------------------------------------
# Installation and configuration


def missing_tools() -> list[str]:
    """The commands of APT_PACKAGES that are not installed."""
    tools = {"podman": "podman", "runc": "runc", "mmdebstrap": "mmdebstrap", "iptables": "iptables"}
    missing = [pkg for pkg, exe in tools.items() if shutil.which(exe) is None]
    if not Path("/usr/lib/cni/bridge").exists():
        missing.append("containernetworking-plugins")
    if not Path("/usr/lib/cni/dnsname").exists():
        missing.append("golang-github-containernetworking-plugin-dnsname")
    if not any(Path(p).exists() for p in ("/usr/libexec/podman/catatonit", "/usr/bin/catatonit")):
        missing.append("catatonit")
    return missing


def cannot_install_reason() -> str | None:
    """Why the packages cannot be installed here (None: installed, or installable)."""
    if sys.platform != "linux":
        return f"podman needs Linux (this is {sys.platform})"
    if not missing_tools():
        return None
    if os.geteuid() != 0:
        return f"podman is not installed ({', '.join(missing_tools())} missing) and installing it needs root"
    if shutil.which("apt-get") is None:
        return f"podman is not installed ({', '.join(missing_tools())} missing) and there is no apt-get"
    return None


def ensure_installed() -> None:
    """Install APT_PACKAGES (podman and what it takes here) if any is missing."""
    reason = cannot_install_reason()
    if reason:
        raise PodmanError(reason)
    if not missing_tools():
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    lock = ["-o", "DPkg::Lock::Timeout=600"]  # the Redmine or PostgreSQL install may hold it
    for argv in (
        ["apt-get", *lock, "update", "-qq"],
        ["apt-get", *lock, "install", "-y", "-q", "--no-install-recommends", *APT_PACKAGES],
    ):
        done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise PodmanError(f"{' '.join(argv)} failed ({done.returncode}):\n{_tail(done.stdout + done.stderr)}")
    if missing_tools():
        raise PodmanError(f"still missing after apt-get install: {', '.join(missing_tools())}")


def _hard_limit(kind: int, ceiling: int) -> int:
    hard = resource.getrlimit(kind)[1]
    return ceiling if hard == resource.RLIM_INFINITY else min(hard, ceiling)


def containers_conf() -> str:
    """The containers.conf of this set-up (see the module's docstring)."""
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text().strip())
    nofile = _hard_limit(resource.RLIMIT_NOFILE, 1048576)
    nproc = _hard_limit(resource.RLIMIT_NPROC, pid_max)
    return (
        "# Written by scripts/podman_local.py; named by CONTAINERS_CONF in its podman calls only.\n"
        "[containers]\n"
        f'default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]\n'
        "[engine]\n"
        'runtime = "runc"\n'
        'cgroup_manager = "cgroupfs"\n'
        'events_logger = "file"\n'
        f'events_logfile_path = "{RUN_DIR}/events.log"\n'
        f'tmp_dir = "{RUN_DIR}/libpod"\n'
        "[network]\n"
        f'network_config_dir = "{CACHE}/networks"\n'
    )


def storage_conf() -> str:
    return (
        "# Written by scripts/podman_local.py; named by CONTAINERS_STORAGE_CONF in its podman calls only.\n"
        "[storage]\n"
        'driver = "overlay"\n'
        f'graphroot = "{CACHE}/storage"\n'
        f'runroot = "{RUN_DIR}/storage"\n'
    )


def podman_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for podman (and podman-compose) calls: this set-up's config files."""
    conf = CACHE / "conf"
    conf.mkdir(parents=True, exist_ok=True)
    (CACHE / "networks").mkdir(parents=True, exist_ok=True)
    for name, text in (("containers.conf", containers_conf()), ("storage.conf", storage_conf())):
        path = conf / name
        if not path.exists() or path.read_text() != text:
            partial = path.with_suffix(f".tmp{os.getpid()}-{threading.get_ident()}")
            partial.write_text(text)
            os.replace(partial, path)
    return {
        **(os.environ if base is None else base),
        "CONTAINERS_CONF": str(conf / "containers.conf"),
        "CONTAINERS_STORAGE_CONF": str(conf / "storage.conf"),
    }


def podman(
    *args: str, timeout: float = 300, check: bool = True, input_text: str | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``podman ARGS`` with this set-up; raise PodmanError on failure when ``check``."""
    done = subprocess.run(
        ["podman", *args], env=podman_env(env), capture_output=True, text=True, timeout=timeout,
        input=input_text, check=False,
    )
    if check and done.returncode != 0:
        raise PodmanError(f"podman {shlex.join(args)} exited {done.returncode}:\n{_tail(done.stdout + done.stderr)}")
    return done


def cannot_run_reason() -> str | None:
    """Why podman cannot run containers here at all (None: it can).

    Installs the packages first if they are missing and can be installed."""
    reason = cannot_install_reason()
    if reason:
        return reason
    try:
        ensure_installed()
    except PodmanError as exc:
        return str(exc)
    done = podman("info", "--format", "json", check=False, timeout=120)
    if done.returncode != 0:
        return f"podman info fails: {_tail(done.stderr, 5)}"
    return None


def remove_leftovers() -> None:
    """Stopped containers and unused volumes that a killed test session left behind (they
    carry TEST_LABEL), two hours old or more: a session running meanwhile keeps its own."""
    podman("container", "prune", "--force", "--filter", f"label={TEST_LABEL}", "--filter", "until=2h", check=False)
    podman("volume", "prune", "--force", "--filter", f"label={TEST_LABEL}", "--filter", "until=2h", check=False)


@contextlib.contextmanager
def exclusive(name: str) -> Iterator[None]:
    """One holder at a time on this machine (e.g. of port 3000 for the compose trial)."""
    with _locked(name):
        yield


# --------------------------------------------------------------------------
# The stand-in base


@contextlib.contextmanager
def _locked(name: str) -> Iterator[None]:
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f"{name}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def debian_sources() -> str:
    """The apt sources mmdebstrap reads Debian from: the machine's own (or $SLA_SYNC_DEBIAN_SOURCES)."""
    chosen = os.environ.get("SLA_SYNC_DEBIAN_SOURCES")
    if chosen:
        return chosen
    for candidate in ("/etc/apt/sources.list.d/debian.sources", "/etc/apt/sources.list"):
        path = Path(candidate)
        if path.is_file() and any(
            line.strip() and not line.lstrip().startswith("#") for line in path.read_text().splitlines()
        ):
            return candidate
    raise PodmanError(
        "no Debian apt sources found (/etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list);"
        " set SLA_SYNC_DEBIAN_SOURCES to a sources file or a mirror URL"
    )


def image_label(ref: str, label: str) -> str | None:
    """A label of a local image (None when the image or the label is missing)."""
    done = podman("image", "inspect", "--format", "{{json .Labels}}", ref, check=False)
    if done.returncode != 0:
        return None
    labels = json.loads(done.stdout.strip() or "null") or {}
    value = labels.get(label)
    return str(value) if value is not None else None


def make_stand_in(recipe: StandIn, *, rebuild: bool = False, timeout: float = 900) -> float:
    """Make ``recipe``'s image once (kept in the storage); the seconds it took (0.0: cached)."""
    key = recipe.key()
    with _locked(f"stand-in-{recipe.ref.rsplit('/', 1)[-1]}"):
        if not rebuild and image_label(recipe.ref, STAND_IN_LABEL) == key:
            return 0.0
        started = time.monotonic()
        replaced = podman("image", "inspect", "--format", "{{.Id}}", recipe.ref, check=False).stdout.strip()
        staging = CACHE / f"stand-in-{key}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        copies = []
        for n, (path, text) in enumerate(recipe.files):
            (staging / str(n)).write_text(text)
            copies.append(f'mkdir -p "$1{posixpath.dirname(path)}"; cp "{staging / str(n)}" "$1{path}"')
        argv = [
            "mmdebstrap", "--variant=minbase", "--format=tar", "--quiet",
            f"--include={','.join(recipe.packages)}",
            "--aptopt=Apt::Install-Recommends \"false\"",
            "--dpkgopt=force-unsafe-io",  # the root file system is a tarball in the end
            *[f"--dpkgopt=path-exclude={p}" for p in DPKG_EXCLUDES],
            *[f"--essential-hook={hook}" for hook in recipe.essential],
            *[f"--customize-hook={hook}" for hook in (*copies, *recipe.customize)],
            '--customize-hook=rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin',
            SUITE, "-", debian_sources(),
        ]
        changes = (*recipe.changes, f"LABEL {STAND_IN_LABEL}={key}")
        import_argv = ["podman", "import", *[a for c in changes for a in ("--change", c)], "-", recipe.ref]
        log = CACHE / f"stand-in-{key}.log"
        with open(log, "w") as err:
            bootstrap = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, env=_mmdebstrap_env())
            assert bootstrap.stdout is not None
            try:
                imported = subprocess.run(import_argv, stdin=bootstrap.stdout, env=podman_env(),
                                          capture_output=True, text=True, timeout=timeout, check=False)
            finally:
                bootstrap.stdout.close()
                code = bootstrap.wait(timeout=60)
        shutil.rmtree(staging, ignore_errors=True)
        if code != 0:
            raise PodmanError(f"mmdebstrap failed ({code}); log {log}:\n{_tail(log.read_text())}")
        if imported.returncode != 0:
            raise PodmanError(f"podman import failed:\n{_tail(imported.stdout + imported.stderr)}")
        if replaced:
            podman("rmi", replaced, check=False)  # the stand-in of an older recipe, if unused
        return time.monotonic() - started


def _mmdebstrap_env() -> dict[str, str]:
    """mmdebstrap's chroot in memory when there is room (dpkg and the clean-up are much
    faster there than on this machine's disk)."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK) and shutil.disk_usage(shm).free > 4 << 30:
        return {**os.environ, "TMPDIR": str(shm)}
    return dict(os.environ)


def ensure_python_base(rebuild: bool = False) -> float:
    """The stand-in ``python:3.11-slim``; returns the seconds spent making it (0.0: cached)."""
    return make_stand_in(PYTHON, rebuild=rebuild)


def ensure_redmine_base(rebuild: bool = False) -> float:
    """The stand-in ``redmine:5``; returns the seconds spent making it (0.0: cached)."""
    return make_stand_in(REDMINE, rebuild=rebuild)


# --------------------------------------------------------------------------
# Building


def host_pip_settings() -> dict[str, str]:
    """The CA bundle the host's pip trusts, and its index if it names one."""
    found: dict[str, str] = {}
    done = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True,
                          check=False, timeout=60)
    for line in done.stdout.splitlines():
        key, _, value = line.partition("=")
        name = key.rsplit(".", 1)[-1]
        if name in ("cert", "index-url"):
            found[name] = value.strip().strip("'\"")
    if os.environ.get("PIP_CERT"):
        found["cert"] = os.environ["PIP_CERT"]
    if os.environ.get("PIP_INDEX_URL"):
        found["index-url"] = os.environ["PIP_INDEX_URL"]
    if "cert" not in found:
        found["cert"] = ssl.get_default_verify_paths().cafile or "/etc/ssl/certs/ca-certificates.crt"
    if found.get("index-url", "").startswith("file:"):
        del found["index-url"]  # a folder of the host's: not there in the build
    return found


def build_home() -> Path:
    """What the build's RUN steps see as /root: the host's CA bundle and a pip config naming it."""
    settings = host_pip_settings()
    home = CACHE / "build-home"
    (home / ".config" / "pip").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(settings["cert"], home / "host-ca.crt")
    lines = ["[global]", "cert = /root/host-ca.crt"]
    if "index-url" in settings:
        lines.append(f"index-url = {settings['index-url']}")
    (home / ".config" / "pip" / "pip.conf").write_text("\n".join(lines) + "\n")
    return home


def build_args() -> list[str]:
    """What every build of the image here adds to `podman build` (also compose's): the
    host's CA bundle and pip config over /root, for the RUN steps only."""
    return ["--volume", f"{build_home()}:/root:ro"]


def build(tag: str, context: Path = ROOT, *, timeout: float = 900) -> tuple[str, float, str]:
    """``podman build`` of ``context``'s Dockerfile, unchanged, from scratch: no cached
    layer is used, but the new layers are kept (a compose build of the same files then
    reuses them; ``prune_images`` removes them).

    Returns (image id, seconds, build log)."""
    iidfile = CACHE / f"iid-{os.getpid()}"
    started = time.monotonic()
    done = podman(
        "build", "--pull=never", "--no-cache", "--layers", "--iidfile", str(iidfile), *build_args(),
        "--tag", tag, str(context), timeout=timeout, check=False,
    )
    seconds = time.monotonic() - started
    if done.returncode != 0:
        raise PodmanError(f"podman build failed ({done.returncode}):\n{_tail(done.stdout + done.stderr, 60)}")
    image_id = iidfile.read_text().strip()
    iidfile.unlink()
    return image_id, seconds, done.stdout + done.stderr


def prune_images() -> None:
    """Remove the intermediate and untagged images that builds left."""
    podman("image", "prune", "--force", check=False)


def image_size(ref: str) -> int:
    return int(podman("image", "inspect", "--format", "{{.Size}}", ref).stdout.strip())


# --------------------------------------------------------------------------
# Compose


COMPOSE_REQUIREMENT = "podman-compose>=1.1,<2"  # 1.1 reads env_file's `path:`/`required:` form


def ensure_podman_compose() -> Path:
    """podman-compose from PyPI in a venv of its own under the cache (Debian's 1.0.3
    cannot read the compose file's `env_file` entries with `required: false`)."""
    venv = CACHE / "compose-venv"
    exe = venv / "bin" / "podman-compose"
    with _locked("compose"):
        if exe.exists():
            return exe
        shutil.rmtree(venv, ignore_errors=True)
        for argv in ([sys.executable, "-m", "venv", str(venv)],
                     [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", COMPOSE_REQUIREMENT]):
            done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
            if done.returncode != 0:
                shutil.rmtree(venv, ignore_errors=True)
                raise PodmanError(f"{' '.join(argv)} failed:\n{_tail(done.stdout + done.stderr)}")
    return exe


def wait_healthy(container: str, timeout: float = 180) -> float:
    """Run the container's own health check until it passes (podman runs health checks on
    a schedule only through systemd, which this machine has not); the seconds it took."""
    started = time.monotonic()
    while True:
        done = podman("healthcheck", "run", container, check=False, timeout=60)
        if done.returncode == 0:
            return time.monotonic() - started
        state = podman("inspect", "--format", "{{.State.Status}}", container, check=False).stdout.strip()
        if state not in ("running", "created", "configured"):
            logs = podman("logs", container, check=False)
            raise PodmanError(f"{container} is {state}:\n{_tail(logs.stdout + logs.stderr)}")
        if time.monotonic() - started > timeout:
            raise PodmanError(f"{container} not healthy after {timeout:.0f} s: {_tail(done.stdout + done.stderr, 5)}")
        time.sleep(1)


def wait_log(container: str, text: str, timeout: float = 120) -> str:
    """The container's log once it holds ``text``."""
    started = time.monotonic()
    while True:
        done = podman("logs", container, check=False)
        log = done.stdout + done.stderr
        if text in log:
            return log
        if time.monotonic() - started > timeout:
            raise PodmanError(f"no {text!r} in the log of {container} after {timeout:.0f} s:\n{_tail(log)}")
        time.sleep(0.5)


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="install podman if needed, make the stand-in base, build the image")
    b.add_argument("--tag", default="localhost/sla-sync:0.1.0")
    base = sub.add_parser("base", help="only make the stand-in python:3.11-slim")
    base.add_argument("--rebuild", action="store_true")
    sub.add_parser("env", help="print export lines for podman with this set-up")
    args = parser.parse_args(argv)
    try:
        ensure_installed()
        if args.command == "env":
            env = podman_env({})
            for key in ("CONTAINERS_CONF", "CONTAINERS_STORAGE_CONF"):
                print(f"export {key}={shlex.quote(env[key])}")
            return 0
        took = ensure_python_base(rebuild=getattr(args, "rebuild", False))
        print(f"stand-in {PYTHON_BASE}: {f'made in {took:.0f} s' if took else 'cached'}", file=sys.stderr)
        if args.command == "build":
            image_id, seconds, _log = build(args.tag)
            print(f"built {args.tag} in {seconds:.0f} s, {image_size(image_id) / 1e6:.0f} MB", file=sys.stderr)
            print(image_id)
        return 0
    except PodmanError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
