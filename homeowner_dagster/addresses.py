"""Where a secret may travel: every service address comes from the deployment's environment.

No resource takes an address from run config (the launchpad's schema has no such field): each
reads its address here when it is about to send something, and the address is checked first:
`https://`, no user or password in it, and a host the vendor documents (Slack, DeBounce, Clay,
`*.supabase.co`). An address the vendor does not document (Cole X Dates' app) has no default: it
is a required setting, and `homeowner check` names it while it is missing.

The sandbox's loopback servers are the one exception: an `http://` origin on a loopback address
with its exact port, listed in HOMEOWNER_SANDBOX_ORIGINS (set by `Sandbox.env()` for tests, the
demo and `homeowner dev --sandbox`). Set in production by mistake it still opens no route off the
machine; `homeowner check` reports it as set.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from dagster import Failure

SANDBOX_ORIGINS_ENV = "HOMEOWNER_SANDBOX_ORIGINS"
EMAIL_BACKEND_ENV = "HOMEOWNER_EMAIL_BACKEND"
ARTIFACTS_BACKEND_ENV = "HOMEOWNER_ARTIFACTS_BACKEND"


@dataclass(frozen=True)
class ServiceAddress:
    """One address a secret is sent to. `hosts`: exact hosts, or `.suffix` for any subdomain;
    empty when only the deployment knows the host (https still required)."""

    variable: str
    service: str
    default: str | None
    hosts: tuple[str, ...] = ()


COLE_URL = "COLE_URL"
SLACK_API_URL = "SLACK_API_URL"
DEBOUNCE_API_URL = "DEBOUNCE_API_URL"
DEBOUNCE_BULK_URL = "DEBOUNCE_BULK_URL"
CLAY_API_URL = "CLAY_API_URL"
CLAY_WEBHOOK_URL = "CLAY_WEBHOOK_URL"
SUPABASE_URL = "SUPABASE_URL"

ADDRESSES: dict[str, ServiceAddress] = {
    a.variable: a
    for a in (
        # Cole documents no address for the X Dates app: no default, never a guess.
        ServiceAddress(COLE_URL, "Cole X Dates", None),
        ServiceAddress(SLACK_API_URL, "Slack Web API", "https://slack.com/api/", ("slack.com",)),
        ServiceAddress(
            DEBOUNCE_API_URL, "DeBounce", "https://api.debounce.io", ("api.debounce.io",)
        ),
        ServiceAddress(
            DEBOUNCE_BULK_URL, "DeBounce bulk", "https://bulk.debounce.io", ("bulk.debounce.io",)
        ),
        ServiceAddress(CLAY_API_URL, "Clay API", "https://api.clay.com", ("api.clay.com",)),
        # The webhook's path is its secret: copied from the Clay table, never defaulted.
        ServiceAddress(CLAY_WEBHOOK_URL, "Clay webhook", None, ("api.clay.com",)),
        ServiceAddress(SUPABASE_URL, "Supabase", None, (".supabase.co",)),
    )
}
_NUMBERED = re.compile(r"^(?P<base>[A-Z_]+?)_(?P<n>[2-9]|[1-9][0-9]+)$")


class AddressRefused(Failure):
    """A service address is missing or may not receive a secret; nothing was sent. A Dagster
    Failure without retries wherever it is raised: no retry can fix a setting."""

    transient = False

    def __init__(self, problem: str) -> None:
        super().__init__(
            description=problem, metadata={"error_type": "AddressRefused"}, allow_retries=False
        )


def _spec(variable: str) -> ServiceAddress:
    """The address a variable names (`CLAY_WEBHOOK_URL_2` is a Clay webhook too)."""
    if variable in ADDRESSES:
        return ADDRESSES[variable]
    numbered = _NUMBERED.match(variable)
    if numbered and numbered.group("base") in ADDRESSES:
        base = ADDRESSES[numbered.group("base")]
        return ServiceAddress(variable, base.service, None, base.hosts)
    raise KeyError(f"{variable} is not a service address")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def sandbox_origins(environ: Mapping[str, str] | None = None) -> set[str]:
    """The sandbox's own loopback origins (http://host:port), when the sandbox set them."""
    env = os.environ if environ is None else environ
    origins = set()
    for item in (env.get(SANDBOX_ORIGINS_ENV) or "").split(","):
        try:
            parts = urlsplit(item.strip())
            port = parts.port
        except ValueError:
            continue
        if parts.scheme == "http" and port and is_loopback(parts.hostname or ""):
            origins.add(f"http://{parts.hostname}:{port}")
    return origins


