"""Slack: the bot token works (`auth.test`) and the bot can post to each client's channel and
the ops channel.

A client's channel the deployment does not list (HOMEOWNER_SLACK_CHANNELS, `registry`) is a
failed line and is neither looked up nor posted to, as the pipeline refuses it. Without `--post` nothing is posted: channels named by `#name` are looked up in
`conversations.list` (public and private, archived included), ids with `conversations.info`,
and the bot must be a member (`is_member`) of a channel that is not archived. With `--post` a
test message goes to each channel instead (the only write preflight ever makes, and only then).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from slack_sdk.errors import SlackApiError

from homeowner_dagster import registry
from homeowner_dagster.preflight.findings import Finding, failed, ok, skipped
from homeowner_dagster.resources import slack as messages
from homeowner_dagster.resources.slack import HomeownerSlackResource

SERVICE = "slack"
REFUSED_TOKEN = {"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired"}


def channels_to_check(clients: Sequence[registry.Client], ops: str) -> dict[str, list[str]]:
    """Channel -> who posts there (client slugs, `ops`), in first-seen order."""
    found: dict[str, list[str]] = {}
    for c in clients:
        found.setdefault(c.slack_channel or ops, []).append(c.slug)
    found.setdefault(ops, []).append("ops")
    return found


def _is_id(ref: str) -> bool:
    return not ref.startswith("#") and ref[:1] in ("C", "G") and ref.isalnum() and ref.isupper()


def _error(exc: SlackApiError) -> str:
    return str(exc.response.get("error") or "error")


class _Directory:
    """Channels by name (one `conversations.list` walk, on first need) or by id."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.by_name: dict[str, dict[str, Any]] | None = None

    def find(self, ref: str) -> dict[str, Any] | None:
        if _is_id(ref):
            try:
                return self.client.conversations_info(channel=ref)["channel"]
            except SlackApiError as exc:
                if _error(exc) == "channel_not_found":
                    return None
                raise
        if self.by_name is None:
            self.by_name = {}
            cursor = None
            while True:
                page = self.client.conversations_list(
                    types="public_channel,private_channel", limit=200, cursor=cursor
                )
                self.by_name.update({c["name"]: c for c in page.get("channels") or []})
                cursor = (page.get("response_metadata") or {}).get("next_cursor")
                if not cursor:
                    break
        return self.by_name.get(ref.lstrip("#"))


def probe_slack(
    slack: HomeownerSlackResource, clients: Sequence[registry.Client], ops: str, post: bool
) -> list[Finding]:
    if not slack.token:
        return [
            failed(
                SERVICE,
                "",
                "auth.test",
                "set SLACK_BOT_TOKEN (the app's Bot User OAuth Token, xoxb-)",
            )
        ]
    client = slack.get_client()
    try:
        who = client.auth_test()
    except SlackApiError as exc:
        error = _error(exc)
        todo = (
            "Slack refused SLACK_BOT_TOKEN: reinstall the app or set its current bot token"
            if error in REFUSED_TOKEN
            else "Slack refused auth.test"
        )
        return [failed(SERVICE, "", "auth.test", todo, error)] + [
            skipped(
                SERVICE,
                ", ".join(users),
                f"channel {channel}",
                "not checked: auth.test did not pass",
            )
            for channel, users in channels_to_check(clients, ops).items()
        ]
    except Exception as exc:  # noqa: BLE001 - unreachable Slack: one line
        return [failed(SERVICE, "", "auth.test", "Slack did not answer: check SLACK_API_URL, try again later",
                       type(exc).__name__)]  # fmt: skip
    bot = str(who.get("user") or "the bot")
    out = [ok(SERVICE, "", "auth.test", f"bot {bot} in workspace {who.get('team')!r}")]
    directory = _Directory(client)
    for channel, users in channels_to_check(clients, ops).items():
        out.append(_channel_finding(client, directory, channel, ", ".join(users), bot, post))
    return out


def _channel_finding(
    client: Any, directory: _Directory, channel: str, users: str, bot: str, post: bool
) -> Finding:
    check = f"channel {channel}"
    refused = registry.slack_channel_problem(
        channel
    )  # the pipeline's rule: it would not post there
    if refused:
        return failed(SERVICE, users, check, f"{refused}, or correct the client file; not looked up, nothing posted",
                      depends="registry.py slack_channel_problem")  # fmt: skip
    invite = f"invite the bot: `/invite @{bot}` in {channel}"
    if post:
        try:
            client.chat_postMessage(
                channel=channel, text=messages.preflight_test_message(), unfurl_links=False
            )
        except SlackApiError as exc:
            error = _error(exc)
            todo = {
                "not_in_channel": invite,
                "channel_not_found": f"create {channel} (or correct the client file), then {invite}",
                "is_archived": f"{channel} is archived: unarchive it or name another channel in the client file",
            }.get(error, "Slack refused the test message")
            return failed(SERVICE, users, check, todo, error)
        return ok(SERVICE, users, check, "test message posted")
    try:
        found = directory.find(channel)
    except SlackApiError as exc:
        error = _error(exc)
        if error == "missing_scope":
            return failed(SERVICE, users, check, "the bot may not list channels: add the scopes channels:read "
                          "and groups:read and reinstall, or run `homeowner preflight --post`", error)  # fmt: skip
        return failed(SERVICE, users, check, "Slack refused the channel look-up", error)
    if found is None:
        return failed(SERVICE, users, check, f"no such channel the bot can see: create {channel} (or correct the "
                      f"client file); a private channel shows only once the bot is in it: {invite}")  # fmt: skip
    if found.get("is_archived"):
        return failed(
            SERVICE, users, check, f"{channel} is archived: unarchive it or name another channel"
        )
    if not found.get("is_member"):
        return failed(
            SERVICE,
            users,
            check,
            invite,
            "the bot is not a member (its posts would fail: not_in_channel)",
        )
    return ok(SERVICE, users, check, "the bot is a member (nothing posted)")
