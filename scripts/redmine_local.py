#!/usr/bin/env python3
"""Bring up a real, isolated Redmine 5.0 (Debian's packages) on loopback.

Used by the test suite (the ``redmine`` marker) and by the demo. Stdlib only;
it does not import ``sla_sync``.

How isolation works
-------------------
Debian's Redmine is multi-tenant: ``REDMINE_INSTANCE=NAME`` makes Rails read its
``config/database.yml``, ``secret_key.txt``, ``configuration.yml`` and use its
``log/``, ``tmp/`` (cache, pids), ``files/`` from
``/usr/share/redmine/instances/NAME`` (``instances`` -> ``/var/lib/redmine``).
The instance name is joined to that path unchecked, so a name made of enough
``../`` followed by an absolute path without its leading slash points Redmine at
any directory. Each instance therefore lives entirely under
``STATE_DIR/redmine/`` with its own SQLite file, and nothing of the system's
``default`` instance (or of ``/etc/redmine``, ``/var/lib/redmine``) is touched.

Boot cost
---------
A pristine database (migrated, default data loaded, REST API and group
assignment enabled, notifications off, and optionally the sla-sync fixture) is
built once with a single ``rails runner`` and cached as
``/var/tmp/sla-sync-redmine-pristine-<key>.sqlite3`` (``key`` covers the
Redmine package version and the Ruby scripts below). ``start()`` copies it,
gives every API key a fresh random value with one SQL statement, and boots
``rails server`` (thin) bound to 127.0.0.1.

Redmine 5.0 behaviour checked against this server
-------------------------------------------------
* ``created_on`` cannot be set through REST (ignored; ``start_date`` can): seed
  history with ``backdate()``, direct SQLite UPDATEs that a running server sees
  on the next request. Journals have no ``updated_on`` in 5.0, and
  ``include=journals`` orders them by ``created_on, id``.
* ``updated_on=>=2024-03-01T13:00:00Z`` works (also ``><A|B`` and plain
  dates); offsets (``+01:00``), fractions and a space instead of ``T`` give 422.
  ``>=T`` is evaluated as ``> T - 1 s``, so the window overlaps by a second.
* Multi-value list field: ``custom_fields: [{"id": N, "value": ["a", "b"]}]``;
  one journal detail per added/removed value (``property: "cf"``,
  ``name: "N"``); an unknown value gives 422.
* Private notes are seen only by users with ``view_private_notes`` in the
  project and by their author. A private note sent with attribute changes is
  split into a public journal with the details (``notes: null``) and a private
  one with the text. Without ``set_notes_private`` the flag is silently
  dropped and the note is posted *public*.
* Group assignment needs ``Setting.issue_group_assignment`` and the group as a
  project member; ``assigned_to_id=me`` then also matches the user's groups.

Command line::

    python scripts/redmine_local.py up --state-dir DIR [--port N] [--no-fixture]
    python scripts/redmine_local.py status --state-dir DIR
    python scripts/redmine_local.py down --state-dir DIR
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fcntl
import hashlib
import http.client
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REDMINE_ROOT = Path("/usr/share/redmine")
APT_PACKAGES = ("redmine", "redmine-sqlite", "thin")
# Answers for the questions of redmine's debconf/dbconfig-common config script,
# so that a noninteractive install configures the system's "default" instance
# on SQLite without asking anything.
DEBCONF_SELECTIONS = """\
redmine redmine/current-instances string default
redmine redmine/instances/default/dbconfig-install boolean true
redmine redmine/instances/default/database-type select sqlite3
redmine redmine/instances/default/default-language select en
"""
PRISTINE_DIR = Path(os.environ.get("SLA_SYNC_REDMINE_CACHE", "/var/tmp"))
PASSWORD = "sla-sync-secret-1"
PROJECT_IDENTIFIER = "support"
PROJECT_NAME = "Customer Support"
ROLE_NAME = "SLA Agent"
AGENTS = ("alice", "bob", "carol")
CUSTOMERS = ("dave", "erin")
MANAGERS = ("manager",)
USERS = (*AGENTS, *CUSTOMERS, *MANAGERS)
GROUPS: Mapping[str, tuple[str, ...]] = {
    "l2-team": ("bob", "carol"),
    "support-agents": ("alice", "bob", "carol"),
}
SLA_VALUES = (
    "sla:P1",
    "sla:P2",
    "sla:P3",
    "sla:P4",
    "sla:at-risk",
    "sla:breached",
    "sla:escalated-1",
    "sla:escalated-2",
    "sla:escalated-3",
)
ROLE_PERMISSIONS = (
    "view_issues",
    "add_issues",
    "edit_issues",
    "add_issue_notes",
    "view_private_notes",
    "set_notes_private",
    "view_issue_watchers",
    "add_issue_watchers",
    "delete_issue_watchers",
    "set_issues_private",
    "manage_issue_relations",
)
BOOT_TIMEOUT = 120.0
# Server and runner run with TZ=UTC: Redmine sets
# active_record.default_timezone = :local, so the SQLite columns then hold UTC.
_TS_FORMAT = "%Y-%m-%d %H:%M:%S.%f"

# One rails runner turns an empty database into the pristine one: migrations,
# default data (trackers, statuses, priorities, roles, workflows), settings.
_RUBY_BASE = r"""
ActiveRecord::Base.connection.migration_context.migrate
ActiveRecord::Base.descendants.each(&:reset_column_information)
Setting.clear_cache
Redmine::DefaultData::Loader.load('en') if Redmine::DefaultData::Loader.no_data?
Setting.rest_api_enabled = '1'
Setting.issue_group_assignment = '1'
Setting.notified_events = []
admin = User.find_by_login('admin')
admin.password = admin.password_confirmation = ENV.fetch('SLA_SYNC_PASSWORD')
admin.must_change_passwd = false
admin.mail_notification = 'none'
admin.save!
admin.api_key
"""

# Idempotent: run again on an existing database it only fills in what is missing.
_RUBY_FIXTURE = r"""
require 'json'
spec = JSON.parse(ENV.fetch('SLA_SYNC_FIXTURE'))
password = ENV.fetch('SLA_SYNC_PASSWORD')
Setting.rest_api_enabled = '1'
Setting.issue_group_assignment = '1'
trackers = Tracker.where(name: %w[Bug Feature Support]).to_a

