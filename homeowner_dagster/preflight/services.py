"""The connectors preflight probes, taken from the same resources the pipeline runs with.

In a Dagster run the resources arrive with their `EnvVar` fields already read. The command line
builds them with `resources.from_environment.build_resources()`, where those fields still hold the variables'
names: `resolved` reads them from the environment instead, and an unset one becomes None, so a
missing secret is a finding (named by its variable), never a crash and never a name sent as a
password.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from dagster import ConfigurableResource, EnvVar

from homeowner_dagster.resources.artifacts import ArtifactStoreResource
from homeowner_dagster.resources.bison import BisonResource
from homeowner_dagster.resources.clay import ClayResource
from homeowner_dagster.resources.cole import ColeResource
from homeowner_dagster.resources.email_verification import EmailVerificationResource
from homeowner_dagster.resources.slack import HomeownerSlackResource

R = TypeVar("R", bound=ConfigurableResource)


def resolved(resource: R) -> R:
    """The resource with each `EnvVar` field (nested resources too) replaced by its value, or None."""
    update: dict[str, Any] = {}
    for name in type(resource).model_fields:
        value = getattr(resource, name)
        if isinstance(value, EnvVar):
            update[name] = os.environ.get(value.env_var_name) or None
        elif isinstance(value, ConfigurableResource):
            update[name] = resolved(value)
    return resource.model_copy(update=update) if update else resource


@dataclass
class Services:
    """What preflight needs: each connector as configured, secrets read from the environment."""

    cole: ColeResource
    bison: BisonResource
    verification: EmailVerificationResource
    clay: ClayResource | None
    slack: HomeownerSlackResource
    artifacts: ArtifactStoreResource

    @classmethod
    def from_resources(
        cls, resources: Mapping[str, Any], clay: ClayResource | None = None
    ) -> Services:
        """From the Definitions' resources (`build_resources()`, or a run's resolved ones).

        Clay is probed when it is configured (`CLAY_WEBHOOK_URL`), whichever verification
        backend is in use: `clay` is the resource to probe when the verification one has none.
        """
        verification = resolved(resources["email_verification"])
        cole = resolved(resources["cole"])
        return cls(
            cole=cole,
            bison=resources["bison"],
            verification=verification,
            clay=verification.clay or (resolved(clay) if clay is not None else None),
            slack=resolved(resources["slack"]),
            artifacts=cole.artifacts,
        )
