"""The state store (SQLAlchemy Core): cursors, history cache, what was written, runs.

An SQLite file by default; a ``postgresql://`` URL selects PostgreSQL (the
``postgres`` extra).  The tracker stays the source of truth: this store is a cache
and a journal.  Losing it costs requests on the next pass, never a duplicate
write, because escalation markers live on the issues themselves.

Per policy it keeps:

- the cursor: the ``updated`` instant up to which every issue was processed;
- the mirror of the policy's open issues: per issue the tracker's current values of
  what sla-sync manages, the next instant at which time alone changes its plan
  (indexed: a delta pass evaluates the issues whose instant has come, and the
  issues that changed, nothing else), and its metrics' states; and when the last
  full pass (every open issue listed) ran;
- per issue: the version (tracker's ``updated``) and neutral issue with history,
  and the values sla-sync last wrote (due date, due instant, assignee);
- the escalation steps it fired (a journal; the markers on the issues decide),
  with the cycle a step on a repeating metric fired in (it fires once per cycle);
- the messages those steps send: queued as an intent before the step's writes,
  ready once they landed (or once the issue's history shows they did, after a
  lost answer or a killed pass), and marked sent just before they go out (taken
  back when the channel reports a failure), so that neither a retry nor a killed
  pass sends one twice; and the scheduled instant of the last digest of each
  schedule;
- a journal of runs: start, end, mode, counts, errors.

A pass holds a per-policy lock: an exclusive ``flock`` on a file beside the SQLite
database (released by the kernel if the process dies), or a PostgreSQL advisory
lock (released when the session ends).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import sqlite3
import tempfile
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    delete,
    event,
    func,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection, Engine, ExceptionContext
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from .errors import LockedError, UserError
from .model import Issue, Observed, Written
from .neutral import issue_from_json, issue_to_json

metadata = MetaData()

cursors = Table(
    "cursors", metadata,
    Column("policy", String(200), primary_key=True),
    Column("cursor", BigInteger, nullable=True),
)
issues = Table(
    "issues", metadata,
    Column("policy", String(200), primary_key=True),
    Column("key", String(200), primary_key=True),
    Column("version", String(100), nullable=False),
    Column("issue", Text, nullable=False),
    Column("due_date", String(20)),
    Column("due_instant", String(40)),
    Column("assignee", String(200)),
)
fired = Table(
    "fired_steps", metadata,
    Column("policy", String(200), primary_key=True),
    Column("key", String(200), primary_key=True),
    Column("step", Integer, primary_key=True),
    Column("fired_at", BigInteger, nullable=False),
    Column("cycle", Integer, nullable=False, server_default="0"),  # the cycle, for a step on a repeating metric
)
mirror = Table(  # the policy's open issues as the last pass left them: what a delta pass needs
    "mirror", metadata,
    Column("policy", String(200), primary_key=True),
    Column("key", String(200), primary_key=True),
    Column("observed", Text, nullable=False),  # the tracker's values of what sla-sync manages (JSON)
    Column("next_at", BigInteger, nullable=True),  # when time alone changes its plan
    Column("states", Text, nullable=False),  # "LEVEL metric:state[:risk] ...", for the metrics' gauges
    # a pass's due issues and the next change, by an index walk (not a scan of the policy's rows)
    Index("ix_mirror_policy_next_at", "policy", "next_at"),
)
reconciled = Table(
    "reconciled", metadata,
    Column("policy", String(200), primary_key=True),
    Column("at", BigInteger, nullable=False),  # the last full pass (every open issue listed)
)
notices = Table(
    "notices", metadata,
    Column("policy", String(200), primary_key=True),
    Column("key", String(200), primary_key=True),
    Column("step", Integer, primary_key=True),
    Column("channel", String(200), primary_key=True),
    Column("queued_at", BigInteger, nullable=False),
    Column("position", Integer, nullable=False),  # in the step's notify list: messages go out in its order
    Column("ready", Integer, nullable=False),  # 0: the step's writes are under way; 1: they landed
    Column("sent_at", BigInteger, nullable=True),
    Column("cycle", Integer, nullable=False, server_default="0"),  # the step's cycle (a repeating metric's), else 0
)
# Columns added since the first stores were made: an older store gets them on open
# (``create_all`` makes missing tables only), and lacking them is not a foreign schema.
ADDED_COLUMNS = ((fired, "cycle"), (notices, "cycle"))
digests = Table(
    "digests", metadata,
    Column("policy", String(200), primary_key=True),
    Column("schedule", String(300), primary_key=True),  # channel and cron expression
    Column("sent_for", BigInteger, nullable=False),  # the scheduled instant of the last one sent
)
names = Table(
    "names", metadata,
    Column("policy", String(200), primary_key=True),
    Column("name", String(300), primary_key=True),
    Column("value", String(300), nullable=False),
)
runs = Table(
    "runs", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(40), nullable=False),
    Column("policy", String(200), nullable=False),
    Column("mode", String(20), nullable=False),
    Column("started_at", BigInteger, nullable=False),
    Column("finished_at", BigInteger),
    Column("status", String(20), nullable=False),
    Column("counts", Text),
    Column("errors", Text),
)


@dataclass(frozen=True)
class CachedIssue:
    """An issue as the store remembers it."""

    version: str
    issue: Issue
    written: Written


@dataclass(frozen=True)
class Mirrored:
    """One open issue of the mirror: as remembered, and what the tracker held."""

    remembered: CachedIssue
    observed: Observed


class Remembered(Mapping[str, CachedIssue]):
    """The remembered issues of a policy, read one key at a time (a pass touches only
    the issues it fetched or that are due: the rest are never loaded)."""

    def __init__(self, store: Store, policy: str) -> None:
        self.store, self.policy = store, policy
        self._hits: dict[str, CachedIssue | None] = {}

    def _load(self, key: str) -> CachedIssue | None:
        if key not in self._hits:
            with self.store.engine.connect() as conn:
                row = conn.execute(select(issues).where(issues.c.policy == self.policy, issues.c.key == key)).first()
            self._hits[key] = None if row is None else self.store._row(self.policy, row)
        return self._hits[key]

    def __getitem__(self, key: str) -> CachedIssue:
        found = self._load(key)
        if found is None:
            raise KeyError(key)
        return found

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._load(key) is not None

    def __iter__(self) -> Iterator[str]:
        with self.store.engine.connect() as conn:
            keys = [r.key for r in conn.execute(select(issues.c.key).where(issues.c.policy == self.policy))]
        return iter(keys)

    def __len__(self) -> int:
        return sum(1 for _ in self)


def observed_to_json(o: Observed) -> str:
    return orjson.dumps({"due_date": o.due_date, "labels": sorted(o.labels), "assignee": o.assignee,
                         "due_instant": o.due_instant, "remaining": o.remaining,
                         "health_status": o.health_status}).decode()


def observed_from_json(text: str) -> Observed:
    d = orjson.loads(text)
    return Observed(d["due_date"], frozenset(d["labels"]), d["assignee"], d["due_instant"], d["remaining"],
                    d["health_status"])


@dataclass(frozen=True)
class PendingNotice:
    """A step's message not yet sent (held for working time, or its send failed)."""

    key: str
    step: int
    channel: str
    queued_at: int


