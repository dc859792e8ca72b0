"""Start-up of the fake outside world: every sandbox service on its own loopback port.

`Sandbox` starts Cole X Dates, DeBounce, Email Bison, Clay, Slack and Supabase Storage with one
shared `Faults` switchboard and keeps each service's state in memory for inspection, so tests
assert on outcomes (lists in a workspace, messages in a channel) rather than on calls. Usable as
a context manager:

    with Sandbox() as sandbox:
        os.environ.update(sandbox.env())
        ...
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

from homeowner_dagster.sandbox import (
    bison,
    bison_outcomes,
    clay,
    cole_site,
    debounce,
    slack,
    storage,
)
from homeowner_dagster.sandbox.bison import BisonState
from homeowner_dagster.sandbox.clay import ClayState
from homeowner_dagster.sandbox.cole_site import ColeSiteState
from homeowner_dagster.sandbox.debounce import DebounceState
from homeowner_dagster.sandbox.faults import Faults
from homeowner_dagster.sandbox.server import RunningServer, serve
from homeowner_dagster.sandbox.slack import SlackState
from homeowner_dagster.sandbox.storage import StorageState


def slug(name: str) -> str:
    """`Lone Star Agency` -> `LONE_STAR_AGENCY`, for environment variable names."""
    return re.sub(r"[^A-Z0-9]+", "_", name.upper()).strip("_")


# Demo Bison workspaces: (workspace name, campaigns). Tests add their own with add_workspace.
DEMO_WORKSPACES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Acme Insurance", ("Evergreen, Last Upload: January 1st-7th", "Renewal reminders")),
    ("Lone Star Agency", ("Evergreen, Last Upload: January 22nd-31st",)),
)

# Slack channels the sandbox workspace has, the bot in each (the demo clients' and the ops
# channel); tests add their own with `sandbox.slack.add_channel`.
DEMO_CHANNELS: tuple[str, ...] = (
    "#homeowner-ops",
    "#garden-state",
    "#lone-star",
    "#sunshine",
    "#hnw",
)


class Sandbox:
    """Every outside service on loopback, with one fault switchboard and inspectable state."""

    def __init__(self, seed: int = 7) -> None:
        self.seed = seed
        self.faults = Faults()
        self.urls: dict[str, str] = {}
        self._servers: list[RunningServer] = []
        self.debounce = DebounceState(api_key=f"sandbox-debounce-{seed}", seed=seed)
        self.storage = StorageState(service_key=f"sandbox-service-role-{seed}")
        self.storage.create_bucket("homeowner-artifacts", public=False)
        self.bison = BisonState()
        # Simulated sending: seeded like the rest; bounces follow DeBounce's verdict per address.
        self.bison.outcomes.seed = seed
        self.bison.outcomes.verification_code = self.debounce.code_for
        for workspace, campaigns in DEMO_WORKSPACES:
            self.bison.add_workspace(workspace, f"sandbox-bison-{slug(workspace).lower()}-{seed}")
            for title in campaigns:
                self.bison.add_campaign(workspace, title)
        self.clay = ClayState(
            api_key=f"sandbox-clay-{seed}", seed=seed, code_for=self.debounce.code_for
        )
        self.clay_table_id, self.clay_webhook_id = self.clay.add_table(
            "Homeowner leads", token=f"sandbox-clay-webhook-{seed}"
        )
        self.slack = SlackState(token=f"xoxb-sandbox-{seed}")
        for channel in DEMO_CHANNELS:
            self.slack.add_channel(channel)
        self.cole = ColeSiteState()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Sandbox:
        """Serve every service; returns once all accept connections (well under 2 s)."""
        if self._servers:
            return self
        apps: list[tuple[str, Any]] = [
            ("cole", cole_site.build_cole_app(self.cole, self.faults)),
            ("debounce", debounce.build_debounce_app(self.debounce, self.faults)),
            # Bison's answers carry its simulated clock in `Date` (bison_outcomes.py).
            (
                "bison",
                bison_outcomes.with_simulated_date(
                    bison.build_bison_app(self.bison, self.faults), self.bison.outcomes
                ),
            ),
            ("clay", clay.build_clay_app(self.clay, self.faults)),
            ("slack", slack.build_slack_app(self.slack, self.faults)),
            ("storage", storage.build_storage_app(self.storage, self.faults)),
        ]
        try:
            for name, app in apps:
                running = serve(name, app, date_header=name != "bison")
                self._servers.append(running)
                self.urls[name] = running.url
        except Exception:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop every service together (open connections included), in about 2 s at most."""
        for running in self._servers:
            running.begin_stop()
        deadline = time.monotonic() + 2.0
        for running in reversed(self._servers):
            running.finish_stop(deadline)
        self._servers.clear()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __iter__(self) -> Iterator[Sandbox]:
        """`yield from Sandbox()` in a pytest fixture starts it and stops it afterwards."""
        with self:
            yield self

    # -- what connectors need ----------------------------------------------------------------

    @property
    def bison_tokens(self) -> dict[str, str]:
        """Environment variable name -> token, one per Bison workspace."""
        return {
            f"BISON_TOKEN_{slug(name)}": workspace.token
            for name, workspace in self.bison.workspaces.items()
        }

    def cole_credentials(self) -> dict[str, str]:
        """COLE_<STATE>_USERNAME / _PASSWORD (/ _TOTP_SECRET) for the states the Cole site knows."""
        env: dict[str, str] = {}
        for state, (username, password, totp) in dict(self.cole.credentials).items():
            env[f"COLE_{state.upper()}_USERNAME"] = str(username)
            env[f"COLE_{state.upper()}_PASSWORD"] = str(password)
            if totp:
                env[f"COLE_{state.upper()}_TOTP_SECRET"] = str(totp)
        return env

    def env(self) -> dict[str, str]:
        """Every environment variable the resources need to talk to this sandbox."""
        if not self.urls:
            raise RuntimeError("start the sandbox before asking for its environment")
        env = {
            "DEBOUNCE_API_KEY": self.debounce.api_key,
            "DEBOUNCE_API_URL": self.urls["debounce"],
            "DEBOUNCE_BULK_URL": self.urls["debounce"],
            "BISON_INSTANCE_URL": self.urls["bison"],
            # The sandbox's campaigns keep reputation building and auto replies in stats on;
            # its GET never returns them (B-GET-OMITS), so the rename must be told.
            "BISON_REPUTATION_BUILDING": "true",
            "BISON_INCLUDE_AUTO_REPLIES_IN_STATS": "true",
            "CLAY_WEBHOOK_URL": f"{self.urls['clay']}/v3/sources/webhook/{self.clay_webhook_id}",
            "CLAY_WEBHOOK_TOKEN": self.clay.webhooks[self.clay_webhook_id].token,
            "CLAY_API_KEY": self.clay.api_key,
            "CLAY_API_URL": self.urls["clay"],
            "CLAY_TABLE_ID": self.clay_table_id,
            "CLAY_TABLE_NAME": self.clay.tables[self.clay_table_id]["name"],
            "SLACK_BOT_TOKEN": self.slack.token,
            "SLACK_API_URL": f"{self.urls['slack']}/api/",
            "SUPABASE_URL": self.urls["storage"],
            "SUPABASE_SERVICE_ROLE_KEY": self.storage.service_key,
            **self.bison_tokens,
            # Lets the resources send to these loopback http origins (only loopback origins with
            # their exact port count; see homeowner_dagster.addresses).
            "HOMEOWNER_SANDBOX_ORIGINS": ",".join(self.urls.values()),
            "COLE_URL": self.urls["cole"],
            **self.cole_credentials(),
        }
        return env


def start_time_seconds(seed: int = 7) -> float:
    """How long a full start takes (the benchmark and `homeowner sandbox` report it)."""
    began = time.perf_counter()
    with Sandbox(seed):
        return time.perf_counter() - began
