"""What went wrong in a failed run, in the words an alert and the dashboard need.

Two kinds of failure: transient ones (a slow site, a 429) that the step's RetryPolicy retries,
and the ones no retry can fix (no ZIPs for the month, unknown client, missing licence, missing
credentials, an unreadable file). Those fail at once, `allow_retries=False`, with one line that
names the fix; that line is the step's failure in the UI and the Slack alert.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from dagster import Failure, MetadataValue, RunFailureSensorContext

from homeowner_dagster import registry
from homeowner_dagster.assets import metadata as md
from homeowner_dagster.sanitiser import sanitise, scrub_exception

CHECK_FIX = "run `homeowner check`"


@functools.cache
def failure_type(error_type: str) -> type[Failure]:
    """A `dagster.Failure` named for the error, so the run page's first line is the sentence.

    Dagster shows a step's error as Python prints an exception: `module.Class: message`, here
    `dagster._core.definitions.events.Failure: ...`. Python leaves the module out for its own
    exceptions (`ValueError: ...`), so this class says it is one: the line reads
    `NoZipsForMonth: sunshine has no ZIPs ... Fix: ...`, with Dagster's stack trace below it.
    """
    return type(
        error_type,
        (Failure,),
        {
            "__module__": "builtins",
            "__doc__": f"{error_type}: a failure the project raises on purpose.",
        },
    )


def needs_fix(problem: str, fix: str, error_type: str = "NeedsFix") -> Failure:
    """A failure no retry can fix: one line, the problem then the command that fixes it."""
    return failure_type(error_type)(
        description=f"{problem}. Fix: {fix}",
        metadata={"error_type": error_type, "fix": fix},
        allow_retries=False,
    )


def stated(message: str, error_type: str) -> Failure:
    """A failure whose message already ends in its fix (a command to run): no retry."""
    return failure_type(error_type)(
        description=message, metadata={"error_type": error_type}, allow_retries=False
    )


def as_stated(exc: Exception) -> Failure:
    """An error whose own message names its fix (a full Clay table, say): as it is, no retry."""
    return failure_type(type(exc).__name__)(
        description=str(exc), metadata={"error_type": type(exc).__name__}, allow_retries=False
    )


def no_zips(slug: str, month: str) -> Failure:
    return needs_fix(
        f"{slug} has no ZIPs assigned for {month}",
        f"`homeowner zips import FILE --month {month}` (FILE: the team's Zipcode,Territory sheet), "
        "then re-run this partition",
        "NoZipsForMonth",
    )


def unlicensed(slug: str, states: list[str]) -> Failure:
    return needs_fix(
        f"{slug} has ZIPs in {', '.join(states)}, where it holds no licence",
        "add the state to its licensed_states with `homeowner clients import FILE`, or move the "
        "ZIPs with `homeowner zips move --from SLUG --to SLUG --month YYYY-MM ZIP...`",
        "MissingLicence",
    )


def unknown_client(slug: str) -> Failure:
    return needs_fix(
        f"unknown client {slug!r}: not in the client registry (a partition added by hand?)",
        "add it with `homeowner clients import FILE`, or delete the partition in the UI",
        "UnknownClient",
    )


def client_for_run(slug: str, dsn: str) -> registry.Client:
    """The registry's client of this partition, or a failure that no retry can fix (unknown, or
    its Slack channel no longer in the deployment's list)."""
    try:
        client = registry.get_client(slug, dsn)
    except LookupError:
        raise unknown_client(slug) from None
    registry.ensure_slack_channel_allowed(client)
    return client


@dataclass(frozen=True)
class RunErrorInfo:
    step: str | None
    error_type: str
    message: str
    screenshot_url: str | None = None
    trace_url: str | None = None


def failure_for(exc: Exception, step: str) -> Failure:
    """A Dagster Failure carrying the typed error and its screenshot/trace links as metadata.

    An error a retry cannot fix (a refused password, missing credentials, a captcha) also names
    the check to run once a person has fixed it.
    """
    transient = bool(getattr(exc, "transient", False))
    scrub_exception(exc)  # Dagster records the cause's message too (`raise ... from exc`)
    metadata: dict[str, MetadataValue | str] = {"error_type": type(exc).__name__}
    for attr in ("screenshot_url", "trace_url"):
        value = getattr(exc, attr, None)
        if value:
            metadata[attr] = md.link(value)
    fix = "" if transient or "homeowner check" in str(exc) else f". Fix it, then {CHECK_FIX}"
    if fix:
        metadata["fix"] = CHECK_FIX
    return failure_type(type(exc).__name__)(
        description=sanitise(f"{step}: {exc}{fix}"),
        metadata=metadata,
        allow_retries=transient,
    )


def _text(value: object) -> str | None:
    if value is None:
        return None
    return str(getattr(value, "value", getattr(value, "url", value)))


_WRAPPERS = {
    "RetryRequestedFromPolicy",
    "DagsterExecutionStepExecutionError",
    "DagsterUserCodeExecutionError",
}


def _root_error(error):  # noqa: ANN001, ANN202 - SerializableErrorInfo
    """Dagster wraps the user's exception (retries, step errors): name the user's own error."""
    while error is not None and error.cls_name in _WRAPPERS and error.cause is not None:
        error = error.cause
    return error


def _without_module(error) -> str:  # noqa: ANN001 - SerializableErrorInfo
    """`psycopg.errors.UndefinedTable: ...` as `UndefinedTable: ...`: the error's own words first."""
    head, sep, rest = error.message.partition(": ")
    if sep and head.endswith(f".{error.cls_name}"):
        return f"{error.cls_name}: {rest}"
    return error.message


def failure_info(context: RunFailureSensorContext) -> RunErrorInfo:
    """The first failed step's error type, message and links (from Failure metadata)."""
    for event in context.get_step_failure_events():
        data = event.step_failure_data
        metadata = dict(data.user_failure_data.metadata) if data.user_failure_data else {}
        root = _root_error(data.error)
        error_type = _text(metadata.get("error_type")) or (root.cls_name if root else "Error")
        described = data.user_failure_data.description if data.user_failure_data else None
        message = (described or (_without_module(root) if root else "") or "step failed").strip()
        return RunErrorInfo(
            step=event.step_key,
            error_type=str(error_type),
            message=sanitise(message),
            screenshot_url=_text(metadata.get("screenshot_url")),
            trace_url=_text(metadata.get("trace_url")),
        )
    return run_failure_info(context)


def run_failure_info(context: RunFailureSensorContext) -> RunErrorInfo:
    """The run failure event's own message, sanitised (when no step failure says more)."""
    return RunErrorInfo(None, "RunFailure", sanitise(context.failure_event.message or "run failed"))