role = Role.find_or_initialize_by(name: spec['role'])
new_role = role.new_record?
role.assignable = true
role.issues_visibility = 'all'
role.users_visibility = 'all'
role.permissions = spec['permissions'].map(&:to_sym)
role.save!
role.copy_workflow_rules(Role.find_by_name('Manager')) if new_role

project = Project.find_or_initialize_by(identifier: spec['project']['identifier'])
project.name = spec['project']['name']
project.is_public = false
project.trackers = trackers
project.enabled_module_names = ['issue_tracking']
project.save!

def ensure_member(project, principal, role)
  member = Member.where(project_id: project.id, user_id: principal.id).first
  if member.nil?
    Member.new(project: project, principal: principal, roles: [role]).save!
  elsif !member.member_roles.any? { |mr| mr.role_id == role.id && mr.inherited_from.nil? }
    member.member_roles << MemberRole.new(role: role)
  end
end

users = {}
spec['users'].each do |login, (first, last)|
  user = User.find_or_initialize_by(login: login)
  if user.new_record?
    user.password = user.password_confirmation = password
  end
  user.firstname = first
  user.lastname = last
  user.mail = "#{login}@example.test" if user.mail.blank?
  user.status = User::STATUS_ACTIVE
  user.must_change_passwd = false
  user.mail_notification = 'none'
  user.save!
  user.api_key
  ensure_member(project, user, role)
  users[login] = user
end

spec['groups'].each do |name, logins|
  group = Group.find_or_initialize_by(lastname: name)
  group.save! if group.new_record?
  logins.each { |l| group.users << users[l] unless group.users.include?(users[l]) }
  ensure_member(project, group, role)
end

sla = IssueCustomField.find_or_initialize_by(name: 'SLA')
if sla.new_record?
  sla.field_format = 'list'
end
sla.multiple = true
sla.possible_values = spec['sla_values']
sla.is_for_all = true
sla.is_filter = true
sla.visible = true
sla.editable = true
sla.trackers = trackers
sla.save!

csat = IssueCustomField.find_or_initialize_by(name: 'CSAT')
csat.field_format = 'int' if csat.new_record?
csat.is_for_all = true
csat.is_filter = true
csat.visible = true
csat.editable = true
csat.trackers = trackers
csat.save!