def is_sandbox_origin(url: str, environ: Mapping[str, str] | None = None) -> bool:
    """`url` is on one of the sandbox's loopback servers (exact origin, http only)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    host = (parts.hostname or "").lower()
    return (
        parts.scheme == "http"
        and bool(port)
        and f"http://{host}:{port}" in sandbox_origins(environ)
    )


def _host_allowed(host: str, hosts: tuple[str, ...]) -> bool:
    """`.supabase.co` allows any subdomain of it (not the bare domain); other entries are exact."""
    if not hosts:
        return True
    return any(host.endswith(h) if h.startswith(".") else host == h for h in hosts)


def address_problem(
    variable: str, url: str | None, environ: Mapping[str, str] | None = None
) -> str | None:
    """Why `url` may not receive `variable`'s secret, or None when it may. One line, and never
    the path or query (a webhook's path is its secret)."""
    spec = _spec(variable)
    if not url:
        return (
            f"{variable} is not set: the {spec.service} address has no default"
            + (" (the vendor documents none)" if not spec.hosts else "")
            + "; set it in the deployment's environment"
        )
    if is_sandbox_origin(url, environ):
        return None
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        return f"{variable} is not a URL"
    host = (parts.hostname or "").lower()
    shown = f"{parts.scheme or '?'}://{host or '?'}"
    if parts.scheme != "https" or not host:
        return f"{variable} ({shown}) must be an https:// address"
    if parts.username or parts.password:
        return f"{variable} ({shown}) must not carry a user or password"
    if not _host_allowed(host, spec.hosts):
        return (
            f"{variable} host {host!r} is not a {spec.service} host "
            f"({', '.join('*' + h if h.startswith('.') else h for h in spec.hosts)})"
        )
    return None


def service_address(variable: str, environ: Mapping[str, str] | None = None) -> str:
    """The checked address for `variable` (its environment value, else the documented default);
    raises AddressRefused, one line naming the fix, before anything is sent."""
    env = os.environ if environ is None else environ
    url = (env.get(variable) or "").strip() or _spec(variable).default
    problem = address_problem(variable, url, env)
    if problem:
        raise AddressRefused(f"{problem}, then run `homeowner check`")
    return url  # type: ignore[return-value]


def email_backend(environ: Mapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    return (env.get(EMAIL_BACKEND_ENV) or "debounce").strip().lower()


def artifacts_backend(environ: Mapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    return (env.get(ARTIFACTS_BACKEND_ENV) or "local").strip().lower()


def clay_webhook_variables(environ: Mapping[str, str] | None = None) -> list[str]:
    """CLAY_WEBHOOK_URL, then CLAY_WEBHOOK_URL_2, _3, ... while they are set (used in order)."""
    env = os.environ if environ is None else environ
    found = [CLAY_WEBHOOK_URL]
    number = 2
    while env.get(f"{CLAY_WEBHOOK_URL}_{number}"):
        found.append(f"{CLAY_WEBHOOK_URL}_{number}")
        number += 1
    return found


def needed_addresses(environ: Mapping[str, str] | None = None) -> list[str]:
    """The address variables this deployment sends secrets to (by its backends)."""
    env = os.environ if environ is None else environ
    names = [COLE_URL, SLACK_API_URL]
    if email_backend(env) == "clay":
        names += [CLAY_API_URL, *clay_webhook_variables(env)]
    else:
        names += [DEBOUNCE_API_URL, DEBOUNCE_BULK_URL]
    if artifacts_backend(env) == "supabase" or env.get(SUPABASE_URL):
        names.append(SUPABASE_URL)
    return names


@dataclass(frozen=True)
class AddressCheck:
    """One needed address: `problem` is None when it is set and allowed."""

    variable: str
    service: str
    problem: str | None

    @property
    def ok(self) -> bool:
        return self.problem is None


def check_addresses(environ: Mapping[str, str] | None = None) -> list[AddressCheck]:
    """Every address the deployment needs, checked (for `homeowner check` and preflight)."""
    env = os.environ if environ is None else environ
    checks = []
    for variable in needed_addresses(env):
        spec = _spec(variable)
        url = (env.get(variable) or "").strip() or spec.default
        checks.append(AddressCheck(variable, spec.service, address_problem(variable, url, env)))
    return checks
