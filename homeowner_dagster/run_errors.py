"""What went wrong in a failed run, in the words an alert and the dashboard need."""

from __future__ import annotations

from dataclasses import dataclass

from dagster import Failure, MetadataValue, RunFailureSensorContext


@dataclass(frozen=True)
class RunErrorInfo:
    step: str | None
    error_type: str
    message: str
    screenshot_url: str | None = None
    trace_url: str | None = None


def failure_for(exc: Exception, step: str) -> Failure:
    """A Dagster Failure carrying the typed error and its screenshot/trace links as metadata."""
    metadata: dict[str, MetadataValue | str] = {"error_type": type(exc).__name__}
    for attr in ("screenshot_url", "trace_url"):
        value = getattr(exc, attr, None)
        if value:
            metadata[attr] = MetadataValue.url(value)
    return Failure(
        description=f"{step}: {type(exc).__name__}: {exc}",
        metadata=metadata,
        allow_retries=bool(getattr(exc, "transient", False)),
    )


def _text(value: object) -> str | None:
    if value is None:
        return None
    return str(getattr(value, "value", getattr(value, "url", value)))


_WRAPPERS = {"RetryRequestedFromPolicy", "DagsterExecutionStepExecutionError", "DagsterUserCodeExecutionError"}


def _root_error(error):  # noqa: ANN001, ANN202 - SerializableErrorInfo
    """Dagster wraps the user's exception (retries, step errors): name the user's own error."""
    while error is not None and error.cls_name in _WRAPPERS and error.cause is not None:
        error = error.cause
    return error


def failure_info(context: RunFailureSensorContext) -> RunErrorInfo:
    """The first failed step's error type, message and links (from Failure metadata)."""
    for event in context.get_step_failure_events():
        data = event.step_failure_data
        metadata = dict(data.user_failure_data.metadata) if data.user_failure_data else {}
        root = _root_error(data.error)
        error_type = _text(metadata.get("error_type")) or (root.cls_name if root else "Error")
        message = root.message.strip() if root else "step failed"
        return RunErrorInfo(
            step=event.step_key,
            error_type=str(error_type),
            message=message,
            screenshot_url=_text(metadata.get("screenshot_url")),
            trace_url=_text(metadata.get("trace_url")),
        )
    failure = context.failure_event
    return RunErrorInfo(None, "RunFailure", failure.message or "run failed")