left = IssueCustomField.find_or_initialize_by(name: 'SLA hours left')
left.field_format = 'int' if left.new_record?
left.is_for_all = true
left.is_filter = true
left.visible = true
left.editable = true
left.trackers = trackers
left.save!
"""


class RedmineError(RuntimeError):
    """Raised when Redmine cannot be installed, built, started or set up."""


@dataclasses.dataclass
class Instance:
    """A running Redmine; ``stop()`` ends it (also from another process)."""

    url: str
    admin_api_key: str
    pid: int
    log_path: Path
    state_dir: Path
    db_path: Path
    port: int
    _process: subprocess.Popen[bytes] | None = dataclasses.field(default=None, repr=False, compare=False)

    def stop(self, timeout: float = 15.0) -> None:
        """Terminate the server's process group, wait, kill it if it lingers."""
        if not _alive(self.pid):
            return
        if self._process is None and not _is_rails_server(self.pid):
            return  # the pid was reused by something that is not our server
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGTERM)
        if _wait_gone(self.pid, timeout, self._process):
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        _wait_gone(self.pid, 5.0, self._process)

    def to_json(self) -> dict[str, Any]:
        """Return the fields that ``instance.json`` keeps."""
        return {
            "url": self.url,
            "admin_api_key": self.admin_api_key,
            "pid": self.pid,
            "log_path": str(self.log_path),
            "state_dir": str(self.state_dir),
            "db_path": str(self.db_path),
            "port": self.port,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Instance:
        """Rebuild an ``Instance`` from ``to_json()`` output (no process handle)."""
        return cls(
            url=data["url"],
            admin_api_key=data["admin_api_key"],
            pid=int(data["pid"]),
            log_path=Path(data["log_path"]),
            state_dir=Path(data["state_dir"]),
            db_path=Path(data["db_path"]),
            port=int(data["port"]),
        )


# --------------------------------------------------------------------------
# Installation


def ensure_installed() -> None:
    """Install Debian's Redmine 5.0 on SQLite with thin, unless it is there.

    Preseeds debconf so that dbconfig-common configures the system's
    ``default`` instance on SQLite without a prompt. Recommends (passenger,
    and with it apache) are skipped. A no-op costing one ``stat`` when
    ``/usr/share/redmine`` and thin already exist.
    """
    if (REDMINE_ROOT / "bin" / "rails").exists() and shutil.which("thin"):
        return
    if os.geteuid() != 0:
        raise RedmineError("Redmine is not installed and installing it needs root")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["debconf-set-selections"], input=DEBCONF_SELECTIONS.encode(), check=True)
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(
        [
            "apt-get",
            "install",
            "-y",
            "-q",
            "--no-install-recommends",
            *APT_PACKAGES,
        ],
        check=True,
        env=env,
    )


def redmine_version() -> str:
    """Return the installed Debian version of the ``redmine`` package."""
    out = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Version}", "redmine"],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


# --------------------------------------------------------------------------
# Per-instance directory and Rails invocations


def _instance_name(root: Path) -> str:
    """Return a REDMINE_INSTANCE value making Redmine use ``root`` as instance dir."""
    return "../" * 16 + str(root.resolve()).lstrip("/")


def _make_instance_dir(root: Path, db_path: Path) -> None:
    """Lay out config/, log/, tmp/, files/ for a Redmine instance under ``root``."""
    for sub in (
        "config",
        "log",
        "files",
        "public/plugin_assets",
        "tmp/cache",
        "tmp/pids",
        "tmp/sockets",
        "tmp/sessions",
        "tmp/imports",
        "tmp/thumbnails",
    ):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "config" / "database.yml").write_text(
        f"production:\n  adapter: sqlite3\n  database: {json.dumps(str(db_path))}\n  pool: 5\n  timeout: 10000\n"
    )
    secret = root / "config" / "secret_key.txt"
    if not secret.exists():
        secret.write_text(os.urandom(32).hex() + "\n")


def _rails_env(root: Path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("RAILS_", "RACK_", "BUNDLE_", "GEM_", "RUBY"))
    }
    env.update(
        RAILS_ENV="production",
        REDMINE_INSTANCE=_instance_name(root),
        TZ="UTC",
        LANG="C.UTF-8",
        SLA_SYNC_PASSWORD=PASSWORD,
    )
    return env


def _fixture_spec() -> dict[str, Any]:
    names = {
        "alice": ("Alice", "Agent"),
        "bob": ("Bob", "Agent"),
        "carol": ("Carol", "Agent"),
        "dave": ("Dave", "Customer"),
        "erin": ("Erin", "Customer"),
        "manager": ("Mona", "Manager"),
    }
    return {
        "role": ROLE_NAME,
        "permissions": list(ROLE_PERMISSIONS),
        "project": {"identifier": PROJECT_IDENTIFIER, "name": PROJECT_NAME},
        "users": {login: list(names[login]) for login in USERS},
        "groups": {name: list(members) for name, members in GROUPS.items()},
        "sla_values": list(SLA_VALUES),
    }


