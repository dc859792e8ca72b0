"""The one Definitions object: assets, checks, jobs, schedules, sensors and resources."""

from __future__ import annotations

from dagster import Definitions

from homeowner_dagster.resources.database import PostgresResource
from homeowner_dagster.sensors import client_registry_sensor


def build_resources() -> dict[str, object]:
    return {"database": PostgresResource()}


defs = Definitions(
    sensors=[client_registry_sensor],
    resources=build_resources(),
)
