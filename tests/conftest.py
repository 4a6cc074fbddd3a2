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
