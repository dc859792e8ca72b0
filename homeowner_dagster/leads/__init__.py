"""Business rules as plain functions on DataFrames: no Dagster, no database, no network."""