def _rails_runner(root: Path, script: str, timeout: float = 300.0) -> str:
    """Run ``script`` with ``rails runner`` against the instance at ``root``."""
    env = _rails_env(root)
    env["SLA_SYNC_FIXTURE"] = json.dumps(_fixture_spec())
    with tempfile.NamedTemporaryFile("w", suffix=".rb", delete=False) as handle:
        handle.write(script)
        path = handle.name
    try:
        proc = subprocess.run(
            ["bin/rails", "runner", path],
            check=False,
            cwd=REDMINE_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    finally:
        os.unlink(path)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-40:])
        raise RedmineError(f"rails runner failed ({proc.returncode}):\n{tail}")
    return proc.stdout


# --------------------------------------------------------------------------
# Pristine database cache


def pristine_path(fixture: bool = True) -> Path:
    """Return where the cached pristine database for this Redmine version lives."""
    digest = hashlib.sha256()
    for part in (redmine_version(), _RUBY_BASE, json.dumps(_fixture_spec())):
        digest.update(part.encode())
    if fixture:
        digest.update(_RUBY_FIXTURE.encode())
    kind = "fixture" if fixture else "base"
    return PRISTINE_DIR / f"sla-sync-redmine-pristine-{kind}-{digest.hexdigest()[:12]}.sqlite3"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_pristine(fixture: bool = True, rebuild: bool = False) -> Path:
    """Return the cached pristine database, building it first if needed.

    Building costs one Rails boot (about 5 s: migrations, default data,
    settings and, with ``fixture``, the sla-sync fixture in the same process).
    Concurrent callers serialise on a lock file next to the cache.
    """
    target = pristine_path(fixture)
    PRISTINE_DIR.mkdir(parents=True, exist_ok=True)
    with _locked(PRISTINE_DIR / "sla-sync-redmine-pristine.lock"):
        if target.exists() and not rebuild:
            return target
        with tempfile.TemporaryDirectory(prefix="sla-sync-redmine-build-") as tmp:
            root = Path(tmp) / "redmine"
            db_path = root / "db" / "redmine.sqlite3"
            db_path.parent.mkdir(parents=True)
            _make_instance_dir(root, db_path)
            _rails_runner(root, _RUBY_BASE + (_RUBY_FIXTURE if fixture else ""))
            partial = target.with_suffix(f".tmp{os.getpid()}")
            shutil.copyfile(db_path, partial)
            os.replace(partial, target)
    return target


