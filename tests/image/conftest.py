"""The container image, built for real with Debian's podman (scripts/podman_local.py).

The first use on a machine installs podman and makes the stand-in python:3.11-slim and
redmine:5 (about two minutes, then kept); every session builds the image from scratch.
Skipped, with the reason, only where podman cannot run at all; on CI (CI=true) that
is a failure instead.  The figures (build time, image size, time in all) are printed
at the end of the session under "container image".
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import podman_local
import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
ON_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
# What the build reads (the Dockerfile, .dockerignore and what its `!NAME` lines let
# through) and what deploy/docker-compose.yml needs beside it: copied once per session,
# so that every build of the session sees the same files while the work tree may change.
CONTEXT = ("Dockerfile", ".dockerignore", *(
    line.strip()[1:] for line in (ROOT / ".dockerignore").read_text().splitlines() if line.strip().startswith("!")
))
DEPLOY = ("docker-compose.yml", "policies", "sla-sync.env.example")
TIMINGS: dict[str, str] = {}  # printed at the end of the session
SPENT = [0.0]  # seconds in the set-ups, calls and tear-downs of the tests here


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "image: builds and runs the container image with podman")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.nodeid.startswith("tests/image/"):
        SPENT[0] += report.duration


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if TIMINGS:
        terminalreporter.section("container image")
        for name, text in TIMINGS.items():
            terminalreporter.write_line(f"{name}: {text}")
        terminalreporter.write_line(f"tests/image in all: {SPENT[0]:.0f} s (podman, stand-ins, build and runs)")


@dataclass
class Image:
    """The image built for this session: run it with ``run(...)``."""

    ref: str
    image_id: str
    build_log: str
    token: str
    context: Path  # the copy it was built from, with deploy/ beside the build files
    volumes: list[str] = field(default_factory=list)

    def run(self, *args: str, options: tuple[str, ...] = (), timeout: float = 300) -> Any:
        """``podman run --rm OPTIONS IMAGE ARGS`` (no network unless OPTIONS give one)."""
        net = () if any(o.startswith("--network") for o in options) else ("--network", "none")
        return podman_local.podman("run", "--rm", "--label", podman_local.TEST_LABEL, *net, *options,
                                   self.image_id, *args, timeout=timeout, check=False)

    def shell(self, script: str, *, user: str = "10001") -> Any:
        """A POSIX shell script inside the image (entrypoint replaced)."""
        return self.run("-c", script, options=("--entrypoint", "/bin/sh", "--user", user))

    def volume(self) -> str:
        """A new named volume, removed at the end of the session."""
        name = f"sla-sync-test-{self.token}-{len(self.volumes)}"
        podman_local.podman("volume", "create", "--label", podman_local.TEST_LABEL, name)
        self.volumes.append(name)
        return name


def copy_tree(source: Path, target: Path, names: tuple[str, ...]) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for name in names:
        if (source / name).is_dir():
            shutil.copytree(source / name, target / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source / name, target / name)


@pytest.fixture(scope="session")
def image_timings() -> dict[str, str]:
    """Figures printed at the end of the session, under "container image"."""
    return TIMINGS


@pytest.fixture(scope="session")
def compose_ready(podman_ready: Future[float]) -> float:
    """The stand-in redmine:5 and podman-compose; the seconds spent on them (0: cached)."""
    return podman_ready.result()


@pytest.fixture(scope="session")
def podman_ready(request: pytest.FixtureRequest) -> Iterator[Future[float]]:
    """Podman installed and able to run; the stand-in base made (once per machine).

    When the compose tests are to run, their stand-in Redmine is made meanwhile, in a
    thread (on a new machine that is a minute and a half less to wait)."""
    reason = podman_local.cannot_run_reason()
    if reason:
        if ON_CI:
            pytest.fail(f"podman cannot run on CI: {reason}")
        pytest.skip(f"podman cannot run here: {reason}")
    podman_local.remove_leftovers()
    pool = ThreadPoolExecutor(max_workers=1)
    compose = any(item.nodeid.startswith("tests/image/test_compose.py") for item in request.session.items)

    def compose_parts() -> float:
        took = podman_local.ensure_redmine_base()
        podman_local.ensure_podman_compose()
        return took

    later: Future[float] = pool.submit(compose_parts) if compose else Future()
    if not compose:
        later.set_exception(RuntimeError("the compose tests were not collected"))
    try:
        took = podman_local.ensure_python_base()
        TIMINGS["stand-in python:3.11-slim"] = f"made in {took:.0f} s" if took else "cached"
        yield later
    finally:
        pool.shutdown(wait=True)


@pytest.fixture(scope="session")
def image(podman_ready: Future[float], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Image]:
    """The project's Dockerfile built, unchanged, from scratch."""
    token = uuid.uuid4().hex[:8]
    ref = f"localhost/sla-sync-test:{token}"
    context = tmp_path_factory.mktemp("context")
    copy_tree(ROOT, context, CONTEXT)
    copy_tree(ROOT / "deploy", context / "deploy", DEPLOY)
    image_id, seconds, log = podman_local.build(ref, context)
    size = podman_local.image_size(image_id)
    base = podman_local.image_size(podman_local.PYTHON_BASE)
    TIMINGS["podman build"] = f"{seconds:.0f} s"
    TIMINGS["image size"] = f"{size / 1e6:.0f} MB ({(size - base) / 1e6:.0f} MB over the base's {base / 1e6:.0f} MB)"
    built = Image(ref, image_id, log, token, context)
    try:
        yield built
    finally:
        for name in built.volumes:
            podman_local.podman("volume", "rm", "--force", name, check=False)
        podman_local.podman("rmi", "--force", ref, check=False)
        podman_local.prune_images()  # the build's layers (kept for a compose build of the same files)
