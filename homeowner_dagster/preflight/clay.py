"""Clay: the configured table answers its read API, each webhook's address answers, and what is
left of each webhook's and table's budget (counted by the project in `clay_webhook_usage`).

Read-only: a webhook takes rows only, so preflight never posts to one; it asks the webhook's
address with a GET (no token, no body), which proves the address answers, not the token. The
table is read with one row at most (`limit=1`), whose fields are not looked at.
"""

from __future__ import annotations

import httpx

from homeowner_dagster.addresses import CLAY_API_URL, AddressRefused, service_address
from homeowner_dagster.preflight.findings import Finding, failed, ok, skipped
from homeowner_dagster.resources.bison import RetriesExhausted, RetryPolicy, send_with_retries
from homeowner_dagster.resources.clay import WEBHOOK_LIMIT_REACHED, ClayResource, env_names

SERVICE = "clay"


def _table_finding(clay: ClayResource, client: httpx.Client) -> Finding:
    if not clay.api_key or not clay.table_id:
        return skipped(
            SERVICE,
            "",
            "table read",
            "CLAY_API_KEY / CLAY_TABLE_ID not set: the table is not read back",
        )
    try:
        url = f"{service_address(CLAY_API_URL).rstrip('/')}/api/v1/tables/{clay.table_id}/rows"
    except AddressRefused as exc:  # CLAY_API_URL is a settings line only with the clay backend
        return failed(SERVICE, "", "table read", str(exc.description))
    try:
        response = send_with_retries(
            client,
            "GET",
            url,
            RetryPolicy(3, 0.5),
            params={"limit": 1},
            headers={"clay-api-key": clay.api_key},
        )
    except (RetriesExhausted, httpx.HTTPError) as exc:
        return failed(
            SERVICE, "", "table read", "Clay did not answer; try again later", type(exc).__name__
        )
    if response.status_code in (401, 403):
        return failed(SERVICE, "", "table read", "Clay refused CLAY_API_KEY: set the workspace's API key",
                      f"HTTP {response.status_code}")  # fmt: skip
    if response.status_code == 404:
        return failed(
            SERVICE,
            "",
            "table read",
            "Clay knows no table CLAY_TABLE_ID: copy the id from the table's URL",
        )
    if response.status_code >= 400:
        return failed(
            SERVICE, "", "table read", "Clay refused the read", f"HTTP {response.status_code}"
        )
    return ok(SERVICE, "", "table read", "the table answers its read API")


def probe_clay(clay: ClayResource | None, need: int | None) -> list[Finding]:
    """`need`: rows next month's verifications would push (when Clay is the verification backend)."""
    if clay is None:
        return [skipped(SERVICE, "", "configured", "not configured (CLAY_WEBHOOK_URL not set)")]
    try:
        hooks = clay.webhooks()  # each webhook's address checked (its path is its secret)
    except AddressRefused as exc:
        return [failed(SERVICE, "", "webhooks", str(exc.description))]
    with httpx.Client(timeout=30) as client:
        out = [_table_finding(clay, client)]
        for hook in hooks:
            check = f"webhook {hook.number}"
            if not hook.url:
                out.append(failed(SERVICE, "", check, f"set {env_names(hook.number)}"))
                continue
            try:
                answer = client.get(hook.url)
            except httpx.HTTPError as exc:
                out.append(failed(SERVICE, "", check, f"the webhook of table {hook.table_name!r} does not "
                                  "answer: check its URL in Clay", type(exc).__name__))  # fmt: skip
                continue
            out.append(ok(SERVICE, "", check, f"table {hook.table_name!r}: its address answers (HTTP "
                          f"{answer.status_code}; only a push proves the token, and preflight pushes nothing)"))  # fmt: skip
    try:
        by_hook, by_table = clay.usage()
    except Exception as exc:  # noqa: BLE001 - a missing table or database: one line
        return out + [failed(SERVICE, "", "row budget", "the usage table clay_webhook_usage cannot be read: "
                             "run `homeowner migrate`", type(exc).__name__)]  # fmt: skip
    room = 0
    for hook in hooks:
        used = by_hook.get(hook.webhook_id, 0)
        rows = by_table.get(hook.table_name, 0)
        hook_left = 0 if used >= WEBHOOK_LIMIT_REACHED else max(clay.webhook_limit - used, 0)
        table_left = max(clay.table_row_limit - rows, 0)
        room = max(room, min(hook_left, table_left))
        detail = (
            f"webhook {hook.number}: {hook_left:,} of {clay.webhook_limit:,} submissions left; "
            f"table {hook.table_name!r}: {table_left:,} of {clay.table_row_limit:,} rows left"
        )
        if hook_left == 0 or table_left == 0:
            out.append(failed(SERVICE, "", f"row budget {hook.number}", "make a new table or webhook in Clay and "
                              f"set {env_names(len(hooks) + 1)}", detail))  # fmt: skip
        else:
            out.append(ok(SERVICE, "", f"row budget {hook.number}", detail))
    if need is not None and room < need:
        out.append(failed(SERVICE, "", "rows for next month", "make the next table (or webhook) in Clay and set "
                          f"{env_names(len(hooks) + 1)} before the 15th",
                          f"room for {room:,} rows, about {need:,} needed"))  # fmt: skip
    elif need is not None:
        out.append(
            ok(SERVICE, "", "rows for next month", f"room for {room:,} rows, about {need:,} needed")
        )
    return out
