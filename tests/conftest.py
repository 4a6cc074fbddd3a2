"""Shared fixtures: the real Redmine (one per test session) and the contract harnesses."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="session")
def redmine_instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, dict[str, Any]]]:
    """A real Redmine 5 on loopback, installed from Debian's packages if missing."""
    import redmine_local

    redmine_local.ensure_installed()
    instance = redmine_local.start(tmp_path_factory.mktemp("redmine"))
    try:
        yield instance, redmine_local.setup_fixture(instance)
    finally:
        instance.stop()


@pytest.fixture(scope="session")
def redmine_harness_session(redmine_instance: tuple[Any, dict[str, Any]]) -> Iterator[Any]:
    from tests.contract.redmine_harness import RedmineHarness

    harness = RedmineHarness(*redmine_instance)
    try:
        yield harness
    finally:
        harness.close()


@pytest.fixture
def redmine(redmine_harness_session: Any) -> Any:
    """The Redmine harness with no issue, no fault and a zero request count."""
    redmine_harness_session.reset()
    return redmine_harness_session


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """A real PostgreSQL on loopback: $SLA_SYNC_TEST_POSTGRES, else one that
    scripts/postgres_local installs (Debian's postgresql) and starts."""
    import os
    import subprocess
    from pathlib import Path

    url = os.environ.get("SLA_SYNC_TEST_POSTGRES")
    if not url:
        script = Path(__file__).resolve().parent.parent / "scripts" / "postgres_local"
        done = subprocess.run(["bash", str(script), "start"], capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        url = done.stdout.strip().splitlines()[-1]
        os.environ["SLA_SYNC_TEST_POSTGRES"] = url
    return url


@pytest.fixture
def postgres_schema_url(postgres_url: str) -> Iterator[str]:
    """A URL whose tables land in a fresh, private schema (dropped afterwards)."""
    import uuid

    from sqlalchemy import create_engine, text

    schema = f"t_{uuid.uuid4().hex[:12]}"
    engine = create_engine(postgres_url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield f"{postgres_url}?options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def state_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """A state store location: an SQLite file, or a PostgreSQL schema."""
    if request.param == "sqlite":
        return str(tmp_path / "state.sqlite")
    url: str = request.getfixturevalue("postgres_schema_url")
    return url


def _session_harness(make: Any) -> Any:
    """A session-scoped fixture owning one harness (closed at the end)."""

    @pytest.fixture(scope="session")
    def fixture() -> Iterator[Any]:
        harness = make()
        try:
            yield harness
        finally:
            harness.close()

    return fixture


def _gitlab() -> Any:
    from tests.contract.gitlab_harness import GitLabHarness

    return GitLabHarness()


def _jira(cloud: bool) -> Any:
    from tests.contract.jira_harness import JiraHarness

    return JiraHarness(cloud=cloud)


def _memory() -> Any:
    from tests.contract.memory_harness import MemoryHarness

    return MemoryHarness()


gitlab_harness_session = _session_harness(_gitlab)
jira_harness_session = _session_harness(lambda: _jira(True))
jira_dc_harness_session = _session_harness(lambda: _jira(False))
memory_harness_session = _session_harness(_memory)


@pytest.fixture
def gitlab(gitlab_harness_session: Any) -> Any:
    """The GitLab fake's harness, emptied."""
    gitlab_harness_session.reset()
    return gitlab_harness_session


@pytest.fixture
def jira(jira_harness_session: Any) -> Any:
    """The Jira Cloud fake's harness, emptied."""
    jira_harness_session.reset()
    return jira_harness_session


@pytest.fixture
def jira_dc(jira_dc_harness_session: Any) -> Any:
    """The Jira Data Center fake's harness, emptied."""
    jira_dc_harness_session.reset()
    return jira_dc_harness_session


@pytest.fixture
def memory(memory_harness_session: Any) -> Any:
    """The in-memory tracker's harness, emptied."""
    memory_harness_session.reset()
    return memory_harness_session


@pytest.fixture
def redmine_cli(redmine: Any, tmp_path: Any) -> tuple[Any, Any, dict[str, str]]:
    """The ready Redmine policy pointed at the test Redmine (through the proxy),
    and an environment with its API key: (harness, policy path, env)."""
    import os
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    text = (root / "policies" / "redmine-support.yaml").read_text()
    policy = tmp_path / "redmine-support.yaml"
    policy.write_text(text.replace("url: http://127.0.0.1:3000", f"url: {redmine.proxy.url}"))
    env = {**os.environ, "REDMINE_API_KEY": redmine.instance.admin_api_key}
    return redmine, policy, env
