"""Sensors: the client registry keeps the `client` partitions in step with the `clients` table."""

from __future__ import annotations

from dagster import SensorEvaluationContext, SensorResult, SkipReason, sensor

from homeowner_dagster import db
from homeowner_dagster.partitions import client_partitions
from homeowner_dagster.resources.database import PostgresResource


def registry_partition_requests(existing: list[str], active: list[str], known: list[str]) -> tuple[list[str], list[str]]:
    """Partitions to add (active clients without one) and to delete (clients no longer in the table).

    Inactive clients keep their partitions so their history stays visible in the UI.
    """
    to_add = sorted(set(active) - set(existing))
    to_delete = sorted(set(existing) - set(known))
    return to_add, to_delete


@sensor(minimum_interval_seconds=60, description="Adds a `client` partition for each active client.")
def client_registry_sensor(context: SensorEvaluationContext, database: PostgresResource):
    with db.connect(database.dsn()) as conn:
        rows = conn.execute("select slug, active from clients").fetchall()
    known = [slug for slug, _ in rows]
    active = [slug for slug, is_active in rows if is_active]
    existing = list(context.instance.get_dynamic_partitions(client_partitions.name))
    to_add, to_delete = registry_partition_requests(existing, active, known)
    if not to_add and not to_delete:
        return SkipReason(f"{len(active)} active client(s), partitions up to date")
    requests = []
    if to_add:
        requests.append(client_partitions.build_add_request(to_add))
    if to_delete:
        requests.append(client_partitions.build_delete_request(to_delete))
    return SensorResult(dynamic_partitions_requests=requests)
