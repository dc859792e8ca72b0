"""The Dagster UI as an operator sees it: `dagster-webserver` and `dagster-daemon` started on a
test database, the sandbox behind every connector (`dagster_ui`), or `homeowner dev --sandbox`
itself in a new shell's environment (`dev_sandbox`). Both are stopped, never left behind."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil

from homeowner_dagster import db, settings
from homeowner_dagster.cli.stopping import start_group, stop_group
from homeowner_dagster.sandbox import Sandbox
from homeowner_dagster.sandbox.server import free_port

LOCATIONS_QUERY = (
    "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } }"
)


@dataclass
class DagsterUI:
    url: str
    home: Path
    env: dict[str, str]


def graphql(url: str, query: str) -> dict:
    request = urllib.request.Request(
        f"{url}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)["data"]


def ui_loaded(url: str) -> bool:
    """Whether the UI at `url` answers with every code location loaded."""
    try:
        entries = graphql(url, LOCATIONS_QUERY)["workspaceOrError"]["locationEntries"]
    except (OSError, KeyError, TypeError):
        return False
    return bool(entries) and all(e["loadStatus"] == "LOADED" for e in entries)


def ui_environment(dsn: str, sandbox: Sandbox, home: Path) -> dict[str, str]:
    """DAGSTER_HOME with the repository's dagster.yaml on the test database, the sandbox's URLs."""
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(settings.project_root() / "dagster.yaml", home / "dagster.yaml")
    env = dict(os.environ)
    env.update(sandbox.env())
    env.update(
        {
            "DAGSTER_HOME": str(home),
            settings.DATABASE_URL_ENV: dsn,
            settings.DAGSTER_STORAGE_URL_ENV: db.dagster_storage_url(dsn),
            "HOMEOWNER_ARTIFACTS_DIR": str(home / "artifacts"),
            "HOMEOWNER_SLACK_CHANNEL": "#homeowner-ops",
            "PYTHONPATH": os.pathsep.join(
                filter(None, [str(settings.project_root()), os.environ.get("PYTHONPATH")])
            ),
        }
    )
    return env


@contextmanager
def dagster_ui(env: dict[str, str], timeout: float = 300) -> Iterator[DagsterUI]:
    """Webserver and daemon on `env`'s instance until the block ends; stopped, never left behind."""
    port = free_port()
    bin_dir = Path(sys.executable).parent
    workspace = str(settings.project_root() / "workspace.yaml")
    logs = Path(env["DAGSTER_HOME"])
    processes: list[subprocess.Popen] = []
    try:
        for name, cmd in (
            (
                "webserver",
                [
                    str(bin_dir / "dagster-webserver"),
                    "-w",
                    workspace,
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(port),
                ],
            ),
            ("daemon", [str(bin_dir / "dagster-daemon"), "run", "-w", workspace]),
        ):
            with (logs / f"{name}.log").open("w") as log:
                processes.append(
                    start_group(
                        cmd, env=env, cwd=env["DAGSTER_HOME"], stdout=log, stderr=subprocess.STDOUT
                    )
                )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout
        while not ui_loaded(url):
            for p in processes:
                assert p.poll() is None, (logs / "webserver.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the Dagster UI did not load the code location"
            time.sleep(1)
        # The "Join the Dagster community" dialog greets every new browser on 127.0.0.1 once.
        graphql(url, "mutation { setNuxSeen }")
        yield DagsterUI(url, Path(env["DAGSTER_HOME"]), env)
    finally:
        for p in processes:
            stop_group(p, grace=5.0, say=lambda _text: None)


HOMEOWNER = str(Path(sys.executable).parent / "homeowner")
# What a new shell does not have: the sandbox's settings live in `homeowner dev --sandbox` only.
SERVICE_PREFIXES = (
    "COLE_",
    "DEBOUNCE_",
    "BISON_",
    "CLAY_",
    "SLACK_",
    "SUPABASE_",
    "HOMEOWNER_SANDBOX_",
)


def new_shell(home: Path) -> dict[str, str]:
    """An operator's new shell: no service settings, no configured database, `home` as
    HOMEOWNER_HOME (its own embedded PostgreSQL, started by the first command that needs it).
    Deployment settings stay, as a shell profile keeps them (the Slack allowlist among them)."""
    configured = (settings.DATABASE_URL_ENV, settings.DAGSTER_STORAGE_URL_ENV, "DAGSTER_HOME")
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in configured and not k.startswith(SERVICE_PREFIXES)
    }
    env[settings.HOME_ENV] = str(home)
    return env


def homeowner(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """`homeowner ARGS` typed in that shell: its own process, from the repository root."""
    return subprocess.run(
        [HOMEOWNER, *args],
        env=env,
        cwd=settings.project_root(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def exported(env: dict[str, str]) -> dict[str, str]:
    """What `eval "$(homeowner env)"` would set in that shell (beside `dev --sandbox`: its sandbox)."""
    printed = homeowner(env, "env", timeout=120)
    assert printed.returncode == 0, printed.stderr
    pairs = (
        shlex.split(line.removeprefix("export "))[0].split("=", 1)
        for line in printed.stdout.splitlines()
        if line.startswith("export ")
    )
    return dict(pairs)


@contextmanager
def dev_sandbox(env: dict[str, str], timeout: float = 300) -> Iterator[DagsterUI]:
    """`homeowner dev --sandbox` in that shell until the block ends, then SIGTERM (its own stop);
    whatever it started and left is killed, its embedded PostgreSQL stopped."""
    home = Path(env[settings.HOME_ENV])
    port = free_port()
    log = home / "dev.log"
    home.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        process = subprocess.Popen(
            [HOMEOWNER, "dev", "--sandbox", "--port", str(port)],
            env=env,
            cwd=settings.project_root(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    started: list[psutil.Process] = []
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout
        while not ui_loaded(url):
            assert process.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, (
                "homeowner dev: the UI did not load the code location"
            )
            time.sleep(1)
        started = psutil.Process(process.pid).children(recursive=True)
        graphql(url, "mutation { setNuxSeen }")  # the community dialog greets a new browser once
        yield DagsterUI(url, home / "dagster", {**env, **exported(env)})
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
        for child in started:
            try:
                child.kill()
            except psutil.NoSuchProcess:
                pass
        if db.embedded_running(home):
            db.stop_embedded(home)
