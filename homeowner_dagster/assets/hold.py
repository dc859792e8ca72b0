"""The weekly upload's gate for `hold_below_minimum`: a clean skip until a person approves."""

from __future__ import annotations

from dagster import AssetCheckResult, AssetExecutionContext, MaterializeResult

from homeowner_dagster import registry, store
from homeowner_dagster.assets.monthly_pull import channel_for
from homeowner_dagster.leads.calendar import RenewalWindow
from homeowner_dagster.resources import slack as messages
from homeowner_dagster.resources.slack import HomeownerSlackResource


def upload_hold(
    context: AssetExecutionContext,
    dsn: str,
    client: registry.Client,
    window: RenewalWindow,
    slack: HomeownerSlackResource | None = None,
) -> MaterializeResult | None:
    """None to go ahead; else the step's result: nothing sent to Bison, a Slack notice naming
    `homeowner approve` (when `slack` is given), and checks that hold because nothing was sent."""
    reason = store.upload_held(dsn, client.slug, window.month)
    if reason is None:
        return None
    context.log.warning(reason)
    if slack is not None:
        slack.post(channel_for(client), messages.upload_held(client.name, window.list_name, reason))
    return MaterializeResult(
        metadata={"held": reason, "uploaded_now": 0},
        check_results=[
            AssetCheckResult(
                asset_key=key.asset_key,
                check_name=key.name,
                passed=True,
                metadata={"held": "nothing uploaded: the month waits for `homeowner approve`"},
            )
            for key in sorted(context.selected_asset_check_keys, key=str)
        ],
    )
