# homeowner-dagster: one image for the Dagster webserver, the daemon, the code server and the
# run workers (on Kubernetes, each run pod). See docs/deploy.md.
#
# Not built in this repository's CI: the machine the project is developed on has no container
# engine. The steps mirror .ci/install (Debian's Chromium, the project installed with pip).

FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Debian's Chromium, driven by Playwright through HOMEOWNER_CHROMIUM: no Playwright browser
# download (`playwright install` is never run).
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app

# Only what the package needs. Never copy .venv/ or .homeowner/ (the embedded database and
# run artifacts hold homeowners' personal data).
COPY pyproject.toml README.md dagster.yaml workspace.yaml ./
COPY migrations ./migrations
COPY homeowner_dagster ./homeowner_dagster

# Editable install: settings.migrations_dir() finds migrations/ through project_root(), the
# folder above the package, which is /app only when the package is imported from /app.
# dagster-k8s is needed when the Kubernetes run launcher is used (docs/deploy.md); it is
# pinned to the dagster-postgres / dagster-slack release line in pyproject.toml.
ARG EXTRA_PACKAGES="dagster-k8s==0.29.27"
RUN pip install -e . ${EXTRA_PACKAGES}

ENV HOMEOWNER_CHROMIUM=/usr/bin/chromium \
    DAGSTER_HOME=/opt/dagster/dagster_home \
    HOMEOWNER_HOME=/opt/dagster/homeowner

# The instance configuration (Postgres storage from HOMEOWNER_DAGSTER_STORAGE_URL, the run
# queue with the cole-login-<STATE> and bison-workspace limits, run retries and monitoring).
COPY dagster.yaml ${DAGSTER_HOME}/dagster.yaml

RUN useradd --create-home --uid 10001 homeowner \
    && mkdir -p ${HOMEOWNER_HOME} \
    && chown -R homeowner:homeowner ${DAGSTER_HOME} ${HOMEOWNER_HOME}
USER homeowner

EXPOSE 3000

# Default: the UI. It has no login of its own (anyone who reaches it can launch runs and read
# run logs), so by default it listens on the container's loopback only and a published port
# reaches nothing. Behind an authenticating proxy on a private network (docs/deploy.md section 9)
# set HOMEOWNER_UI_HOST=0.0.0.0 on the webserver container, and publish no port of it.
# The daemon uses the same image with
#   dagster-daemon run -w /app/workspace.yaml
ENV HOMEOWNER_UI_HOST=127.0.0.1
CMD ["sh", "-c", "exec dagster-webserver -h \"$HOMEOWNER_UI_HOST\" -p 3000 -w /app/workspace.yaml"]
