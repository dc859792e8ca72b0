"""Connectors to the outside world as Dagster resources; they own all I/O."""