@dataclass(frozen=True)
class RunRecord:
    """One entry of the run journal."""

    run_id: str
    policy: str
    mode: str
    started_at: int
    finished_at: int | None
    status: str
    counts: dict[str, Any]
    errors: list[str]


def default_location() -> str:
    """``$SLA_SYNC_STATE``, else ``$XDG_STATE_HOME/sla-sync/state.sqlite``."""
    if os.environ.get("SLA_SYNC_STATE"):
        return os.environ["SLA_SYNC_STATE"]
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return str(base / "sla-sync" / "state.sqlite")


def _url(location: str) -> tuple[str, Path | None]:
    if "://" in location:
        if location.startswith("postgresql://"):
            return "postgresql+psycopg://" + location[len("postgresql://"):], None
        if location.startswith("sqlite:///"):
            return location, Path(location[len("sqlite:///"):])
        return location, None
    path = Path(location).expanduser()
    return f"sqlite:///{path}", path


class Store:
    """The state store behind a path (SQLite) or a database URL."""

    def __init__(self, location: str) -> None:
        url, self.path = _url(location)
        self.location = location
        if self.path is not None:
            _prepare_file(self.path)
        try:
            self.engine: Engine = create_engine(url, future=True)
        except (ArgumentError, ValueError):  # the message would repeat the URL, password and all
            raise UserError(
                f"state store {_safe(location)}: not a database URL: write a file path or "
                "postgresql://USER@HOST:PORT/DB (and the password in PGPASSWORD)"
            ) from None
        except ModuleNotFoundError as exc:
            raise UserError(
                f"state store {_safe(location)}: {exc.name} is missing; install sla-sync[postgres]"
            ) from None
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "handle_error", self._sqlite_error)
        try:
            self._create_tables()
        except UserError:
            self.engine.dispose()
            raise
        except SQLAlchemyError as exc:
            self.engine.dispose()
            raise UserError(
                f"state store {_safe(location)}: cannot open it: {exc.__class__.__name__}: "
                f"{_scrub(_first_line(exc), location)}"
            ) from None

    def _create_tables(self) -> None:
        """Create missing tables, once sure the database is a store (or empty); on
        PostgreSQL under a lock, as several workers may start at once on a new
        database."""
        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(7215001)"))
            foreign = _foreign_schema(conn)
            if foreign:
                raise self._not_a_store(foreign)
            metadata.create_all(conn)
            for index in mirror.indexes:  # an index added since the table was made (create_all skips those)
                index.create(conn, checkfirst=True)
            _add_columns(conn)

    @property
    def _where(self) -> str:
        """The store as messages name it: the file, or the URL without its password."""
        return str(self.path) if self.path is not None else _safe(self.location)

    def _not_a_store(self, why: str) -> UserError:
        what = f"state store {self._where}: {why}: it is not an sla-sync state store (or one of another version); "
        if self.path is None:
            return UserError(what + "point --state or SLA_SYNC_STATE at a database of its own")
        return UserError(what + "point --state or SLA_SYNC_STATE at another file, or move this one away "
                                "(a new store starts, and the next pass re-reads the history and writes nothing twice)")

    def _sqlite_error(self, context: ExceptionContext) -> None:
        """Any SQLite failure after opening (a damaged page, a file replaced under
        us) is the user's to fix: one line naming the file, no traceback."""
        cause = context.original_exception
        if (not isinstance(cause, sqlite3.DatabaseError)
                or isinstance(cause, sqlite3.IntegrityError | sqlite3.ProgrammingError)):
            return  # our own mistakes keep their traceback
        where = self._where
        message = _first_line(cause) or cause.__class__.__name__
        if isinstance(cause, sqlite3.OperationalError) and "locked" in message:
            raise UserError(f"state store {where}: {message}: another process holds it; try again") from None
        if isinstance(cause, sqlite3.OperationalError) and ("unable to open" in message or "readonly" in message):
            raise UserError(
                f"state store {where}: {message}: sla-sync must be able to read and write the file and its folder"
            ) from None
        raise UserError(
            f"state store {where}: {message}: the file is damaged or not an sla-sync state store; move it away "
            "to start a new store (the next pass re-reads the history and writes nothing twice), or restore a backup"
        ) from None

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    # -- the lock ------------------------------------------------------------

    @contextmanager
    def lock(self, policy: str) -> Iterator[None]:
        """Hold the policy's lock for a pass; ``LockedError`` at once if taken."""
        if self.is_postgres:
            with self.engine.connect() as conn:
                key = int.from_bytes(hashlib.sha256(policy.encode()).digest()[:8], "big", signed=True)
                got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
                if not got:
                    raise LockedError(
                        f"another sla-sync pass is running for policy {policy!r}; this one writes nothing"
                    )
                try:
                    yield
                finally:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            return
        lock_path = self._lock_path(policy)
        fd = _open_private(lock_path)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise LockedError(
                    f"another sla-sync pass is running for policy {policy!r} (lock {lock_path}); "
                    "this one writes nothing"
                ) from None
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            yield
        finally:
            os.close(fd)

    def _lock_path(self, policy: str) -> Path:
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", policy)[:80]
        base = self.path if self.path is not None else Path(default_location())
        return base.with_name(f"{base.name}.{slug}.lock")

    # -- reads -----------------------------------------------------------------

    def cursor(self, policy: str) -> int | None:
        with self.engine.connect() as conn:
            value = conn.execute(select(cursors.c.cursor).where(cursors.c.policy == policy)).scalar()
        return None if value is None else int(value)

    def cached(self, policy: str) -> dict[str, CachedIssue]:
        """Every remembered issue of a policy."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(issues).where(issues.c.policy == policy))
            return {row.key: self._row(policy, row) for row in rows}

    def remembered(self, policy: str) -> Remembered:
        """The remembered issues, read lazily, one key at a time."""
        return Remembered(self, policy)

    def _row(self, policy: str, row: Any) -> CachedIssue:
        try:
            issue = issue_from_json(orjson.loads(row.issue))
        except ValueError as exc:  # orjson's decode error is one too
            raise UserError(
                f"state store {self._where}: the remembered issue {row.key} of policy {policy!r} is unreadable "
                f"({_first_line(exc)}): the store is damaged; move it away to start a new one"
            ) from None
        return CachedIssue(row.version, issue, Written(row.due_date, row.assignee, row.due_instant))

    def due(self, policy: str, now: int, skip: Collection[str] = ()) -> list[Mirrored]:
        """The mirrored open issues whose plan time alone changes at or before ``now``
        (but those in ``skip``: the pass fetched them anew)."""
        query = (select(issues, mirror.c.observed).join(mirror, (mirror.c.policy == issues.c.policy)
                                                      & (mirror.c.key == issues.c.key))
                 .where(mirror.c.policy == policy, mirror.c.next_at.is_not(None), mirror.c.next_at <= now)
                 .order_by(mirror.c.next_at, mirror.c.key))
        with self.engine.connect() as conn:
            return [Mirrored(self._row(policy, row), observed_from_json(row.observed))
                    for row in conn.execute(query) if row.key not in skip]

    def next_due(self, policy: str, after: int) -> tuple[str, int] | None:
        """The mirrored open issue whose plan time alone changes first after ``after``,
        and when (the index on ``next_at`` answers it)."""
        query = (select(mirror.c.key, mirror.c.next_at)
                 .where(mirror.c.policy == policy, mirror.c.next_at.is_not(None), mirror.c.next_at > after)
                 .order_by(mirror.c.next_at, mirror.c.key).limit(1))
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else (row.key, int(row.next_at))

    def mirror_keys(self, policy: str) -> set[str]:
        with self.engine.connect() as conn:
            return {r.key for r in conn.execute(select(mirror.c.key).where(mirror.c.policy == policy))}

    def tallies(self, policy: str) -> dict[str, int]:
        """How many mirrored open issues have each ``states`` (``Store.mirror``'s): a
        few distinct values, counted by the database, whatever the number of issues."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(mirror.c.states, func.count()).where(mirror.c.policy == policy)
                                .group_by(mirror.c.states))
            return {r[0]: int(r[1]) for r in rows}

    def last_full(self, policy: str) -> int | None:
        with self.engine.connect() as conn:
            value = conn.execute(select(reconciled.c.at).where(reconciled.c.policy == policy)).scalar()
        return None if value is None else int(value)

    def fired_of(self, policy: str, keys: Iterable[str]) -> dict[str, dict[int, int]]:
        """The fired steps of these issues only (a pass asks for the ones it
        evaluates): step → the cycle it last fired in (0: a step that fires once)."""
        wanted = list(keys)
        out: dict[str, dict[int, int]] = {}
        with self.engine.connect() as conn:
            for i in range(0, len(wanted), 500):
                rows = conn.execute(select(fired.c.key, fired.c.step, fired.c.cycle)
                                    .where(fired.c.policy == policy, fired.c.key.in_(wanted[i:i + 500])))
                for row in rows:
                    out.setdefault(row.key, {})[int(row.step)] = int(row.cycle)
        return out

    def fired_steps(self, policy: str, key: str) -> list[int]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(fired.c.step).where(fired.c.policy == policy, fired.c.key == key))
            return sorted(int(r.step) for r in rows)

    def pending_notices(self, policy: str) -> list[PendingNotice]:
        """The messages ready and not yet sent, oldest first."""
        query = (select(notices).where(notices.c.policy == policy, notices.c.sent_at.is_(None), notices.c.ready == 1)
                 .order_by(notices.c.queued_at, notices.c.key, notices.c.step, notices.c.position))
        with self.engine.connect() as conn:
            return [PendingNotice(r.key, int(r.step), r.channel, int(r.queued_at)) for r in conn.execute(query)]

    def notice_intents(self, policy: str) -> list[PendingNotice]:
        """The messages whose step's writes were under way when the pass ended."""
        query = select(notices).where(notices.c.policy == policy, notices.c.ready == 0)
        with self.engine.connect() as conn:
            return [PendingNotice(r.key, int(r.step), r.channel, int(r.queued_at)) for r in conn.execute(query)]

    def sent_notices(self, policy: str) -> dict[tuple[str, int, str], int]:
        """(issue, step, channel) → when it was sent."""
        query = select(notices).where(notices.c.policy == policy, notices.c.sent_at.is_not(None))
        with self.engine.connect() as conn:
            return {(r.key, int(r.step), r.channel): int(r.sent_at) for r in conn.execute(query)}

    def queue_notices(self, policy: str, key: str, items: Iterable[tuple[int, str, int]], at: int) -> None:
        """Record a step's messages (step, channel, cycle) as an intent, at once
        (not with the pass's other writes), before the step's tracker writes.  One
        already recorded stays; one of an earlier cycle of the step is replaced
        (sent or not: a held message of a cycle that ended is not sent any more)."""
        with self.engine.begin() as conn:
            for position, (step, channel, cycle) in enumerate(items):
                where = (notices.c.policy == policy, notices.c.key == key, notices.c.step == step,
                         notices.c.channel == channel)
                known = conn.execute(select(notices.c.cycle).where(*where)).first()
                if known is not None and int(known.cycle) == cycle:
                    continue
                if known is not None:
                    conn.execute(delete(notices).where(*where))
                conn.execute(insert(notices).values(policy=policy, key=key, step=step, channel=channel, cycle=cycle,
                                                    queued_at=at, position=position, ready=0, sent_at=None))

    def notices_ready(self, policy: str, key: str, steps: Iterable[int]) -> None:
        """The steps' writes landed: their messages may go out, at once."""
        numbers = list(steps)
        if numbers:
            with self.engine.begin() as conn:
                conn.execute(update(notices).where(notices.c.policy == policy, notices.c.key == key,
                                                   notices.c.step.in_(numbers)).values(ready=1))

    def mark_sent(self, policy: str, key: str, step: int, channel: str, at: int | None) -> None:
        """Record a message as sent (``at``), at once, before it is sent: a pass
        killed while sending never sends it again.  ``None`` takes it back, when
        the channel reported a failure (the next pass retries)."""
        with self.engine.begin() as conn:
            conn.execute(update(notices).where(notices.c.policy == policy, notices.c.key == key,
                                               notices.c.step == step, notices.c.channel == channel)
                         .values(sent_at=at))

    def digest_sent_for(self, policy: str, schedule: str) -> int | None:
        """The scheduled instant of the last digest sent for a schedule."""
        with self.engine.connect() as conn:
            value = conn.execute(select(digests.c.sent_for).where(
                digests.c.policy == policy, digests.c.schedule == schedule)).scalar()
        return None if value is None else int(value)

    def set_digest_sent_for(self, policy: str, schedule: str, instant: int) -> None:
        with self.engine.begin() as conn:
            _upsert(conn, digests, {"policy": policy, "schedule": schedule}, {"sent_for": instant})

    def runs(self, policy: str | None = None, limit: int = 20) -> list[RunRecord]:
        query = select(runs).order_by(runs.c.id.desc()).limit(limit)
        if policy is not None:
            query = query.where(runs.c.policy == policy)
        with self.engine.connect() as conn:
            return [
                RunRecord(r.run_id, r.policy, r.mode, r.started_at, r.finished_at, r.status,
                          json.loads(r.counts or "{}"), json.loads(r.errors or "[]"))
                for r in conn.execute(query)
            ]

    # -- writes ----------------------------------------------------------------

    def remember(self, policy: str, items: Iterable[tuple[str, Issue, Written]]) -> None:
        """Store issues (version, history) and what sla-sync last wrote to them."""
        rows = _issue_rows(policy, items)
        if rows:
            with self.engine.begin() as conn:
                _remember(conn, policy, rows)

    def set_written(self, policy: str, key: str, written: Written) -> None:
        with self.engine.begin() as conn:
            _set_written(conn, policy, key, written)

    def record_fired(self, policy: str, key: str, steps: Iterable[int], at: int,
                     cycles: Mapping[int, int] | None = None) -> None:
        with self.engine.begin() as conn:
            _record_fired(conn, policy, key, list(steps), at, cycles or {})

    def set_cursor(self, policy: str, cursor: int | None) -> None:
        with self.engine.begin() as conn:
            _upsert_cursor(conn, policy, cursor)

    def start_run(self, run_id: str, policy: str, mode: str, at: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(insert(runs).values(run_id=run_id, policy=policy, mode=mode, started_at=at, status="running"))

    def finish_run(self, run_id: str, at: int, status: str, counts: dict[str, Any], errors: list[str]) -> None:
        with self.engine.begin() as conn:
            _finish_run(conn, run_id, at, status, counts, errors)

    def directory(self, policy: str) -> dict[str, str]:
        """The tracker ids the adapter resolved (login or group name → id)."""
        with self.engine.connect() as conn:
            return {r.name: r.value for r in conn.execute(select(names).where(names.c.policy == policy))}

    def save_directory(self, policy: str, directory: dict[str, str]) -> None:
        if directory == self.directory(policy):
            return
        with self.engine.begin() as conn:
            _save_directory(conn, policy, directory)

    @contextmanager
    def pass_writes(self, policy: str) -> Iterator[PassWrites]:
        """Buffer a pass's writes and commit them in one transaction when the
        block ends, well or not (an exception still records what was done)."""
        writes = PassWrites(self, policy)
        try:
            yield writes
        finally:
            writes.commit()

    def close(self) -> None:
        self.engine.dispose()


class PassWrites:
    """A pass's store writes, in order, committed together by ``Store.pass_writes``."""

    def __init__(self, store: Store, policy: str) -> None:
        self.store, self.policy = store, policy
        self._ops: list[Callable[[Connection], None]] = []

    def remember(self, items: Iterable[tuple[str, Issue, Written]]) -> None:
        rows = _issue_rows(self.policy, items)
        if rows:
            self._ops.append(lambda conn: _remember(conn, self.policy, rows))

    def set_written(self, key: str, written: Written) -> None:
        self._ops.append(lambda conn: _set_written(conn, self.policy, key, written))

    def record_fired(self, key: str, steps: Iterable[int], at: int, cycles: Mapping[int, int] | None = None) -> None:
        """Steps fired at ``at`` (``cycles``: step → the cycle, for steps on repeating metrics)."""
        numbers, of = list(steps), dict(cycles or {})
        self._ops.append(lambda conn: _record_fired(conn, self.policy, key, numbers, at, of))

    def set_cursor(self, cursor: int | None) -> None:
        self._ops.append(lambda conn: _upsert_cursor(conn, self.policy, cursor))

    def mirror(self, rows: Iterable[tuple[str, Observed, int | None, str]]) -> None:
        """Open issues into the mirror: (key, observed, next_at, states)."""
        items = [{"policy": self.policy, "key": k, "observed": observed_to_json(o), "next_at": n, "states": s}
                 for k, o, n, s in rows]
        if items:
            self._ops.append(lambda conn: _replace_mirror(conn, self.policy, items))

    def forget(self, keys: Iterable[str], *, remembered: bool = False) -> None:
        """Issues out of the mirror (closed; with ``remembered``, their remembered
        copy too: they left the policy's scope)."""
        gone = list(keys)
        if gone:
            self._ops.append(lambda conn: _forget(conn, self.policy, gone, remembered))

    def set_last_full(self, at: int) -> None:
        policy = self.policy
        self._ops.append(lambda conn: _upsert(conn, reconciled, {"policy": policy}, {"at": at}))

    def save_directory(self, directory: dict[str, str]) -> None:
        if directory != self.store.directory(self.policy):
            self._ops.append(lambda conn: _save_directory(conn, self.policy, directory))

    def finish_run(self, run_id: str, at: int, status: str, counts: dict[str, Any], errors: list[str]) -> None:
        self._ops.append(lambda conn: _finish_run(conn, run_id, at, status, counts, errors))

    def commit(self) -> None:
        ops, self._ops = self._ops, []
        if ops:
            with self.store.engine.begin() as conn:
                for op in ops:
                    op(conn)


def _issue_rows(policy: str, items: Iterable[tuple[str, Issue, Written]]) -> list[dict[str, Any]]:
    return [
        {"policy": policy, "key": i.key, "version": v, "issue": orjson.dumps(issue_to_json(i)).decode(),
         "due_date": w.due_date, "due_instant": w.due_instant, "assignee": w.assignee}
        for v, i, w in items
    ]


def _remember(conn: Connection, policy: str, rows: list[dict[str, Any]]) -> None:
    keys = [r["key"] for r in rows]
    for chunk in range(0, len(keys), 500):
        conn.execute(delete(issues).where(issues.c.policy == policy, issues.c.key.in_(keys[chunk:chunk + 500])))
    conn.execute(insert(issues), rows)


def _replace_mirror(conn: Connection, policy: str, items: list[dict[str, Any]]) -> None:
    keys = [r["key"] for r in items]
    for chunk in range(0, len(keys), 500):
        conn.execute(delete(mirror).where(mirror.c.policy == policy, mirror.c.key.in_(keys[chunk:chunk + 500])))
    conn.execute(insert(mirror), items)


def _forget(conn: Connection, policy: str, keys: list[str], remembered: bool) -> None:
    for chunk in range(0, len(keys), 500):
        part = keys[chunk:chunk + 500]
        conn.execute(delete(mirror).where(mirror.c.policy == policy, mirror.c.key.in_(part)))
        if remembered:  # out of scope for good: its copy, and the messages of writes that never landed
            conn.execute(delete(issues).where(issues.c.policy == policy, issues.c.key.in_(part)))
            conn.execute(delete(notices).where(notices.c.policy == policy, notices.c.key.in_(part),
                                               notices.c.ready == 0))


def _set_written(conn: Connection, policy: str, key: str, written: Written) -> None:
    conn.execute(
        update(issues)
        .where(issues.c.policy == policy, issues.c.key == key)
        .values(due_date=written.due_date, due_instant=written.due_instant, assignee=written.assignee)
    )


def _record_fired(conn: Connection, policy: str, key: str, steps: list[int], at: int,
                  cycles: Mapping[int, int]) -> None:
    for step in steps:
        conn.execute(delete(fired).where(fired.c.policy == policy, fired.c.key == key, fired.c.step == step))
        conn.execute(insert(fired).values(policy=policy, key=key, step=step, fired_at=at, cycle=cycles.get(step, 0)))


def _finish_run(conn: Connection, run_id: str, at: int, status: str, counts: dict[str, Any], errors: list[str]) -> None:
    conn.execute(
        update(runs).where(runs.c.run_id == run_id)
        .values(finished_at=at, status=status, counts=json.dumps(counts), errors=json.dumps(errors))
    )


def _save_directory(conn: Connection, policy: str, directory: dict[str, str]) -> None:
    conn.execute(delete(names).where(names.c.policy == policy))
    if directory:
        conn.execute(insert(names), [{"policy": policy, "name": k, "value": v} for k, v in directory.items()])


def _upsert_cursor(conn: Connection, policy: str, cursor: int | None) -> None:
    _upsert(conn, cursors, {"policy": policy}, {"cursor": cursor})


def _upsert(conn: Connection, table: Table, keys: Mapping[str, Any], values: Mapping[str, Any]) -> None:
    """The row of ``table`` with these primary ``keys`` takes ``values``; inserted if
    there is none (an update first: the same on SQLite and PostgreSQL)."""
    done = conn.execute(update(table).where(*(table.c[k] == v for k, v in keys.items())).values(**values))
    if done.rowcount == 0:
        conn.execute(insert(table).values(**keys, **values))


_PASSWORD_PARAM = re.compile(r"(?i)([?&][^=&]*password[^=&]*=)([^&]*)")
_USERINFO = re.compile(r"[^\s'\"/=(]+@")


def _safe(location: str) -> str:
    """A location fit for a message: the whole user part (``USER:PASSWORD@``) and
    any password parameter masked.  A password may hold ``@``, ``:`` or ``/``:
    everything up to the last ``@`` goes."""
    if "://" not in location:
        return location
    scheme, rest = location.split("://", 1)
    rest = _PASSWORD_PARAM.sub(r"\1***", rest)
    at = rest.rfind("@")
    if at >= 0:
        rest = "***@" + rest[at + 1:]
    return f"{scheme}://{rest}"


def _scrub(message: str, location: str) -> str:
    """A driver's message without any piece of the location's password: one
    holding ``@`` or ``&`` makes the driver name hosts such as ``ss@127.0.0.1``."""
    for piece in sorted(_password_pieces(location), key=len, reverse=True):
        message = message.replace(piece, "***")
    return _USERINFO.sub("***@", _PASSWORD_PARAM.sub(r"\1***", message))


def _password_pieces(location: str) -> set[str]:
    """The passwords of a location (user part, parameters) and their pieces
    between URL delimiters, as a driver may show them after misreading the URL."""
    if "://" not in location:
        return set()
    rest = location.split("://", 1)[1]
    passwords = [m.group(2) for m in _PASSWORD_PARAM.finditer(rest)]
    bare = _PASSWORD_PARAM.sub(r"\1", rest)
    at = bare.rfind("@")
    if at >= 0 and ":" in bare[:at]:
        passwords.append(bare[:at].split(":", 1)[1])
    pieces = {piece for p in passwords for piece in [p, *re.split(r"[@:/?&=#]", p)]}
    return {piece for piece in pieces if len(piece) >= 3}


def _open_private(path: Path) -> int:
    """Open ``path`` read-write; a new file is created ``0600``, whatever the umask."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return os.open(path, os.O_RDWR)
    os.fchmod(fd, 0o600)
    return fd


def _prepare_file(path: Path) -> None:
    """A new SQLite store is created ``0600`` (SQLite gives its journal and WAL
    files the database's mode) and appears complete, tables and all: the path
    never holds an empty file that another process could take for a damaged
    store.  An existing file keeps its mode; an empty one is refused."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"state store {path}: cannot create its folder: {exc.strerror}") from None
    if path.is_dir():
        raise UserError(f"state store {path}: is a folder: name a file, e.g. {path / 'state.sqlite'}")
    if path.exists():
        if path.is_file() and path.stat().st_size == 0:
            raise UserError(
                f"state store {path}: the file is empty (0 bytes), so it holds no sla-sync state: delete it to "
                "start a new store (the next pass re-reads the history and writes nothing twice), or restore a backup"
            )
        return
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".new", dir=path.parent)
        os.fchmod(fd, 0o600)
        os.close(fd)
    except OSError as exc:
        raise UserError(f"state store {path}: cannot create it: {exc.strerror}") from None
    try:
        engine = create_engine(f"sqlite:///{tmp}")
        try:
            with engine.begin() as conn:
                metadata.create_all(conn)
        finally:
            engine.dispose()
        try:
            os.link(tmp, path)  # atomic, and never replaces a store another process made meanwhile
        except FileExistsError:
            pass
        except OSError:  # a file system without hard links
            if not path.exists():
                os.replace(tmp, path)
    except (OSError, SQLAlchemyError) as exc:
        raise UserError(f"state store {path}: cannot create it: {getattr(exc, 'strerror', None) or exc}") from None
    finally:
        Path(tmp).unlink(missing_ok=True)


def _add_columns(conn: Connection) -> None:
    """The ``ADDED_COLUMNS`` an older store lacks, added (with their defaults)."""
    inspector = inspect(conn)
    for table, name in ADDED_COLUMNS:
        if name not in {c["name"] for c in inspector.get_columns(table.name)}:
            column = table.c[name]
            kind = column.type.compile(dialect=conn.dialect)
            conn.execute(text(f"ALTER TABLE {table.name} ADD COLUMN {name} {kind} NOT NULL "
                              f"DEFAULT {column.server_default.arg}"))  # type: ignore[union-attr]


def _foreign_schema(conn: Connection) -> str | None:
    """Why the database is not a store (another application's tables, or tables
    of the store's names with other columns), or ``None``."""
    inspector = inspect(conn)
    present = set(inspector.get_table_names())
    ours = set(metadata.tables)
    if conn.dialect.name == "sqlite" and present and not present & ours:
        return f"it holds other tables ({', '.join(sorted(present)[:5])})"
    for name in sorted(present & ours):
        have = {c["name"] for c in inspector.get_columns(name)}
        added = {n for t, n in ADDED_COLUMNS if t.name == name}
        missing = [c.name for c in metadata.tables[name].columns if c.name not in have | added]
        if missing:
            return f"its table {name} lacks the column{'s' if len(missing) > 1 else ''} {', '.join(missing)}"
    return None


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else ""
