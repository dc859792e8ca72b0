"""DeBounce: the key works, and the remaining credits cover next month's expected verifications.

`GET /v1/balance/?api=KEY` (documented, free, read-only) answers `{"balance": "1087306"}`. The
need comes from the last month pulled (leads/credit_forecast.py). The key travels in the query
string, so no URL reaches a finding (httpx's request log lines are sanitised:
`homeowner_dagster.sanitiser`).
"""

from __future__ import annotations

from collections.abc import Sequence

import httpx
import pandas as pd

from homeowner_dagster import db, registry
from homeowner_dagster.addresses import DEBOUNCE_API_URL, service_address
from homeowner_dagster.leads.credit_forecast import FORECAST_COLUMNS, verifications_next_month
from homeowner_dagster.leads.territories import target_for
from homeowner_dagster.preflight.findings import Finding, failed, ok, skipped
from homeowner_dagster.resources.bison import RetriesExhausted, RetryPolicy, send_with_retries
from homeowner_dagster.resources.email_verification import EmailVerificationResource

SERVICE = "debounce"
_LAST_MONTH = """
with last as (select client_slug, max(month) as month from monthly_cleaned_leads group by client_slug)
select m.client_slug,
       m.cleaned_count + m.routed_count + (
           select count(*) from rejected_leads r
           where r.client_slug = m.client_slug and r.month = m.month and r.reason = 'email_not_safe_to_send'
       ) as verified_last_month
from monthly_cleaned_leads m join last using (client_slug, month)
"""


def forecast(dsn: str, clients: Sequence[registry.Client]) -> tuple[int, str]:
    """(addresses next month, how it was estimated) for the active clients."""
    with db.connect(dsn) as conn:
        last = dict(conn.execute(_LAST_MONTH).fetchall())
    frame = pd.DataFrame(
        [
            (c.slug, last.get(c.slug), target_for(c.package_tier, c.target_override))
            for c in clients
        ],
        columns=FORECAST_COLUMNS,
    )
    need, guessed = verifications_next_month(frame)
    how = "from the last month pulled"
    if guessed:
        how += f"; {guessed} client(s) never pulled counted at their package target"
    return need, how


def probe_debounce(
    verification: EmailVerificationResource, dsn: str | None, clients: Sequence[registry.Client]
) -> list[Finding]:
    if verification.backend != "debounce":
        return [
            skipped(
                SERVICE,
                "",
                "key",
                f"not used: the verification backend is {verification.backend!r}",
            )
        ]
    if not verification.api_key:
        return [failed(SERVICE, "", "key", "set DEBOUNCE_API_KEY (DeBounce dashboard, API keys)")]
    url = service_address(DEBOUNCE_API_URL).rstrip("/") + "/v1/balance/"
    try:
        with httpx.Client(timeout=30) as client:
            response = send_with_retries(
                client, "GET", url, RetryPolicy(3, 0.5), params={"api": verification.api_key}
            )
    except (RetriesExhausted, httpx.HTTPError) as exc:
        detail = str(exc) if isinstance(exc, RetriesExhausted) else type(exc).__name__
        return [failed(SERVICE, "", "key", "DeBounce did not answer; try again later", detail)]
    if response.status_code in (401, 403):
        return [failed(SERVICE, "", "key", "DeBounce refused DEBOUNCE_API_KEY: set the account's current key",
                       f"HTTP {response.status_code}")]  # fmt: skip
    try:
        balance = int(str(response.json()["balance"]).replace(",", ""))
    except (ValueError, KeyError, TypeError):
        return [failed(SERVICE, "", "balance", "the balance answer is not the documented {\"balance\": \"N\"}: "
                       "the check must follow", f"HTTP {response.status_code}",
                       depends="preflight/debounce.py")]  # fmt: skip
    out = [ok(SERVICE, "", "key", "accepted"), ok(SERVICE, "", "balance", f"{balance:,} credits")]
    if not dsn:
        return out + [
            skipped(SERVICE, "", "credits for next month", "the database is not readable")
        ]
    need, how = forecast(dsn, clients)
    if balance < need:
        out.append(failed(SERVICE, "", "credits for next month",
                          f"buy at least {need - balance:,} credits in DeBounce before the 15th",
                          f"{balance:,} left, about {need:,} needed ({how})"))  # fmt: skip
    else:
        out.append(
            ok(
                SERVICE,
                "",
                "credits for next month",
                f"{balance:,} left, about {need:,} needed ({how})",
            )
        )
    return out
