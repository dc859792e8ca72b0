"""One Cole X Dates session per login, however the run started (schedule, UI, backfill, CLI, demo).

Cole logs out a second session on the same login, and a run launched from the UI or a backfill
carries no run tags, so the limit cannot live in `dagster.yaml` alone. It lives where the browser
session opens: a PostgreSQL session-level advisory lock per login, held on its own connection for
as long as the browser session lasts. A run that finds the login busy waits (and says so in its
log); a run process that dies releases the lock with its connection.

Without a database URL (the resource used on its own, e.g. in a notebook) a file lock in the
temporary folder gives the same guarantee between processes of one machine.

Session-level advisory locks need a direct connection (or a session-mode pooler): a
transaction-mode pooler would hand the lock to another client.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from homeowner_dagster import db

POLL_SECONDS = 0.5
# Say again that the run is still waiting, so a long wait shows in the run's log.
REMIND_SECONDS = 60.0


def lock_key(login: str) -> int:
    """A signed 64-bit advisory lock key for a Cole login (stable across processes and hosts)."""
    digest = hashlib.blake2b(f"cole-login:{login}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class LoginBusy(RuntimeError):
    """Another session holds the login, and the caller asked not to wait (preflight)."""


def waiting_message(state: str) -> str:
    return (
        f"waiting for the Cole {state} login: another run has a session open on it "
        "(one session per login)"
    )


@contextmanager
def cole_login_lock(
    login: str,
    state: str,
    database_url: str | None,
    say: Callable[[str], None] | None = None,
    wait: bool = True,
) -> Iterator[None]:
    """Hold the login for the `with` block; wait (polling, interruptible) while another holds it,
    or raise `LoginBusy` at once when `wait` is False."""
    if database_url:
        with _advisory_lock(lock_key(login), state, database_url, say, wait):
            yield
    else:
        with _file_lock(lock_key(login), state, say, wait):
            yield


def _wait(
    try_once: Callable[[], bool], state: str, say: Callable[[str], None] | None, wait: bool = True
) -> None:
    if try_once():
        return
    if not wait:
        raise LoginBusy(waiting_message(state))
    began = last_said = time.monotonic()
    if say:
        say(waiting_message(state))
    while not try_once():
        time.sleep(POLL_SECONDS)
        now = time.monotonic()
        if say and now - last_said >= REMIND_SECONDS:
            say(f"{waiting_message(state)}; waited {now - began:.0f} s")
            last_said = now
    if say:
        say(f"Cole {state} login free after {time.monotonic() - began:.1f} s")


@contextmanager
def _advisory_lock(
    key: int, state: str, url: str, say: Callable[[str], None] | None, wait: bool
) -> Iterator[None]:
    conn = db.connect(url, autocommit=True, application_name=f"homeowner cole-login {state}")
    try:
        _wait(
            lambda: bool(conn.execute("select pg_try_advisory_lock(%s)", [key]).fetchone()[0]),
            state,
            say,
            wait,
        )
        try:
            yield
        finally:
            conn.execute("select pg_advisory_unlock(%s)", [key])
    finally:
        conn.close()  # closing also releases the lock, should the unlock above have failed


@contextmanager
def _file_lock(
    key: int, state: str, say: Callable[[str], None] | None, wait: bool
) -> Iterator[None]:
    path = (
        Path(tempfile.gettempdir()) / f"homeowner-cole-login-{key & 0xFFFFFFFFFFFFFFFF:016x}.lock"
    )
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)

    def try_once() -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    try:
        _wait(try_once, state, say, wait)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
