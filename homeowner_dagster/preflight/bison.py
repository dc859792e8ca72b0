"""Email Bison, per client workspace: read-only calls with the client's own token.

The token works and is for the client's workspace; exactly one campaign matches the client's
Evergreen pattern and its title names a renewal window; the custom variables the upload maps
exist; the campaign answer holds every field the project reads (names only, never values); the
lead-list listing (`GET /api/lead-lists`, the documented one) answers in the documented shape.
Calls are paced and retried by the workspace client (a 429 waits its Retry-After, capped).
Nothing is created, renamed or attached: a missing custom variable is reported, not made.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import httpx

from homeowner_dagster import registry
from homeowner_dagster.assets.weekly_upload import campaign_patterns
from homeowner_dagster.leads.calendar import parse_evergreen_title
from homeowner_dagster.leads.columns import BISON_FIELD_MAP
from homeowner_dagster.preflight.findings import Finding, failed, ok, skipped
from homeowner_dagster.resources.bison import (
    CAMPAIGN_SETTINGS,
    RESET_BOOLEANS,
    STANDARD_FIELDS,
    BisonError,
    BisonResource,
    RetriesExhausted,
)

SERVICE = "bison"
# Campaign fields the project reads, and where (drift: what breaks when one is renamed).
CAMPAIGN_FIELDS: dict[str, str] = {
    "id": "assets/weekly_upload.py evergreen_campaign (attach, rename)",
    "name": "assets/weekly_upload.py evergreen_campaign (the title names the window)",
    "total_leads": "resources/bison.py BisonWorkspace.campaign_lead_count (attach verified)",
    **{
        key: "resources/bison.py BisonWorkspace.rename_campaign (sent back on rename)"
        for key in CAMPAIGN_SETTINGS
        if key not in ("name", *RESET_BOOLEANS)
    },
}
# Lead-list fields the upload's checks read from `GET /api/lead-lists`.
LIST_FIELDS: dict[str, str] = {
    "id": "resources/bison.py find_lead_lists / lead_list_count",
    "name": "resources/bison.py find_lead_lists (a window's list by name)",
    "status": "resources/bison.py lead_list_count (import Processed?)",
    "leads_succeeded": "resources/bison.py lead_list_count",
    "leads_failed": "resources/bison.py lead_list_count",
    "error_messages": "resources/bison.py lead_list_count (refused rows)",
    "created_at": "resources/bison.py _list_created_since (a lost upload's list)",
}
CUSTOM_VARIABLES: tuple[str, ...] = tuple(
    v for v in BISON_FIELD_MAP.values() if v not in STANDARD_FIELDS
)


def _why(exc: Exception) -> str:
    """An error as one safe line: Bison's own message and status, or the error's type."""
    if isinstance(exc, BisonError | RetriesExhausted):
        return str(exc)
    return type(exc).__name__


def duplicate_tokens(clients: Sequence[registry.Client]) -> dict[str, list[str]]:
    """Token variable -> the other variables holding the same token (a token pasted twice)."""
    by_value: dict[str, list[str]] = {}
    for c in clients:
        value = os.environ.get(c.bison_token_env or "") if c.bison_token_env else None
        if value:
            names = by_value.setdefault(value, [])
            if c.bison_token_env not in names:
                names.append(c.bison_token_env)  # type: ignore[arg-type]
    return {
        name: [n for n in names if n != name]
        for names in by_value.values()
        if len(names) > 1
        for name in names
    }


def probe_client(
    bison: BisonResource, client: registry.Client, dsn: str | None, twins: dict[str, list[str]]
) -> list[Finding]:
    """Every Bison check of one client, in order; a refused token skips the rest."""
    slug = client.slug
    instance = client.bison_instance_url or os.environ.get("BISON_INSTANCE_URL")
    problem = registry.bison_destination_problem(instance, client.bison_token_env)
    if not instance or not client.bison_token_env:
        return [failed(SERVICE, slug, "workspace settings",
                       "set the client's Bison instance (or BISON_INSTANCE_URL) and its token variable "
                       "in the client file, then `homeowner clients import`")]  # fmt: skip
    if problem:
        return [failed(SERVICE, slug, "destination allowed", problem + " (the token was not sent)")]
    if not os.environ.get(client.bison_token_env):
        return [failed(SERVICE, slug, "token",
                       f"set {client.bison_token_env} (an api-user key of workspace {client.workspace_name!r})")]  # fmt: skip
    out: list[Finding] = []
    if client.bison_token_env in twins:
        out.append(
            failed(SERVICE, slug, "token is its own",
                   f"{client.bison_token_env} holds the same token as {', '.join(twins[client.bison_token_env])}: "
                   "each workspace has its own key; set the right one")
        )  # fmt: skip
    with bison.workspace(instance, client.bison_token_env) as workspace:
        try:
            me = workspace.read("/api/users")
        except (BisonError, RetriesExhausted, httpx.HTTPError) as exc:
            refused = isinstance(exc, BisonError) and exc.status in (401, 403)
            out.append(
                failed(SERVICE, slug, "token",
                       f"Bison refused {client.bison_token_env}: revoked or wrong; create an api-user key "
                       f"for workspace {client.workspace_name!r} and set it (runbook section 3)"
                       if refused else "Bison did not answer; try again later", _why(exc))
            )  # fmt: skip
            return out + [
                skipped(SERVICE, slug, check, "not checked: the token check did not pass")
                for check in (
                    "evergreen campaign",
                    "custom variables",
                    "campaign fields",
                    "lead-list listing",
                )
            ]
        out.append(_workspace_finding(client, me))
        out += _campaign_findings(workspace, client, dsn, _configured(bison))
        out += _custom_variable_findings(workspace, slug)
        out.append(_listing_finding(workspace, slug))
    return out


def _workspace_finding(client: registry.Client, me: Any) -> Finding:
    data = me.get("data") if isinstance(me, dict) else None
    team = data.get("team") if isinstance(data, dict) else None
    name = team.get("name") if isinstance(team, dict) else None
    if not name:
        return failed(
            SERVICE, client.slug, "token is for the workspace",
            "the token works, but Bison's answer names no workspace (data.team.name), so the "
            "workspace cannot be confirmed: check the key's workspace in Bison (Settings, Developer API)",
            depends="preflight/bison.py (the answer's shape is guessed: sandbox/README.md)",
        )  # fmt: skip
    if str(name).strip().casefold() != client.workspace_name.strip().casefold():
        return failed(
            SERVICE, client.slug, "token is for the workspace",
            f"{client.bison_token_env} is a key of workspace {name!r}, the client file says "
            f"{client.workspace_name!r}: set the key of the client's workspace (or correct the file)",
        )  # fmt: skip
    return ok(SERVICE, client.slug, "token is for the workspace", f"workspace {name!r}")


def _configured(bison: BisonResource) -> dict[str, bool] | str:
    """The configured values of the booleans Bison does not return, or why they are unreadable."""
    try:
        return bison.settings_not_returned()
    except BisonError as exc:
        return str(exc)


def _campaign_findings(
    workspace: Any, client: registry.Client, dsn: str | None, configured: dict[str, bool] | str
) -> list[Finding]:
    slug = client.slug
    patterns = campaign_patterns(dsn, client) if dsn else [client.campaign_name or "Evergreen"]
    where = "assets/weekly_upload.py evergreen_campaign_of (PT5)"
    try:
        for pattern in patterns:
            found = workspace.find_campaigns(pattern)
            if len(found) > 1:
                listed = "; ".join(f"{c.get('name')!r} (id {c.get('id')})" for c in found)
                return [failed(SERVICE, slug, "evergreen campaign",
                               f"{len(found)} campaigns start with {pattern!r}: rename all but one, or set a "
                               "more precise campaign_name in the client file (`homeowner clients import`)",
                               listed, depends=where),
                        skipped(SERVICE, slug, "campaign fields", "not checked: no single Evergreen campaign")]  # fmt: skip
            if found:
                campaign = workspace.campaign(found[0]["id"])
                return [
                    ok(
                        SERVICE,
                        slug,
                        "evergreen campaign",
                        f"{found[0].get('name')!r} (id {found[0].get('id')})",
                    ),
                    _title_finding(slug, str(found[0].get("name") or "")),
                    *_field_findings(slug, campaign, configured),
                ]
    except (BisonError, RetriesExhausted, httpx.HTTPError) as exc:
        return [
            failed(
                SERVICE,
                slug,
                "evergreen campaign",
                "Bison did not answer; try again later",
                _why(exc),
            )
        ]
    return [
        failed(SERVICE, slug, "evergreen campaign",
               f"no campaign title starts with {' or '.join(map(repr, patterns))} in workspace "
               f"{client.workspace_name!r}: create it, or set campaign_name in the client file",
               depends=where),
        skipped(SERVICE, slug, "campaign fields", "not checked: no Evergreen campaign"),
    ]  # fmt: skip


def _title_finding(slug: str, title: str) -> Finding:
    try:
        parse_evergreen_title(title)
    except ValueError:
        return failed(SERVICE, slug, "evergreen title",
                      "the title names no renewal window: write it like 'Evergreen, Last Upload: "
                      "February 1-7' (PT5 attaches but cannot move the title on otherwise)",
                      repr(title), depends="leads/calendar.py parse_evergreen_title")  # fmt: skip
    return ok(SERVICE, slug, "evergreen title", "names a renewal window")


def _field_findings(
    slug: str, campaign: dict[str, Any], configured: dict[str, bool] | str
) -> list[Finding]:
    """One line per field the project reads that the campaign answer lacks (names only)."""
    out = [
        failed(SERVICE, slug, f"campaign field {name}",
               f"the campaign answer has no field {name!r} (renamed or removed by Bison?): the code "
               "reading it must follow the new name", depends=where)
        for name, where in CAMPAIGN_FIELDS.items()
        if name not in campaign
    ]  # fmt: skip
    for key in RESET_BOOLEANS:
        if key in campaign:
            continue
        variable = f"BISON_{key.upper()}"
        if isinstance(configured, str):
            out.append(failed(SERVICE, slug, f"campaign setting {key}", configured))
        elif key in configured:
            out.append(
                ok(
                    SERVICE,
                    slug,
                    f"campaign setting {key}",
                    f"not returned by Bison; {variable} is set",
                )
            )
        else:
            out.append(
                failed(SERVICE, slug, f"campaign setting {key}",
                       f"Bison does not return {key!r} and resets it when a rename leaves it out: set "
                       f"{variable}=true or false (what the Evergreen campaign keeps), else PT5 refuses to rename",
                       depends="resources/bison.py BisonWorkspace.rename_campaign")
            )  # fmt: skip
    present = [name for name in CAMPAIGN_FIELDS if name in campaign]
    out.insert(
        0,
        ok(
            SERVICE,
            slug,
            "campaign fields",
            f"{len(present)} of {len(CAMPAIGN_FIELDS)} read by the project present",
        ),
    )
    return out


def _custom_variable_findings(workspace: Any, slug: str) -> list[Finding]:
    try:
        existing = workspace.custom_variables()
    except (BisonError, RetriesExhausted, httpx.HTTPError, KeyError, TypeError) as exc:
        return [failed(SERVICE, slug, "custom variables", "Bison's custom-variable list could not be read", _why(exc),
                       depends="resources/bison.py BisonWorkspace.custom_variables")]  # fmt: skip
    missing = [name for name in CUSTOM_VARIABLES if name not in existing]
    out = [
        failed(SERVICE, slug, f"custom variable {name}",
               "create it in the workspace (Bison: Custom variables) before Monday's upload maps a "
               "column to it; preflight creates nothing",
               depends="resources/bison.py upload_lead_list (columnsToMap) and leads/columns.py BISON_FIELD_MAP")
        for name in missing
    ]  # fmt: skip
    if not missing:
        out.append(
            ok(
                SERVICE,
                slug,
                "custom variables",
                f"all {len(CUSTOM_VARIABLES)} the upload maps exist",
            )
        )
    return out


def _listing_finding(workspace: Any, slug: str) -> Finding:
    """`GET /api/lead-lists`: Laravel page shape, and each list with the fields the code reads."""
    check, where = "lead-list listing", "resources/bison.py BisonWorkspace._pages / lead_list_count"
    try:
        body = workspace.read("/api/lead-lists", {"page": 1})
    except (BisonError, RetriesExhausted, httpx.HTTPError) as exc:
        return failed(
            SERVICE, slug, check, "Bison did not answer the listing", _why(exc), depends=where
        )
    problems = []
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        problems.append("no 'data' list")
    meta = body.get("meta") if isinstance(body, dict) else None
    if not isinstance(meta, dict) or "last_page" not in meta:
        problems.append("no 'meta.last_page' (pages are read until it)")
    items = (
        body.get("data") if isinstance(body, dict) and isinstance(body.get("data"), list) else []
    )
    lacking = sorted({name for item in items for name in LIST_FIELDS if name not in item})
    if lacking:
        problems.append("lists without " + ", ".join(lacking))
        where = "; ".join(LIST_FIELDS[name] for name in lacking)
    if problems:
        return failed(SERVICE, slug, check, "the listing is not in the documented shape: the code "
                      "reading it must follow", "; ".join(problems), depends=where)  # fmt: skip
    shown = f"{len(items)} list(s) on page 1" if items else "no lists yet (the envelope checked)"
    return ok(SERVICE, slug, check, f"documented shape; {shown}")
