"""The client registry and ZIP territories in Postgres: imports that write all or nothing."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from dagster import Failure
from psycopg import sql

from homeowner_dagster import addresses, db, store
from homeowner_dagster.leads.territories import (
    CHANGE_COLUMNS,
    TerritoryError,
    ZipSheet,
    derive_territory,
    months_to_check,
    new_problems,
    unknown_hnw_clients,
    zip_conflicts,
)

CLIENT_COLUMNS = [
    "slug",
    "name",
    "workspace_name",
    "bison_instance_url",
    "bison_token_env",
    "package_tier",
    "target_override",
    "licensed_states",
    "max_home_value",
    "head_of_household_required",
    "sample_surplus",
    "slack_channel",
    "active",
    "campaign_name",
    "hold_below_minimum",
]

_CLIENT_SELECT = sql.SQL(", ").join(map(sql.Identifier, CLIENT_COLUMNS))


@dataclass(frozen=True)
class Client:
    """One agent the agency runs campaigns for, as the pipeline needs it."""

    slug: str
    name: str
    workspace_name: str
    bison_instance_url: str | None
    bison_token_env: str | None
    package_tier: int
    target_override: int | None
    licensed_states: tuple[str, ...]
    max_home_value: float
    head_of_household_required: bool
    sample_surplus: bool
    slack_channel: str | None
    active: bool
    campaign_name: str | None = None  # Evergreen campaign title pattern; None: the default
    hold_below_minimum: bool = False  # no weekly upload of a below-minimum month until approved


# Where a client's Bison token may go. A client file is data, not configuration: it may only
# name a variable of the BISON_TOKEN_ family and an https instance the operator allowed.
BISON_TOKEN_ENV_RE = re.compile(r"BISON_TOKEN_[A-Z0-9][A-Z0-9_]*")
ALLOWED_HOSTS_ENV = "BISON_ALLOWED_HOSTS"
# Set by the sandbox (Sandbox.env()) to the origins of its own loopback servers: the one rule for
# every service address lives in `addresses`.
SANDBOX_ORIGINS_ENV = addresses.SANDBOX_ORIGINS_ENV
sandbox_origins = addresses.sandbox_origins


def _host(url: str) -> str:
    from urllib.parse import urlsplit

    return (urlsplit(url).hostname or "").lower()


def allowed_bison_hosts(environ: dict[str, str] | None = None) -> set[str]:
    """BISON_ALLOWED_HOSTS (comma-separated), else the host of BISON_INSTANCE_URL."""
    env = os.environ if environ is None else environ
    listed = {h.strip().lower() for h in (env.get(ALLOWED_HOSTS_ENV) or "").split(",") if h.strip()}
    if listed:
        return listed
    default = (env.get("BISON_INSTANCE_URL") or "").strip()
    return {_host(default)} if default and _host(default) else set()


def bison_destination_problem(
    instance_url: str | None, token_env: str | None, environ: dict[str, str] | None = None
) -> str | None:
    """Why a Bison token must not be sent to this instance, or None when it may.

    `instance_url` is the URL that will be called (the client's own, else BISON_INSTANCE_URL).
    """
    from urllib.parse import urlsplit

    if token_env is not None and not BISON_TOKEN_ENV_RE.fullmatch(token_env):
        return (
            f"bison token variable {token_env!r} must be named BISON_TOKEN_<SUFFIX> "
            "(A-Z, 0-9, _); no other variable is sent to Bison"
        )
    if not instance_url:
        return None
    try:
        parts = urlsplit(instance_url)
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        return "bison instance is not a URL"
    host = (parts.hostname or "").lower()
    if addresses.is_sandbox_origin(instance_url, environ):
        return None  # the sandbox's own loopback server, set by the sandbox
    if parts.scheme != "https" or not host:
        # Scheme and host only: a path or query may carry something private.
        return f"bison instance {parts.scheme or '?'}://{host or '?'} must be an https:// URL"
    allowed = allowed_bison_hosts(environ)
    if host not in allowed:
        return (
            f"bison instance host {host!r} is not in {ALLOWED_HOSTS_ENV} "
            f"({', '.join(sorted(allowed)) or 'unset, and BISON_INSTANCE_URL unset'}); "
            "the operator adds it there"
        )
    return None


def bison_destination_problems(
    clients: pd.DataFrame, environ: dict[str, str] | None = None
) -> list[str]:
    """One line per client row whose token variable or Bison instance is refused."""
    problems = []
    for number, row in enumerate(clients.to_dict("records"), start=1):
        # A row without its own instance uses the operator's BISON_INSTANCE_URL, checked at run time.
        own = _plain(row.get("bison_instance_url")) or None
        problem = bison_destination_problem(
            own, _plain(row.get("bison_token_env")) or None, environ
        )
        if problem:
            problems.append(f"client {number} ({row.get('slug')}): {problem}")
    return problems


def ensure_bison_destination_allowed(client: Client) -> None:
    """Run-time twin of the import check: a row edited in the table since is refused too."""
    instance = client.bison_instance_url or os.environ.get("BISON_INSTANCE_URL")
    problem = bison_destination_problem(instance, client.bison_token_env)
    if problem:
        raise Failure(
            description=f"{client.slug}: {problem}; fix the client file and run "
            "`homeowner clients import FILE`",
            allow_retries=False,
        )


# Where Slack messages may go: the operations channel and the channels the deployment lists. A
# client file naming any other channel (a shared or direct one) is refused; chart links and
# counts never reach a channel nobody chose.
SLACK_CHANNELS_ENV = "HOMEOWNER_SLACK_CHANNELS"
OPS_CHANNEL_ENV = "HOMEOWNER_SLACK_CHANNEL"
DEFAULT_OPS_CHANNEL = "#homeowner-ops"


def ops_channel(environ: Mapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    return (env.get(OPS_CHANNEL_ENV) or "").strip() or DEFAULT_OPS_CHANNEL


def _channel_key(channel: str) -> str:
    return channel.strip().lstrip("#").lower()


def allowed_slack_channels(environ: Mapping[str, str] | None = None) -> set[str]:
    """HOMEOWNER_SLACK_CHANNELS (comma-separated, `#` optional) plus the operations channel."""
    env = os.environ if environ is None else environ
    listed = {_channel_key(c) for c in (env.get(SLACK_CHANNELS_ENV) or "").split(",") if c.strip()}
    return listed | {_channel_key(ops_channel(env))}


def slack_channel_problem(
    channel: str | None, environ: Mapping[str, str] | None = None
) -> str | None:
    """Why a client's messages must not go to `channel`, or None (no channel: the ops channel)."""
    if not channel:
        return None
    if _channel_key(channel) not in allowed_slack_channels(environ):
        return (
            f"slack channel {channel!r} is not in {SLACK_CHANNELS_ENV} (nor the operations "
            f"channel {OPS_CHANNEL_ENV}); the operator adds it there"
        )
    return None


def client_problems(clients: pd.DataFrame, environ: dict[str, str] | None = None) -> list[str]:
    """One line per client row whose Bison destination or Slack channel is refused."""
    problems = bison_destination_problems(clients, environ)
    for number, row in enumerate(clients.to_dict("records"), start=1):
        problem = slack_channel_problem(_plain(row.get("slack_channel")) or None, environ)
        if problem:
            problems.append(f"client {number} ({row.get('slug')}): {problem}")
    return problems


def ensure_slack_channel_allowed(client: Client) -> None:
    """Run-time twin of the import check: a channel edited in the table since is refused too."""
    problem = slack_channel_problem(client.slack_channel)
    if problem:
        raise Failure(
            description=f"{client.slug}: {problem}; fix the client file and run "
            "`homeowner clients import FILE`",
            allow_retries=False,
        )


def upsert_clients(clients: pd.DataFrame, url: str | None = None) -> int:
    """Insert or update every client of the frame (by slug) in one transaction.

    Refused whole (TerritoryError, one line per client) when a row would send its Bison token
    to a variable outside BISON_TOKEN_* or to an instance the operator did not allow, or name a
    Slack channel outside the deployment's list.
    """
    problems = client_problems(clients)
    if problems:
        raise TerritoryError(problems)
    with db.transaction(url) as conn:
        for record in clients[CLIENT_COLUMNS].to_dict("records"):
            row = {c: _plain(record[c]) for c in CLIENT_COLUMNS}
            db.upsert(conn, "clients", {**row, "updated_at": datetime.now(UTC)}, key="slug")
    return len(clients)


def upsert_hnw_rules(rules: pd.DataFrame, url: str | None = None) -> int:
    """Insert or replace high-net-worth routing rules (by name); every client named must exist."""
    if rules.empty:
        return 0
    with db.transaction(url) as conn:
        known = {r[0] for r in conn.execute("select slug from clients").fetchall()}
        problems = unknown_hnw_clients(rules, known)
        if problems:
            raise TerritoryError(problems)
        with conn.cursor() as cur:
            # `position`: the file's order, the order rules are tried in (first match wins).
            for position, r in enumerate(rules.itertuples(), start=1):
                cur.execute(
                    "insert into hnw_routing_rules "
                    "(name, destination_client, source_states, source_clients, threshold, position) "
                    "values (%s, %s, %s, %s, %s, %s) on conflict (name) do update set "
                    "destination_client = excluded.destination_client, source_states = excluded.source_states, "
                    "source_clients = excluded.source_clients, threshold = excluded.threshold, "
                    "position = excluded.position",
                    [
                        r.name,
                        r.destination_client,
                        list(r.source_states),
                        list(r.source_clients),
                        r.threshold,
                        position,
                    ],
                )
    return len(rules)


def _plain(value: Any) -> Any:
    if isinstance(value, float) and value != value:
        return None
    if hasattr(value, "item"):
        return value.item()
    return value


def load_clients(url: str | None = None, active_only: bool = True) -> list[Client]:
    stmt = sql.SQL("select {cols} from clients where active or not %s order by slug").format(
        cols=_CLIENT_SELECT
    )
    with db.connect(url) as conn:
        frame = db.read_frame(conn, stmt, [active_only])
    return [_client(r) for r in frame.to_dict("records")]


def get_client(slug: str, url: str | None = None) -> Client:
    with db.connect(url) as conn:
        frame = db.read_frame(
            conn,
            sql.SQL("select {cols} from clients where slug = %s").format(cols=_CLIENT_SELECT),
            [slug],
        )
    if frame.empty:
        raise LookupError(f"no client with slug {slug!r}")
    return _client(frame.iloc[0].to_dict())


def _client(r: dict[str, Any]) -> Client:
    return Client(
        slug=r["slug"],
        name=r["name"],
        workspace_name=r["workspace_name"],
        bison_instance_url=r["bison_instance_url"],
        bison_token_env=r["bison_token_env"],
        package_tier=int(r["package_tier"]),
        target_override=int(r["target_override"]) if pd.notna(r["target_override"]) else None,
        licensed_states=tuple(r["licensed_states"] or ()),
        max_home_value=float(r["max_home_value"]),
        head_of_household_required=bool(r["head_of_household_required"]),
        sample_surplus=bool(r["sample_surplus"]),
        slack_channel=r["slack_channel"],
        active=bool(r["active"]),
        campaign_name=r.get("campaign_name") or None,
        hold_below_minimum=bool(r.get("hold_below_minimum", False)),
    )


def _resolve_clients(refs: pd.Series, clients: pd.DataFrame) -> pd.Series:
    """Territory names in a sheet may be a slug, a display name or a Bison workspace name."""
    lookup: dict[str, str] = {}
    for row in clients.itertuples():
        for key in (row.slug, row.name, row.workspace_name):
            if key:
                lookup.setdefault(str(key).strip().lower(), row.slug)
    return refs.str.strip().str.lower().map(lookup)


def import_zips(
    sheet: ZipSheet, month: str, url: str | None = None, approved_by: str | None = None
) -> int:
    """Record the sheet as the territory from `month` on; any conflict fails the whole import,
    nothing written. Sheets of one month add up; a later month's sheet replaces earlier ones."""
    rows = sheet.rows
    with db.transaction(url) as conn:
        conn.execute("lock table client_zipcodes in share row exclusive mode")
        clients = db.read_frame(conn, "select slug, name, workspace_name from clients")
        rows = rows.assign(client_slug=_resolve_clients(rows["client_ref"], clients))
        problems = list(sheet.problems) + [
            f"line {r.line}: unknown client {r.client_ref!r}"
            for r in rows[rows["client_slug"].isna()].itertuples()
        ]
        known = rows.dropna(subset=["client_slug"])
        changes = store.territory_changes(conn)
        same_month = changes[(changes["kind"] == "sheet") & (changes["month"] == month)]
        held = same_month.drop_duplicates(subset=["zip"])[["zip", "client_slug"]]
        problems += zip_conflicts(known, held)
        if problems:
            raise TerritoryError(sorted(problems, key=_line_number))
        new = known[~known["zip"].isin(set(held["zip"]))].drop_duplicates(subset=["zip"])
        proposed = _proposed(changes, "sheet", month, new)
        return _record(conn, changes, proposed, month, approved_by)


def _line_number(problem: str) -> int:
    m = re.match(r"lines? (\d+)", problem)
    return int(m.group(1)) if m else 0


def _proposed(
    changes: pd.DataFrame, kind: str, month: str, rows: pd.DataFrame, from_client: str | None = None
) -> pd.DataFrame:
    """New change rows with ids after every recorded one (replay order = approval order)."""
    first = int(changes["id"].max()) + 1 if not changes.empty else 1
    return pd.DataFrame(
        {
            "id": range(first, first + len(rows)),
            "kind": kind,
            "month": month,
            "zip": list(rows["zip"]),
            "state": list(rows["state"]),
            "color": list(rows["color"]) if "color" in rows else None,
            "client_slug": list(rows["client_slug"]),
            "from_client": from_client,
        },
        columns=CHANGE_COLUMNS,
    )


def _record(
    conn: Any, changes: pd.DataFrame, proposed: pd.DataFrame, month: str, approved_by: str | None
) -> int:
    """Refuse changes that would give a ZIP to two clients in any month from `month` on; else
    record them and rewrite every month already written from `month` on. Returns ZIPs recorded."""
    written = store.materialized_months(conn, month)
    problems = new_problems(changes, proposed, months_to_check(changes, month, written))
    if problems:
        raise TerritoryError(problems)
    with conn.cursor() as cur:
        for c in proposed.itertuples():
            cur.execute(
                "insert into territory_changes (kind, month, zip, state, color, client_slug, from_client, approved_by) "
                "values (%s, %s, %s, %s, %s, %s, %s, coalesce(%s, current_user))",
                [
                    c.kind,
                    c.month,
                    c.zip,
                    c.state,
                    _text(c.color),
                    c.client_slug,
                    _text(c.from_client),
                    approved_by,
                ],
            )
    for m in sorted({month, *written}):
        store.sync_territory(conn, m)
    return len(proposed)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def assign_zips(
    client_slug: str,
    month: str,
    zips: list[str],
    url: str | None = None,
    approved_by: str | None = None,
) -> int:
    """Give free ZIPs to a client from `month` on (an approved gap suggestion); refuse any conflict."""
    from homeowner_dagster.leads.territories import normalise_zip, state_of_zip

    problems: list[str] = []
    rows = []
    for n, raw in enumerate(zips, start=1):
        z = normalise_zip(raw)
        state = state_of_zip(z) if z else None
        if not z or not state:
            problems.append(f"argument {n}: {raw!r} is not a known US ZIP")
            continue
        rows.append(
            {"line": n, "zip": z, "state": state, "client_slug": client_slug, "color": None}
        )
    frame = pd.DataFrame(rows, columns=["line", "zip", "state", "client_slug", "color"])
    with db.transaction(url) as conn:
        conn.execute("lock table client_zipcodes in share row exclusive mode")
        exists = conn.execute("select 1 from clients where slug = %s", [client_slug]).fetchone()
        if not exists:
            raise TerritoryError([f"unknown client {client_slug!r}"])
        if problems:
            raise TerritoryError(problems)
        changes = store.territory_changes(conn)
        current = derive_territory(changes, month).zips
        mine = set(current.loc[current["client_slug"] == client_slug, "zip"])
        new = frame[~frame["zip"].isin(mine)].drop_duplicates(subset=["zip"])
        return _record(conn, changes, _proposed(changes, "assign", month, new), month, approved_by)


def move_zips(
    from_slug: str,
    to_slug: str,
    month: str,
    zips: list[str],
    url: str | None = None,
    approved_by: str | None = None,
) -> int:
    """Move ZIPs held by `from_slug` in `month` to `to_slug`, from that month on; refuse any ZIP
    it does not hold then."""
    from homeowner_dagster.leads.territories import normalise_zip

    wanted = list(dict.fromkeys(normalise_zip(z) or str(z) for z in zips))
    with db.transaction(url) as conn:
        conn.execute("lock table client_zipcodes in share row exclusive mode")
        target = conn.execute("select 1 from clients where slug = %s", [to_slug]).fetchone()
        if not target:
            raise TerritoryError([f"unknown client {to_slug!r}"])
        changes = store.territory_changes(conn)
        current = derive_territory(changes, month).zips.set_index("zip")
        problems = [
            f"ZIP {z} is held by {current['client_slug'].get(z) or 'no client'}, not {from_slug}, in {month}"
            for z in wanted
            if current["client_slug"].get(z) != from_slug
        ]
        if problems:
            raise TerritoryError(problems)
        rows = current.loc[wanted].reset_index().assign(client_slug=to_slug, color=None)
        return _record(
            conn, changes, _proposed(changes, "move", month, rows, from_slug), month, approved_by
        )


def client_zips(client_slug: str, month: str, url: str | None = None) -> pd.DataFrame:
    with db.connect(url) as conn:
        return db.read_frame(
            conn,
            "select zip, state, raw_count, cleaned_count, pulled_at from client_zipcodes "
            "where client_slug = %s and month = %s order by zip",
            [client_slug, month],
        )


def territory_of(
    client_slug: str, month: str, url: str | None = None
) -> tuple[pd.DataFrame, str | None]:
    """The client's ZIPs in `month` as carried forward (zip, state, source, pulled_at), and the
    month of the sheet they start from (None when no sheet is at or before `month`)."""
    with db.connect(url) as conn:
        if not conn.execute("select 1 from clients where slug = %s", [client_slug]).fetchone():
            raise TerritoryError([f"unknown client {client_slug!r}"])
        derived = derive_territory(store.territory_changes(conn, month), month)
        pulled = db.read_frame(
            conn,
            "select zip, pulled_at from client_zipcodes where client_slug = %s and month = %s",
            [client_slug, month],
        )
    mine = derived.zips[derived.zips["client_slug"] == client_slug][["zip", "state", "source"]]
    return mine.merge(pulled, on="zip", how="left").reset_index(drop=True), derived.sheet_month
