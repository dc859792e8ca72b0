"""Homeowner lead pipeline: Cole X Dates pulls to Email Bison evergreen campaigns, on Dagster."""

# Every log record of any process that imports the project is sanitised (no secret in a log).
from homeowner_dagster import sanitiser as _sanitiser  # noqa: F401
