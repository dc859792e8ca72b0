"""Campaigns (`client_campaigns`, `bison_custom_variables`): each client's Evergreen campaign."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from homeowner_dagster import db
from homeowner_dagster.store.rows import now


def stored_campaign(dsn: str, client: str) -> dict[str, Any] | None:
    """The Evergreen campaign found for this client before: pattern, campaign_id, campaign_name."""
    with db.connect(dsn) as conn:
        frame = db.read_frame(
            conn,
            "select pattern, campaign_id, campaign_name from client_campaigns where client_slug = %s",
            [client],
        )
    return frame.iloc[0].to_dict() if not frame.empty else None


def forget_campaign(dsn: str, client: str) -> None:
    """The stored campaign was renamed away, archived or deleted: look for the pattern again."""
    with db.transaction(dsn) as conn:
        conn.execute("delete from client_campaigns where client_slug = %s", [client])


def campaign_user(dsn: str, campaign_id: str, client: Any) -> str | None:
    """Another active client of the same Bison workspace whose Evergreen campaign this is."""
    with db.connect(dsn) as conn:
        row = conn.execute(
            "select k.client_slug from client_campaigns k join clients c on c.slug = k.client_slug "
            "where k.campaign_id = %s and k.client_slug <> %s and c.active and c.workspace_name = %s "
            "and coalesce(c.bison_instance_url, '') = coalesce(%s, '')",
            [campaign_id, client.slug, client.workspace_name, client.bison_instance_url],
        ).fetchone()
    return None if row is None else str(row[0])


def shares_workspace(dsn: str, client: Any) -> bool:
    """Does another active client upload to the same Bison workspace (a high-net-worth client
    beside an ordinary one)? Their lists then carry the client's name, so names never collide."""
    with db.connect(dsn) as conn:
        return bool(
            conn.execute(
                "select exists (select 1 from clients where active and slug <> %s and workspace_name = %s "
                "and coalesce(bison_instance_url, '') = coalesce(%s, ''))",
                [client.slug, client.workspace_name, client.bison_instance_url],
            ).fetchone()[0]
        )


def store_campaign(dsn: str, client: str, pattern: str, campaign_id: str, name: str) -> None:
    with db.transaction(dsn) as conn:
        db.upsert(
            conn,
            "client_campaigns",
            {
                "client_slug": client,
                "pattern": pattern,
                "campaign_id": campaign_id,
                "campaign_name": name,
                "found_at": now(),
            },
            key="client_slug",
        )


def bison_variables(dsn: str, workspace: str) -> set[str]:
    """Custom variables seen to exist in this Bison workspace."""
    with db.connect(dsn) as conn:
        rows = conn.execute(
            "select name from bison_custom_variables where workspace_name = %s", [workspace]
        ).fetchall()
    return {r[0] for r in rows}


def confirm_bison_variables(dsn: str, workspace: str, names: Iterable[str]) -> None:
    with db.transaction(dsn) as conn, conn.cursor() as cur:
        for name in sorted(set(names)):
            cur.execute(
                "insert into bison_custom_variables (workspace_name, name) values (%s, %s) "
                "on conflict (workspace_name, name) do update set confirmed_at = now()",
                [workspace, name],
            )
