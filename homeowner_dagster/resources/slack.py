"""Slack: the team's channel messages, built by pure functions and posted through dagster-slack.

Messages carry client names, months, windows, counts and links, never a lead's personal data:
the builders take only those, so a lead cannot slip in.
"""

from __future__ import annotations

import random
import time
import urllib.request
from collections.abc import Mapping, Sequence

from dagster_slack import SlackResource
from pydantic import Field
from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState

from homeowner_dagster.addresses import SLACK_API_URL, service_address
from homeowner_dagster.resources.retry_after import InvalidRetryAfter, capped_wait
from homeowner_dagster.sanitiser import first_line


class BoundedRateLimitRetryHandler(RateLimitErrorRetryHandler):
    """slack_sdk's 429 handler sleeps whatever Retry-After says (and fails on a date): this one
    reads seconds or an HTTP date and waits at most `cap_seconds`, so a Slack rate limit can
    delay a run's message but never park the run."""

    def __init__(self, max_retry_count: int, cap_seconds: float) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self.cap_seconds = cap_seconds

    def prepare_for_next_attempt(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> None:
        if response is None:
            raise error  # type: ignore[misc]
        state.next_attempt_requested = True
        header = next((v for k, v in response.headers.items() if k.lower() == "retry-after"), None)
        value = header[0] if isinstance(header, list) else header
        try:
            wait = capped_wait(value, self.cap_seconds, fallback=1.0)
        except InvalidRetryAfter:
            wait = min(self.cap_seconds, 1.0)
        time.sleep(wait + random.random() * min(1.0, self.cap_seconds / 10))
        state.increment_current_attempt()


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """urllib follows a 30x and copies the Authorization header along: never here. The 30x comes
    back as an HTTPError, which slack_sdk turns into a failed call."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


class TokenStaysWebClient(WebClient):
    """slack_sdk's WebClient whose requests never follow a redirect (the bot token would go to
    wherever the redirect points)."""

    def _perform_urllib_http_request_internal(self, url: str, req: urllib.request.Request) -> dict:
        handlers: list[urllib.request.BaseHandler] = [
            _RefuseRedirects(),
            urllib.request.HTTPSHandler(context=self.ssl),
        ]
        if isinstance(self.proxy, str):
            handlers.insert(
                0, urllib.request.ProxyHandler({"http": self.proxy, "https": self.proxy})
            )
        with urllib.request.build_opener(*handlers).open(req, timeout=self.timeout) as resp:
            charset = resp.headers.get_content_charset() or "utf-8"
            return {
                "status": resp.code,
                "headers": resp.headers,
                "body": resp.read().decode(charset),
            }


class HomeownerSlackResource(SlackResource):
    """dagster-slack's resource with retries on 429/5xx. The API address is the deployment's
    (SLACK_API_URL, checked; default Slack's own), never run config: the token goes nowhere else."""

    max_retries: int = 3
    max_retry_after_seconds: float = Field(
        default=30.0, description="longest wait a 429's Retry-After can impose per retry"
    )

    def get_client(self) -> WebClient:
        url = service_address(SLACK_API_URL)
        base = url if url.endswith("/") else url + "/"
        return TokenStaysWebClient(
            token=self.token,
            base_url=base,
            retry_handlers=[
                ConnectionErrorRetryHandler(max_retry_count=self.max_retries),
                BoundedRateLimitRetryHandler(self.max_retries, self.max_retry_after_seconds),
                ServerErrorRetryHandler(max_retry_count=self.max_retries),
            ],
        )

    def post(self, channel: str, text: str) -> str:
        """Post `text` to `channel`; returns the message's timestamp (its id in Slack)."""
        response = self.get_client().chat_postMessage(
            channel=channel, text=text, unfurl_links=False, unfurl_media=False
        )
        return str(response["ts"])


def _n(value: int) -> str:
    return f"{value:,}"


def raw_pull_complete(
    client: str, month: str, records: int, exports: int, zips: int | None = None
) -> str:
    lines = [
        f"✅ Raw Pull Complete: {client}",
        f"Renewal month: {month}",
        f"Records pulled: {_n(records)}",
        f"Exports: {exports}",
    ]
    if zips is not None:
        lines.append(f"ZIPs pulled: {zips}")
    return "\n".join(lines)


def data_refinement_complete(
    client: str,
    month: str,
    refined: int,
    rejected_by_reason: Mapping[str, int],
    routed: Mapping[str, int] | None = None,
) -> str:
    lines = [
        f"✅ Data Refinement Complete: {client}",
        f"Renewal month: {month}",
        f"Refined leads: {_n(refined)}",
    ]
    lines += [
        f"Routed to {dest} (high net worth): {_n(n)}" for dest, n in (routed or {}).items() if n
    ]
    held = int(rejected_by_reason.get("held_by_other_client", 0))
    if held:
        lines.append(f"Held by another client this month: {_n(held)}")
    rejected = {reason: count for reason, count in rejected_by_reason.items() if count}
    if rejected:
        lines.append(f"Rejected: {_n(sum(rejected.values()))}")
        lines += [
            f"• {reason.replace('_', ' ')}: {_n(count)}"
            for reason, count in sorted(rejected.items(), key=lambda kv: -kv[1])
        ]
    return "\n".join(lines)


def routed_leads_received(
    client: str,
    source: str,
    month: str,
    count: int,
    routed_in_total: int,
    cleaned: int | None = None,
    target: int | None = None,
) -> str:
    """A high-net-worth destination's leads come from other clients' cleaning runs; its month's
    new total against the target, since its own gap report may have been made before."""
    text = (
        f"↪️ High-Net-Worth Leads Routed: {client}\nRenewal month: {month}\n"
        f"From {source}: {_n(count)}\nRouted in this month: {_n(routed_in_total)}"
    )
    if cleaned is not None and target is not None:
        text += f"\nCleaned this month: {_n(cleaned)} / {_n(target)} (gap {_n(target - cleaned)})"
    return text


def refined_data_uploaded(
    client: str, windows: Sequence[tuple[str, int]], total: int, same_owner: int = 0
) -> str:
    """`same_owner`: cleaned leads left out because their owner's email is already in the list."""
    lines = [f"✅ Refined Data Uploaded: {client}"]
    lines += [f"• {list_name}: {_n(count)} leads" for list_name, count in windows]
    lines.append(f"Total: {_n(total)} leads")
    if same_owner:
        lines.append(
            f"Not in the list: {_n(same_owner)} cleaned lead(s) of owners with another home "
            "renewing in this window (one email per owner)"
        )
    return "\n".join(lines)


def evergreen_uploads_completed(
    client: str, window_title: str, count: int, returning: int = 0
) -> str:
    """`returning`: leads already in the campaign from an earlier year (Bison keeps one lead per
    email; whether it emails them again is not documented, so the number is shown)."""
    text = f"Evergreen uploads completed: {client}\nCampaign now: {window_title}\nLeads attached: {_n(count)}"
    if returning:
        text += (
            f"\nAlready in the campaign from an earlier year: {_n(returning)} homeowner(s) "
            "(whether Bison emails them again is not documented; see the runbook)"
        )
    return text


def campaign_let_go(client: str, name: str, campaign_id: str, why: str) -> str:
    """The stored Evergreen campaign no longer qualifies: the title pattern is searched again."""
    return (
        f"⚠️ Evergreen campaign changed: {client}\nThe campaign used so far, {name!r} (id {campaign_id}), "
        f"{why}; it is no longer used. Looking for the Evergreen campaign by its title again."
    )


def late_window(client: str, list_name: str, due_monday: str) -> str:
    """A window the schedule found never uploaded although its Monday has passed."""
    return (
        f"⚠️ Late upload: {client}\nWindow: {list_name} was due on Monday {due_monday}; "
        "uploading it now"
    )


def gap_analysis(
    client: str,
    month: str,
    cleaned: int,
    target: int,
    gap: int,
    status: str,
    suggestions_summary: str = "",
    *,
    minimum: int | None = None,
    suggestion_zips: Sequence[str] = (),
    held_until_approved: str | None = None,
) -> str:
    """The gap report: status (met / under / below_minimum / over) against target and minimum to
    proceed, the suggestions' numbers, and the ZIP codes each suggestion would add."""
    from homeowner_dagster.leads.gap import VERDICTS

    verdict = VERDICTS.get(status, status)
    lines = [
        f"📊 Gap Analysis: {client}",
        f"Renewal month: {month}",
        f"Status: {status} ({verdict})",
        f"Cleaned: {_n(cleaned)} / target {_n(target)}"
        + (f", minimum to proceed {_n(minimum)}" if minimum is not None else ""),
        f"Gap: {gap:+,}" if gap else "Gap: 0",
    ]
    if suggestions_summary:
        lines.append(f"Suggestions: {suggestions_summary}")
    lines += list(suggestion_zips)
    if held_until_approved:
        lines.append(f"⏸️ Weekly uploads held: {held_until_approved}")
    return "\n".join(lines)


def upload_held(client: str, list_name: str, reason: str) -> str:
    """A weekly upload skipped because the month is below the minimum and not yet approved."""
    return f"⏸️ Upload held: {client}\nWindow: {list_name}\n{reason}"


def failure_alert(
    job: str,
    client: str | None,
    partition: str | None,
    error_type: str,
    run_url: str,
    screenshot_url: str | None = None,
    trace_url: str | None = None,
    message: str | None = None,
) -> str:
    lines = [f"🚨 {job} failed" + (f": {client}" if client else "")]
    if message:  # the sentence first (sanitised); for errors no retry can fix, it names the command that fixes them
        lines.append(first_line(message))
    lines.append(f"Error: {error_type}")
    if partition:
        lines.append(f"Partition: {partition}")
    lines.append(f"Run: <{run_url}|open in Dagster>")
    if screenshot_url:
        lines.append(f"Screenshot: <{screenshot_url}|open>")
    if trace_url:
        lines.append(f"Trace: <{trace_url}|open>")
    return "\n".join(lines)


def month_not_pulled(client: str, list_name: str, month: str, how_to_pull: str) -> str:
    """A window's Monday came and its renewal month was never pulled: nothing was uploaded."""
    return (
        f"⏸️ Upload skipped: {client}\nWindow: {list_name}\n"
        f"Renewal month {month} has not been pulled; nothing was uploaded.\nPull it: {how_to_pull}"
    )


def missed_window(client: str, list_name: str, state: str, how_to_force: str) -> str:
    """A window whose renewals have begun without its list reaching the Evergreen campaign."""
    return (
        f"⛔ Missed window: {client}\nWindow: {list_name} began without being done (state: {state}).\n"
        f"To upload it anyway: {how_to_force}"
    )


def unreadable_campaign_title(client: str, title: str, list_name: str) -> str:
    """The campaign's title names no window: the list is attached, the title left as it is."""
    return (
        f"⚠️ Evergreen title not understood: {client}\nCampaign title: {title}\n"
        f"{list_name} is attached; the title was not changed. Write it like "
        "'Evergreen, Last Upload: February 1-7' and the next Monday run finishes the window."
    )


def unknown_client_partitions(slugs: Sequence[str]) -> str:
    """Client partitions the registry does not know (a typo in the UI's "Add partition")."""
    return "\n".join(
        [
            f"⚠️ Client partition(s) not in the client registry: {', '.join(slugs)}",
            "Removed from the client selector; runs for them fail as unknown client.",
            "A real client? Add it with `homeowner clients import FILE`.",
        ]
    )


def preflight_test_message() -> str:
    """What `homeowner preflight --post` posts to each channel it checks."""
    return "🧪 homeowner preflight: test message, the bot can post here. Nothing to do."


def preflight_failures(lines: Sequence[tuple[str, str, str, str]]) -> str:
    """Weekly preflight: checks that failed since the last run (service, client, check, what to do)."""
    out = [f"🚨 Preflight: {len(lines)} check(s) failing"]
    out += [
        f"• {service} {client} {check}: {todo}".replace("  ", " ")
        for service, client, check, todo in lines
    ]
    out.append("Details: `homeowner preflight` (runbook: first day with real credentials)")
    return "\n".join(out)


def preflight_recovered(lines: Sequence[tuple[str, str, str]]) -> str:
    """Weekly preflight: checks that failed before and pass now (service, client, check)."""
    out = [f"✅ Preflight: {len(lines)} check(s) recovered"]
    out += [f"• {service} {client} {check}".replace("  ", " ") for service, client, check in lines]
    return "\n".join(out)