# --------------------------------------------------------------------------
# Processes


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def _is_rails_server(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"rails\0server" in cmdline


def _wait_gone(pid: int, timeout: float, process: subprocess.Popen[bytes] | None) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            return True
        if process is None and not _alive(pid):
            return True
        time.sleep(0.1)
    return False


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _log_tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def _wait_http(url: str, process: subprocess.Popen[bytes], log_path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RedmineError(
                f"Redmine exited with code {process.returncode} while booting; log {log_path}:\n{_log_tail(log_path)}"
            )
        try:
            with urllib.request.urlopen(url + "/login", timeout=5) as response:
                if response.status == 200:
                    return
        except urllib.error.HTTPError as err:
            if err.code < 500:
                return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise RedmineError(
                f"Redmine did not answer on {url} within {timeout:.0f} s; log {log_path}:\n{_log_tail(log_path)}"
            )
        time.sleep(0.25)


def start(
    state_dir: Path,
    port: int | None = None,
    *,
    fixture: bool = True,
    timeout: float = BOOT_TIMEOUT,
) -> Instance:
    """Start an isolated Redmine with a fresh copy of the pristine database.

    Everything lives in ``state_dir/redmine`` (its database is
    ``state_dir/redmine/db/redmine.sqlite3``); an older database there is
    replaced. Binds 127.0.0.1 only, on ``port`` or a free one. The server runs
    in its own session (process group) so it outlives the caller unless
    ``stop()`` is called. With ``fixture`` (default) the database already holds
    what ``setup_fixture()`` creates.
    """
    ensure_installed()
    pristine = ensure_pristine(fixture)
    state_dir = Path(state_dir).resolve()
    root = state_dir / "redmine"
    db_path = root / "db" / "redmine.sqlite3"
    pid_file = root / "tmp" / "pids" / "server.pid"
    with contextlib.suppress(FileNotFoundError, ValueError):
        running = int(pid_file.read_text().strip())
        if _alive(running) and _is_rails_server(running):
            raise RedmineError(f"a Redmine from {state_dir} is still running (pid {running})")
    db_path.parent.mkdir(parents=True, exist_ok=True)
    for stale in db_path.parent.glob("redmine.sqlite3*"):
        stale.unlink()
    shutil.copyfile(pristine, db_path)
    _make_instance_dir(root, db_path)
    with _connect(db_path) as conn:
        # A fresh secret per instance: no key is valid on two instances.
        conn.execute("UPDATE tokens SET value = lower(hex(randomblob(20))) WHERE action = 'api'")
        admin_key = _scalar(
            conn,
            "SELECT t.value FROM tokens t JOIN users u ON u.id = t.user_id "
            "WHERE u.login = 'admin' AND t.action = 'api'",
        )
    port = port or free_port()
    log_path = state_dir / "redmine-server.log"
    pid_file.unlink(missing_ok=True)
    env = _rails_env(root)
    env["RAILS_LOG_TO_STDOUT"] = "1"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [
                "bin/rails",
                "server",
                "-u",
                "thin",
                "-e",
                "production",
                "-b",
                "127.0.0.1",
                "-p",
                str(port),
                "-P",
                str(pid_file),
            ],
            cwd=REDMINE_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    instance = Instance(
        url=f"http://127.0.0.1:{port}",
        admin_api_key=str(admin_key),
        pid=process.pid,
        log_path=log_path,
        state_dir=state_dir,
        db_path=db_path,
        port=port,
        _process=process,
    )
    try:
        _wait_http(instance.url, process, log_path, timeout)
    except BaseException:
        instance.stop()
        raise
    return instance


# --------------------------------------------------------------------------
# Fixture


@contextlib.contextmanager
def _connect(db_path: Path) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(db_path, timeout=30)
    try:
        with conn:
            yield conn
    finally:
        conn.close()


def _scalar(conn: sqlite3.Connection, sql: str, params: Sequence[Any] = ()) -> Any:
    row = conn.execute(sql, params).fetchone()
    return None if row is None else row[0]


def read_fixture(db_path: Path) -> dict[str, Any] | None:
    """Read the fixture's ids and keys from the database; None if incomplete."""
    with _connect(db_path) as conn:
        marks = ",".join("?" * len(USERS))
        users = {
            login: {"id": uid, "api_key": key, "password": PASSWORD}
            for uid, login, key in conn.execute(
                "SELECT u.id, u.login, t.value FROM users u LEFT JOIN tokens t "
                "ON t.user_id = u.id AND t.action = 'api' "
                f"WHERE u.type = 'User' AND u.login IN ({marks})",
                USERS,
            )
        }
        groups = dict(
            conn.execute(
                "SELECT lastname, id FROM users WHERE type = 'Group' AND lastname IN (?, ?)",
                tuple(GROUPS),
            ).fetchall()
        )
        custom_fields = dict(
            conn.execute(
                "SELECT name, id FROM custom_fields WHERE type = 'IssueCustomField' "
                "AND name IN ('SLA', 'CSAT', 'SLA hours left')"
            ).fetchall()
        )
        project_id = _scalar(conn, "SELECT id FROM projects WHERE identifier = ?", (PROJECT_IDENTIFIER,))
        role_id = _scalar(conn, "SELECT id FROM roles WHERE name = ?", (ROLE_NAME,))
        members = {
            principal
            for (principal,) in conn.execute(
                "SELECT DISTINCT CASE WHEN u.type = 'Group' THEN u.lastname ELSE u.login END "
                "FROM members m "
                "JOIN member_roles mr ON mr.member_id = m.id "
                "JOIN users u ON u.id = m.user_id "
                "WHERE m.project_id = ? AND mr.role_id = ? AND mr.inherited_from IS NULL",
                (project_id, role_id),
            )
        }
        settings = dict(
            conn.execute(
                "SELECT name, value FROM settings WHERE name IN ('rest_api_enabled', 'issue_group_assignment')"
            ).fetchall()
        )
        statuses = dict(conn.execute("SELECT name, id FROM issue_statuses").fetchall())
        closed = [
            name for (name,) in conn.execute("SELECT name FROM issue_statuses WHERE is_closed = 1 ORDER BY position")
        ]
        priorities = dict(
            conn.execute("SELECT name, id FROM enumerations WHERE type = 'IssuePriority' ORDER BY position").fetchall()
        )
        trackers = dict(conn.execute("SELECT name, id FROM trackers").fetchall())
    complete = (
        len(users) == len(USERS)
        and all(u["api_key"] for u in users.values())
        and len(groups) == len(GROUPS)
        and len(custom_fields) == 3
        and project_id is not None
        and members >= {*USERS, *GROUPS}
        and settings.get("rest_api_enabled") == "1"
        and settings.get("issue_group_assignment") == "1"
    )
    if not complete:
        return None
    return {
        "project": {"id": project_id, "identifier": PROJECT_IDENTIFIER, "name": PROJECT_NAME},
        "role_id": role_id,
        "users": users,
        "agents": list(AGENTS),
        "customers": list(CUSTOMERS),
        "managers": list(MANAGERS),
        "groups": {name: {"id": gid, "members": list(GROUPS[name])} for name, gid in groups.items()},
        "custom_fields": custom_fields,
        "sla_values": list(SLA_VALUES),
        "statuses": statuses,
        "closed_statuses": closed,
        "priorities": priorities,
        "trackers": trackers,
    }


def setup_fixture(instance: Instance, *, force: bool = False) -> dict[str, Any]:
    """Make sure the sla-sync fixture exists on ``instance`` and describe it.

    Creates (idempotently) project ``support`` ("Customer Support", trackers
    Bug/Feature/Support, module issue_tracking, private), role ``SLA Agent``
    (view/add/edit issues, notes, private notes, watchers; assignable;
    workflows copied from Manager), users alice/bob/carol (agents), dave/erin
    (customers), manager — password ``sla-sync-secret-1``, each with an API
    key and membership — groups ``l2-team`` (bob, carol) and
    ``support-agents`` (alice, bob, carol) as project members, issue custom
    fields ``SLA`` (multi-value list), ``CSAT`` (int) and ``SLA hours left``
    (int, the time left) for all projects and trackers, and enables REST and
    group assignment.

    When the instance was started from the fixture pristine database (the
    default) this only reads the database; otherwise it costs one
    ``rails runner`` (about 5 s) next to the running server.

    Returns ``{"project": {...}, "users": {login: {"id", "api_key",
    "password"}}, "groups": {name: {"id", "members"}}, "custom_fields":
    {"SLA": id, "CSAT": id, "SLA hours left": id}, "statuses": {name: id}, "closed_statuses": [...],
    "priorities": {name: id}, "trackers": {name: id}, "role_id": id, ...}``.
    """
    if not force:
        found = read_fixture(instance.db_path)
        if found is not None:
            return found
    _rails_runner(instance.state_dir / "redmine", _RUBY_FIXTURE)
    found = read_fixture(instance.db_path)
    if found is None:
        raise RedmineError("fixture setup ran but the fixture is still incomplete")
    return found


# --------------------------------------------------------------------------
# Seeding history


def _ts(value: datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return value.astimezone(UTC).strftime(_TS_FORMAT)


def backdate(
    instance: Instance | Path,
    issue_id: int,
    created_on: datetime,
    journal_times: Sequence[datetime] = (),
    *,
    updated_on: datetime | None = None,
    closed_on: datetime | None = None,
    start_date: bool = True,
) -> None:
    """Rewrite an issue's timestamps and its journals' in the SQLite database.

    Safe while the server runs: Redmine reads issues and journals from the
    database on every request (no cache to invalidate). ``journal_times`` are
    applied to the issue's journals in creation (id) order; there may be fewer
    times than journals (the rest keep theirs), not more. ``updated_on``
    defaults to the latest of all the times given. ``closed_on`` defaults, for
    a closed issue, to the time of the last journal that moved it into a closed
    status (or ``updated_on``). With ``start_date`` the issue's start date
    becomes ``created_on``'s date (Redmine sets it to the creation day).
    All datetimes must be timezone-aware; they are stored as UTC.
    """
    db_path = instance.db_path if isinstance(instance, Instance) else Path(instance)
    last = updated_on or max([created_on, *journal_times])
    with _connect(db_path) as conn:
        journal_ids = [
            jid
            for (jid,) in conn.execute(
                "SELECT id FROM journals WHERE journalized_type = 'Issue' AND journalized_id = ? ORDER BY id",
                (issue_id,),
            )
        ]
        if len(journal_times) > len(journal_ids):
            raise ValueError(f"issue {issue_id} has {len(journal_ids)} journals, {len(journal_times)} times given")
        conn.executemany(
            # Redmine 5.0's journals have no updated_on column (5.1 adds one).
            "UPDATE journals SET created_on = ? WHERE id = ?",
            [(_ts(t), jid) for jid, t in zip(journal_ids, journal_times, strict=False)],
        )
        is_closed = _scalar(
            conn,
            "SELECT s.is_closed FROM issues i JOIN issue_statuses s ON s.id = i.status_id WHERE i.id = ?",
            (issue_id,),
        )
        if is_closed is None:
            raise ValueError(f"no issue {issue_id}")
        closed_value: str | None = None
        if closed_on is not None:
            closed_value = _ts(closed_on)
        elif is_closed:
            closed_value = _scalar(
                conn,
                "SELECT max(j.created_on) FROM journals j JOIN journal_details d "
                "ON d.journal_id = j.id WHERE j.journalized_type = 'Issue' "
                "AND j.journalized_id = ? AND d.property = 'attr' "
                "AND d.prop_key = 'status_id' AND d.value IN "
                "(SELECT CAST(id AS TEXT) FROM issue_statuses WHERE is_closed = 1)",
                (issue_id,),
            ) or _ts(last)
        conn.execute(
            "UPDATE issues SET created_on = ?, updated_on = ?, closed_on = coalesce(?, closed_on) WHERE id = ?",
            (_ts(created_on), _ts(last), closed_value, issue_id),
        )
        if start_date:
            conn.execute(
                "UPDATE issues SET start_date = ? WHERE id = ?",
                (created_on.astimezone(UTC).date().isoformat(), issue_id),
            )


def stamp(instance: Instance | Path, issue_id: int, at: datetime, *, created: bool = False) -> None:
    """Move an issue's creation (``created``) or its newest journal to ``at``.

    For seeding history one step at a time: make a change through the API, then
    stamp it with the time it should have happened.  ``updated_on`` follows.
    """
    db_path = instance.db_path if isinstance(instance, Instance) else Path(instance)
    with _connect(db_path) as conn:
        if created:
            conn.execute(
                "UPDATE issues SET created_on = ?, updated_on = ?, start_date = ? WHERE id = ?",
                (_ts(at), _ts(at), at.astimezone(UTC).date().isoformat(), issue_id),
            )
            return
        conn.execute(
            "UPDATE journals SET created_on = ? WHERE id = (SELECT max(id) FROM journals "
            "WHERE journalized_type = 'Issue' AND journalized_id = ?)",
            (_ts(at), issue_id),
        )
        conn.execute("UPDATE issues SET updated_on = ? WHERE id = ?", (_ts(at), issue_id))


def stamp_user_journals(instance: Instance | Path, issue_id: int, user_id: int, at: datetime) -> None:
    """Move every journal of ``user_id`` on the issue made later than ``at`` to
    ``at`` (Redmine may make two journals of one change: a private note apart).
    For a test whose clock is behind Redmine's: a write happens at the pass's time."""
    db_path = instance.db_path if isinstance(instance, Instance) else Path(instance)
    with _connect(db_path) as conn:
        conn.execute(
            "UPDATE journals SET created_on = ? WHERE journalized_type = 'Issue' AND journalized_id = ? "
            "AND user_id = ? AND created_on > ?",
            (_ts(at), issue_id, user_id, _ts(at)),
        )
        conn.execute("UPDATE issues SET updated_on = ? WHERE id = ? AND updated_on > ?", (_ts(at), issue_id, _ts(at)))


def reset_issues(instance: Instance | Path) -> None:
    """Delete every issue and what hangs off it; the next issue gets id 1 again.

    A cheap way (milliseconds, no reboot) to give each test an empty tracker
    while keeping the users, project, groups and custom fields. Safe while the
    server runs, as long as no request is in flight.
    """
    db_path = instance.db_path if isinstance(instance, Instance) else Path(instance)
    with _connect(db_path) as conn:
        conn.executescript(
            """
            DELETE FROM journal_details WHERE journal_id IN
                (SELECT id FROM journals WHERE journalized_type = 'Issue');
            DELETE FROM journals WHERE journalized_type = 'Issue';
            DELETE FROM custom_values WHERE customized_type = 'Issue';
            DELETE FROM watchers WHERE watchable_type = 'Issue';
            DELETE FROM attachments WHERE container_type = 'Issue';
            DELETE FROM issue_relations;
            DELETE FROM changesets_issues;
            DELETE FROM time_entries WHERE issue_id IS NOT NULL;
            DELETE FROM issues;
            DELETE FROM sqlite_sequence WHERE name IN
                ('issues', 'journals', 'journal_details', 'custom_values', 'watchers');
            """
        )


# --------------------------------------------------------------------------
# A small REST helper (for tests and the demo; keeps one connection alive)


class Client:
    """Minimal JSON REST client over one keep-alive ``http.client`` connection."""

    def __init__(self, url: str, api_key: str, timeout: float = 30.0) -> None:
        """Connect lazily to ``url`` (``http://127.0.0.1:PORT``) as ``api_key``."""
        host_port = url.removeprefix("http://").rstrip("/")
        host, _, port = host_port.partition(":")
        self._conn = http.client.HTTPConnection(host, int(port or 80), timeout=timeout)
        self.api_key = api_key

    def request(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> tuple[int, Any]:
        """Send one request; return ``(status, decoded JSON or None)``."""
        payload = None if body is None else json.dumps(body).encode()
        headers = {"X-Redmine-API-Key": self.api_key, "Accept": "application/json"}
        if payload is not None:
            headers["Content-Type"] = "application/json"
        for attempt in (1, 2):
            try:
                self._conn.request(method, path, body=payload, headers=headers)
                response = self._conn.getresponse()
                raw = response.read()
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self._conn.close()
                if attempt == 2:
                    raise
        data = json.loads(raw) if raw.strip() else None
        return response.status, data

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()


# --------------------------------------------------------------------------
# Command line


def _up(state_dir: Path, port: int | None, fixture: bool) -> dict[str, Any]:
    info_path = state_dir / "instance.json"
    if info_path.exists():
        old = Instance.from_json(json.loads(info_path.read_text()))
        if _alive(old.pid) and _is_rails_server(old.pid):
            raise RedmineError(f"an instance is already running from {state_dir} (pid {old.pid}); run 'down' first")
    state_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    instance = start(state_dir, port, fixture=fixture)
    info: dict[str, Any] = instance.to_json()
    info["fixture"] = setup_fixture(instance) if fixture else None
    info["boot_seconds"] = round(time.monotonic() - started, 1)
    info_path.write_text(json.dumps(info, indent=2) + "\n")
    return info


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python scripts/redmine_local.py``."""
    parser = argparse.ArgumentParser(
        description=(
            "Run a real, isolated Redmine 5.0 (Debian packages, SQLite, thin) on "
            "127.0.0.1 for sla-sync's tests and demo. 'up' installs Redmine if "
            "needed (root, apt), starts a server with a fresh database under "
            "STATE_DIR/redmine, creates the sla-sync fixture (project 'support', "
            "users alice/bob/carol/dave/erin/manager with password "
            f"'{PASSWORD}', groups, SLA/CSAT custom fields), writes "
            "STATE_DIR/instance.json and prints it; the server keeps running "
            "after the command exits. 'down' stops it."
        )
    )
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="install if needed, start, set up the fixture")
    up.add_argument("--state-dir", type=Path, required=True)
    up.add_argument("--port", type=int, default=None, help="default: a free port")
    up.add_argument("--no-fixture", action="store_true", help="bare default data only")
    down = sub.add_parser("down", help="stop the instance started from STATE_DIR")
    down.add_argument("--state-dir", type=Path, required=True)
    status = sub.add_parser("status", help="print instance.json if the server runs")
    status.add_argument("--state-dir", type=Path, required=True)
    sub.add_parser("install", help="only install Redmine and build the cached database")
    args = parser.parse_args(argv)

    try:
        if args.command == "install":
            ensure_installed()
            print(ensure_pristine(True))
            return 0
        state_dir = args.state_dir.resolve()
        info_path = state_dir / "instance.json"
        if args.command == "up":
            print(json.dumps(_up(state_dir, args.port, not args.no_fixture), indent=2))
            return 0
        if not info_path.exists():
            print(f"no instance.json in {state_dir}", file=sys.stderr)
            return 1
        instance = Instance.from_json(json.loads(info_path.read_text()))
        if args.command == "status":
            running = _alive(instance.pid) and _is_rails_server(instance.pid)
            print(info_path.read_text() if running else "not running")
            return 0 if running else 1
        instance.stop()
        info_path.unlink()
        print(f"stopped pid {instance.pid}")
        return 0
    except RedmineError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
