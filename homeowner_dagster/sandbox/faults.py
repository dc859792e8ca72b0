"""Faults switched on per test or per demo run: one small, thread-safe registry, and the
answers every sandbox service gives when one fires (slow, 429 with Retry-After, 500, a dropped
connection).

Every sandbox service asks `faults.take(service, name)` at the point where the real service
would misbehave. A fault fires `times` times (None: until switched off), so a test can make the
first call fail and the retry succeed.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any

from starlette.responses import Response, StreamingResponse

# The faults each service knows. Tests and `homeowner sandbox` switch them by these names.
KNOWN_FAULTS: dict[str, tuple[str, ...]] = {
    "cole": (
        "wrong_password",  # every login is refused as if the password were wrong
        "session_expired",  # the session ends: the next page is the login page
        "mfa",  # a TOTP step after the password
        "captcha",  # an interstitial captcha page instead of the next page
        "slow_page",  # pages take `delay` seconds (default 3)
        "missing_selector",  # the search form's layout changed: a selector disappears
        "http_500",
        "http_429",  # with Retry-After: `retry_after` seconds (default 1)
        "dropped_download",  # the CSV download closes halfway through
    ),
    "debounce": ("http_429", "http_500", "slow_page", "dropped_download"),
    "bison": ("http_429", "http_500", "slow_page", "dropped_connection"),
    "clay": ("http_429", "http_500", "slow_page"),
    "slack": ("http_429", "http_500"),
    "storage": ("http_500",),
}

# Crash points: the service does the work, then holds its answer `delay` seconds (default 30),
# so a test can kill the caller at a known point (the object exists, the caller does not know).
# A held request whose caller was killed is abandoned (the sandbox notices the closed
# connection): nothing it would still do lands after the test.
# Kept apart from KNOWN_FAULTS, whose entries every service test replays as ordinary faults.
HOLD_FAULTS: dict[str, tuple[str, ...]] = {
    "bison": (
        "slow_before_create",  # POST /leads/bulk/csv: received, held before the list is created
        "slow_after_create",  # POST /leads/bulk/csv: the list is created, the answer waits
        "slow_after_attach",  # POST /campaigns/{id}/leads/attach-lead-list: attached, answer waits
        "slow_before_update",  # PATCH /campaigns/{id}/update: waits, then renames
        "slow_after_update",  # PATCH /campaigns/{id}/update: renamed, the answer waits
        # Not a hold: attach answers success but the campaign's leads do not grow (yet); Bison
        # documents that attached leads sync within about 5 minutes.
        "attach_not_counted",
    ),
}


# Faults that shape a long-running job rather than one request (documented or guessed vendor
# behaviour, see sandbox/README.md); tested where the job runs, not replayed on a single call.
JOB_FAULTS: dict[str, tuple[str, ...]] = {
    "debounce": (
        "bulk_failed",  # the next uploaded bulk list ends `failed` (guessed status value)
        "dropped_upload",  # the bulk upload is accepted and paid for, then its answer is lost
    ),
}


def known(service: str) -> tuple[str, ...]:
    """Every fault name a service understands (ordinary faults, crash points, job faults)."""
    return (
        KNOWN_FAULTS.get(service, ()) + HOLD_FAULTS.get(service, ()) + JOB_FAULTS.get(service, ())
    )


@dataclass
class _Fault:
    params: dict[str, Any]
    remaining: int | None


@dataclass
class Faults:
    """The switchboard. `on("bison", "http_429", times=1, retry_after=1)`."""

    _active: dict[tuple[str, str], _Fault] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    fired: list[tuple[str, str]] = field(default_factory=list)

    def on(self, service: str, name: str, times: int | None = None, **params: Any) -> None:
        if name not in known(service):
            raise ValueError(f"unknown fault {service}/{name}; known: {known(service)}")
        with self._lock:
            self._active[(service, name)] = _Fault(dict(params), times)

    def off(self, service: str | None = None, name: str | None = None) -> None:
        with self._lock:
            for key in list(self._active):
                if (service is None or key[0] == service) and (name is None or key[1] == name):
                    del self._active[key]

    def peek(self, service: str, name: str) -> dict[str, Any] | None:
        """The fault's parameters if it is on, without using it up."""
        with self._lock:
            fault = self._active.get((service, name))
            return dict(fault.params) if fault else None

    def take(self, service: str, name: str) -> dict[str, Any] | None:
        """The fault's parameters if it fires now (using one of its `times`), else None."""
        with self._lock:
            fault = self._active.get((service, name))
            if fault is None:
                return None
            if fault.remaining is not None:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    del self._active[(service, name)]
            self.fired.append((service, name))
            return dict(fault.params)

    def active(self) -> list[dict[str, Any]]:
        with self._lock:
            return [
                {"service": s, "name": n, "remaining": f.remaining, **f.params}
                for (s, n), f in self._active.items()
            ]


ErrorBody = Callable[[int, str], Response]


async def service_fault(faults: Faults, service: str, error: ErrorBody) -> Response | None:
    """Apply the service's slow/429/500 faults, in that order; a response means "answer this"."""
    slow = faults.take(service, "slow_page")
    if slow is not None:
        await asyncio.sleep(float(slow.get("delay", 3)))
    limited = faults.take(service, "http_429")
    if limited is not None:
        response = error(429, "Too Many Requests")
        response.headers["Retry-After"] = retry_after_header(limited)
        return response
    if faults.take(service, "http_500") is not None:
        return error(500, "Server Error")
    return None


def retry_after_header(params: dict[str, Any]) -> str:
    """A 429's Retry-After in the form the fault asks for: seconds (default), an HTTP date
    (`form="date"`, the other form RFC 9110 allows) or a literal value (`raw=`)."""
    if "raw" in params:
        return str(params["raw"])
    seconds = params.get("retry_after", 1)
    if params.get("form") == "date":
        return formatdate(time.time() + float(seconds), usegmt=True)
    return str(seconds)


def dropped_response(body: bytes, media_type: str) -> Response:
    """Announce the whole body, send half of it, then drop the connection."""

    async def halves() -> Any:
        yield body[: len(body) // 2]
        raise ConnectionAbortedError("sandbox dropped the connection on purpose")

    return StreamingResponse(
        halves(), media_type=media_type, headers={"content-length": str(len(body))}
    )
