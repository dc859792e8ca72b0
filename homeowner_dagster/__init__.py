"""Homeowner lead pipeline: Cole X Dates pulls to Email Bison evergreen campaigns, on Dagster."""
