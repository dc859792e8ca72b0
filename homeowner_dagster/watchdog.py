"""The alert for the day the alerting is down: checks made outside Dagster, posted to Slack directly.

The failure alert is a sensor in Dagster's daemon, on the same database as everything else: when
that database is unreachable, or the daemon has stopped, nothing is posted. `homeowner watchdog`
runs from cron or a Kubernetes CronJob every few minutes and looks for exactly that:

- the pipeline's database does not answer;
- a daemon's heartbeat is older than it should be (or there is none);
- a running schedule has not ticked since its last due time (plus a grace period).

It posts once when something goes wrong and once when it is right again. What it last posted is
kept in a small JSON file (never in the database, which may be the thing that is down).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from homeowner_dagster import db, settings
from homeowner_dagster.sanitiser import first_line

STATE_ENV = "HOMEOWNER_WATCHDOG_STATE"
HEARTBEAT_STALE = timedelta(minutes=5)  # the daemon writes one every 30 s or so
SCHEDULE_GRACE = timedelta(minutes=10)  # a tick may start late while the queue is busy


def state_file() -> Path:
    """HOMEOWNER_WATCHDOG_STATE, else `watchdog.json` in the homeowner folder."""
    return Path(os.environ.get(STATE_ENV) or settings.home_dir() / "watchdog.json")


@dataclass(frozen=True)
class Finding:
    """One thing wrong; `key` names it across runs (it is posted when it appears and when it goes)."""

    key: str
    text: str


def database_finding(url: str, timeout_seconds: int = 10) -> Finding | None:
    try:
        with db.connect(url, connect_timeout=timeout_seconds) as conn:
            conn.execute("select 1")
    except Exception as exc:  # noqa: BLE001 - any failure to answer is the finding
        reason = first_line(str(exc)) or type(exc).__name__
        return Finding("database", f"the pipeline's database is unreachable ({reason})")
    return None


def stale_heartbeats(
    heartbeats: Mapping[str, float],
    required: Sequence[str],
    now: datetime,
    stale: timedelta = HEARTBEAT_STALE,
) -> list[Finding]:
    """Daemons (by type) whose latest heartbeat (a Unix time) is older than `stale`, or missing."""
    found = []
    for daemon in required:
        beat = heartbeats.get(daemon)
        if beat is None:
            found.append(
                Finding(f"daemon:{daemon}", f"the Dagster daemon's {daemon} has no heartbeat")
            )
        elif now.timestamp() - beat > stale.total_seconds():
            minutes = (now.timestamp() - beat) / 60
            found.append(
                Finding(
                    f"daemon:{daemon}",
                    f"the Dagster daemon's {daemon} last beat {minutes:.0f} min ago",
                )
            )
    return found


@dataclass(frozen=True)
class ScheduleSeen:
    """A running schedule as the watchdog sees it: its cron, and when it started and last ticked."""

    name: str
    cron: str
    timezone: str | None
    started_at: float | None
    last_tick_at: float | None


def overdue_schedule(
    seen: ScheduleSeen, now: datetime, grace: timedelta = SCHEDULE_GRACE
) -> Finding | None:
    """The schedule's latest due time (at least `grace` ago) has passed without a tick."""
    from dagster._utils.schedules import get_latest_completed_cron_tick

    due = get_latest_completed_cron_tick(seen.cron, now - grace, seen.timezone)
    if seen.started_at is not None and seen.started_at > due.timestamp():
        return None  # started since: nothing was due yet
    if seen.last_tick_at is not None and seen.last_tick_at >= due.timestamp() - 60:
        return None
    last = (
        datetime.fromtimestamp(seen.last_tick_at, UTC).strftime("%Y-%m-%d %H:%M UTC")
        if seen.last_tick_at
        else "never"
    )
    return Finding(
        f"schedule:{seen.name}",
        f"schedule {seen.name} did not tick at {due.strftime('%Y-%m-%d %H:%M %Z')} (last tick: {last})",
    )


def dagster_findings(now: datetime) -> list[Finding]:
    """Heartbeats and schedules, read from the Dagster instance (DAGSTER_HOME)."""
    from dagster import DagsterInstance
    from dagster._core.scheduler.instigation import InstigatorStatus, InstigatorType

    from homeowner_dagster.definitions import defs

    try:
        instance = DagsterInstance.get()
    except Exception as exc:  # noqa: BLE001 - an unreadable instance is the finding
        return [
            Finding(
                "dagster",
                f"Dagster's instance cannot be opened ({first_line(str(exc)) or type(exc).__name__})",
            )
        ]
    try:
        beats = {k: v.timestamp for k, v in instance.get_daemon_heartbeats().items()}
        found = stale_heartbeats(beats, instance.get_required_daemon_types(), now)
        schedules = {s.name: s for s in defs.schedules or []}  # type: ignore[union-attr]
        for state in instance.all_instigator_state(
            instigator_type=InstigatorType.SCHEDULE, instigator_statuses={InstigatorStatus.RUNNING}
        ):
            schedule = schedules.get(state.instigator_name)
            if schedule is None:
                continue
            ticks = instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=1)
            started = getattr(state.instigator_data, "start_timestamp", None)
            seen = ScheduleSeen(
                schedule.name, str(schedule.cron_schedule), schedule.execution_timezone,
                started, ticks[0].timestamp if ticks else None,
            )  # fmt: skip
            finding = overdue_schedule(seen, now)
            if finding:
                found.append(finding)
        return found
    finally:
        instance.dispose()


def check(url: str, now: datetime | None = None) -> list[Finding]:
    """Everything wrong now. With the database down nothing else is asked (it would hang on it)."""
    now = now or datetime.now(UTC)
    down = database_finding(url)
    return [down] if down else dagster_findings(now)


def messages(
    previous: Mapping[str, str], findings: Sequence[Finding]
) -> tuple[str | None, str | None]:
    """(what went wrong since the last run, what is right again), each None when nothing."""
    current = {f.key: f.text for f in findings}
    new = [text for key, text in current.items() if key not in previous]
    back = [text for key, text in previous.items() if key not in current]
    down = (
        "🚨 Watchdog: " + "\n".join(new) + "\nRuns, sensors and the failure alert may be stopped."
        if new
        else None
    )
    up = "✅ Watchdog: right again:\n" + "\n".join(f"• {t}" for t in back) if back else None
    return down, up


def read_state(path: Path) -> dict[str, str]:
    try:
        return dict(json.loads(path.read_text()))
    except (FileNotFoundError, ValueError):
        return {}


def write_state(path: Path, findings: Sequence[Finding]) -> None:
    """Replace the file whole (a crash leaves the old one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_suffix(f".{os.getpid()}.{time.monotonic_ns()}.tmp")
    temp.write_text(json.dumps({f.key: f.text for f in findings}, ensure_ascii=False))
    temp.replace(path)
