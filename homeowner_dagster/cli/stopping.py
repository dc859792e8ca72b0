"""Stopping what a long-running command started, on Ctrl-C and on SIGTERM, within 10 seconds.

Never rely on inherited signal dispositions: a shell that starts a job in the background, CI
without a terminal, or a service manager can hand us SIGINT and SIGTERM *ignored*, and Python
keeps an inherited ignore (no KeyboardInterrupt, no default exit on SIGTERM); children inherit it
too, and then ignore every signal sent to them. So a command that runs until stopped installs its
own handlers, starts its children with the default dispositions back, in their own process
group, and ends that whole group itself.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Sequence

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# Budget for a child group to stop by itself before it is told harder (SIGTERM, then SIGKILL).
GRACE_SECONDS = 5.0
TERM_SECONDS = 1.0
# Dagster's own shutdown message on a `--shutdown-pipe` (dagster_shared.ipc).
DAGSTER_SHUTDOWN_MESSAGE = b"SHUTDOWN\n"


def install_stop_handlers() -> threading.Event:
    """SIGINT and SIGTERM set the returned event, whatever dispositions this process inherited."""
    stop = threading.Event()

    def handler(signum: int, frame: object) -> None:
        stop.set()

    for sig in STOP_SIGNALS:
        signal.signal(sig, handler)
    return stop


def default_stop_signals() -> None:
    """`preexec_fn` for children: SIGINT/SIGTERM back to the default (Python then installs its
    KeyboardInterrupt handler, and Dagster's own shutdown, which interrupts itself, works)."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_DFL)


def start_group(cmd: Sequence[str], **kwargs: object) -> subprocess.Popen:
    """Start `cmd` as the leader of a new process group with default stop signals."""
    return subprocess.Popen(
        list(cmd),
        start_new_session=True,
        preexec_fn=default_stop_signals,
        **kwargs,  # noqa: PLW1509
    )


def _signal_group(pgid: int, sig: int) -> bool:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def group_members(pgid: int) -> list[int]:
    """Live processes of the group (zombies left to an init that does not reap are not alive)."""
    import psutil

    members = []
    for proc in psutil.process_iter(["status"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                members.append(proc.pid)
        except (ProcessLookupError, psutil.Error):
            continue
    return members


def group_alive(pgid: int) -> bool:
    return bool(group_members(pgid))


def stop_group(
    process: subprocess.Popen,
    shutdown_pipe: int | None = None,
    grace: float = GRACE_SECONDS,
    say: callable = print,  # type: ignore[valid-type]
) -> None:
    """Ask the group's leader to shut down (pipe message or SIGINT), then SIGTERM, then SIGKILL
    every process left in the group (code servers and run workers included)."""
    pgid = process.pid
    if process.poll() is None:
        if shutdown_pipe is not None:
            try:
                os.write(shutdown_pipe, DAGSTER_SHUTDOWN_MESSAGE)
            except OSError:
                process.send_signal(signal.SIGINT)
        else:
            process.send_signal(signal.SIGINT)
    _wait_group(process, pgid, grace)
    if group_alive(pgid):
        say(f"{len(group_members(pgid))} process(es) did not stop in time: sending SIGTERM")
        _signal_group(pgid, signal.SIGTERM)
        _wait_group(process, pgid, TERM_SECONDS)
    if group_alive(pgid):
        say("sending SIGKILL to what is left")
        _signal_group(pgid, signal.SIGKILL)
        _wait_group(process, pgid, TERM_SECONDS)
    if process.poll() is None:
        process.wait(timeout=TERM_SECONDS)


def _wait_group(process: subprocess.Popen, pgid: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        process.poll()  # reap the leader, so it does not count as alive
        if not group_alive(pgid):
            return
        time.sleep(0.1)
