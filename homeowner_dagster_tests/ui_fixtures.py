"""The Dagster UI as an operator sees it: `dagster-webserver` and `dagster-daemon` started on a
test database, the sandbox behind every connector. Both run in their own process group with
default signal dispositions and are stopped like `homeowner dev` stops its own."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

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


def _loaded(url: str) -> bool:
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
        while not _loaded(url):
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
