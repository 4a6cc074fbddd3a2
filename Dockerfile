# syntax=docker/dockerfile:1
#
# sla-sync as a container: `docker build -t sla-sync:0.1.0 .` at the repository root.
#
#   policies  /etc/sla-sync/policies      (the ready examples are there; mount yours over it, read-only)
#   state     /var/lib/sla-sync/state.sqlite  ($SLA_SYNC_STATE; a VOLUME; or set a postgresql:// URL)
#   secrets   environment variables named by each policy's api_key_env (or a mounted api_key_file)
#
#   docker run --rm --env-file sla-sync.env -v "$PWD/policies:/etc/sla-sync/policies:ro" \
#       -v sla-sync-state:/var/lib/sla-sync sla-sync:0.1.0 run /etc/sla-sync/policies/redmine-support.yaml
#
# See README.md, "Operations", and the recipes in deploy/.

# ---- builder: wheels for sla-sync and every dependency, installed into a venv ----
FROM python:3.11-slim AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
# setup.cfg maps adapters/ to the subpackage sla_sync.adapters (package_dir) and reads
# README.md as the long description: the wheel cannot be built without all of these.
COPY pyproject.toml setup.cfg README.md ./
COPY sla_sync/ sla_sync/
COPY adapters/ adapters/

# `pip wheel` builds sla-sync and resolves the whole dependency closure, the postgres
# extra (psycopg) included, into /wheels; every dependency ships binary wheels, so no
# compiler is needed.  The venv is made without pip (pip drives it from outside with
# --python), so the final image carries no installer and no cache; installing compiles
# the byte-code now, which a read-only root filesystem needs.
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".[postgres]" \
    && python -m venv --without-pip /opt/sla-sync \
    && pip --python /opt/sla-sync/bin/python install --no-cache-dir --no-index /wheels/*.whl \
    && /opt/sla-sync/bin/sla-sync --help > /dev/null

# ---- runtime: the slim base, the venv, the default policies; nothing else ----
FROM python:3.11-slim

LABEL org.opencontainers.image.title="sla-sync" \
      org.opencontainers.image.description="SLA clocks, due dates, labels and escalations on Redmine, GitLab and Jira" \
      org.opencontainers.image.licenses="MIT"

ENV PATH=/opt/sla-sync/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SLA_SYNC_STATE=/var/lib/sla-sync/state.sqlite

# A fixed numeric uid/gid (10001) so that Kubernetes' runAsNonRoot can check it and
# files on a bind-mounted state folder can be chowned to it in advance.  The base's
# own installer goes too (python:3.11-slim ships pip under /usr/local; Debian's
# python3-pip lives under /usr): nothing in the running image can install code.
RUN groupadd --system --gid 10001 sla-sync \
    && useradd --system --no-log-init --uid 10001 --gid 10001 \
        --home-dir /var/lib/sla-sync --no-create-home --shell /usr/sbin/nologin sla-sync \
    && mkdir -p /var/lib/sla-sync /etc/sla-sync/policies \
    && chown 10001:10001 /var/lib/sla-sync \
    && rm -rf /usr/local/bin/pip /usr/local/bin/pip3* /usr/local/lib/python3*/site-packages/pip \
        /usr/local/lib/python3*/site-packages/pip-*.dist-info \
        /usr/bin/pip /usr/bin/pip3 /usr/lib/python3/dist-packages/pip /usr/lib/python3/dist-packages/pip-*

COPY --from=builder /opt/sla-sync /opt/sla-sync
# Defaults to look at and copy; a deployment mounts its own policies over this folder.
COPY policies/ /etc/sla-sync/policies/

USER 10001:10001
WORKDIR /var/lib/sla-sync
# A named volume starts as a copy of this (empty, uid 10001) folder, so the state
# file is writable without any chown; with PostgreSQL nothing is written here.
VOLUME ["/var/lib/sla-sync"]

# No HEALTHCHECK: `run` is one pass that exits (cron, CronJob, CI), and its exit code is
# the health.  A `watch` service keeps going through tracker outages; what tells whether
# it works is the time of its last successful pass (its log, or its metrics), not a
# probe that only shows the process is alive.
ENTRYPOINT ["sla-sync"]
CMD ["--help"]
