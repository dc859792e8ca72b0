"""The window ledger (`client_lead_batches`): how a renewal window moves to done, and its locks.

    pending --record_list_created--> list_created --record_list_verified--> list_verified
            --record_attached--> attached --record_done--> done

A write only moves `status` forward (`_advance`): a slow run cannot undo a later one. The one
way back is `forget_list` (an unverified list deleted in Bison: `list_created` to `pending`).
`upload_lock` (one uploader per client and window) and `campaign_lock` (one PT5 per Bison
workspace) guard these writes and the Bison calls between them; both are at the end.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import pandas as pd
from dagster import Failure
from psycopg import sql

from homeowner_dagster import db
from homeowner_dagster.leads.calendar import WINDOW_STATES, RenewalWindow, month_key
from homeowner_dagster.store.rows import now
from homeowner_dagster.store.windows import CampaignHolds, ledger_row

# The states in order (WINDOW_STATES), as SQL; and the column each transition stamps the first
# time it happens (a repeat keeps the stamp: `list_verified_at` is the latest check instead).
_STATE_ORDER = sql.SQL("array[{}]").format(sql.SQL(",").join(map(sql.Literal, WINDOW_STATES)))
_FIRST_STAMPS = {"list_created": "uploaded_at", "attached": "attached_at", "done": "done_at"}


def _advance(state: str) -> sql.Composable:
    """SQL for `status` moved on to `state`, never back (a slow run cannot undo a later one)."""
    return sql.SQL(
        "status = case when array_position({order}, status) < array_position({order}, {state}) "
        "then {state} else status end"
    ).format(order=_STATE_ORDER, state=sql.Literal(state))


def _update_row(
    conn: Any,
    client: str,
    window: RenewalWindow,
    state: str | None,
    values: dict[str, Any],
    only_list: str | None = None,
) -> int:
    """Set `values` on the window's row and, with a `state`, make the transition: status moved on
    (never back), the state's first stamp kept. With `only_list`: only while the row names no
    other Bison list. Returns the rows written (0 or 1)."""
    sets = [sql.SQL("{} = %s").format(sql.Identifier(k)) for k in values]
    if state in _FIRST_STAMPS:
        sets.append(
            sql.SQL("{at} = coalesce({at}, now())").format(at=sql.Identifier(_FIRST_STAMPS[state]))
        )
    if state is not None:
        sets.append(_advance(state))
    sets.append(sql.SQL("updated_at = now()"))
    where = [sql.SQL("client_slug = %s and window_start = %s")]
    params = [*values.values(), client, window.start]
    if only_list is not None:
        where.append(sql.SQL("(bison_list_id is null or bison_list_id = %s)"))
        params.append(only_list)
    stmt = sql.SQL("update client_lead_batches set {sets} where {where}").format(
        sets=sql.SQL(", ").join(sets), where=sql.SQL(" and ").join(where)
    )
    return conn.execute(stmt, params).rowcount


def _update_window(
    dsn: str, client: str, window: RenewalWindow, state: str | None, values: dict[str, Any]
) -> None:
    """`_update_row` in a transaction of its own."""
    with db.transaction(dsn) as conn:
        _update_row(conn, client, window, state, values)


def ensure_window(dsn: str, client: str, window: RenewalWindow) -> dict[str, Any]:
    """The window's ledger row, created `pending` (month pulled, nothing in Bison) when missing."""
    with db.transaction(dsn) as conn:
        conn.execute(
            "insert into client_lead_batches (client_slug, window_start, window_end, month, list_name, status) "
            "values (%s, %s, %s, %s, %s, 'pending') on conflict (client_slug, window_start) do nothing",
            [client, window.start, window.end, month_key(window.month), window.list_name],
        )
    row = ledger_row(dsn, client, window)
    assert row is not None
    return row


def record_list_requested(
    dsn: str, client: str, window: RenewalWindow, list_name: str | None = None
) -> datetime:
    """Written just before the list is created: a list found by this name later than this is ours."""
    with db.transaction(dsn) as conn:
        at = conn.execute(
            "update client_lead_batches set list_requested_at = now(), list_name = %s, updated_at = now() "
            "where client_slug = %s and window_start = %s returning list_requested_at",
            [list_name or window.list_name, client, window.start],
        ).fetchone()[0]
    return at


def record_list_created(
    dsn: str,
    client: str,
    window: RenewalWindow,
    list_id: str,
    dedupe_keys: Iterable[str],
    email_keys: Iterable[str] | None = None,
    list_name: str | None = None,
) -> None:
    """`list_created`: the list's id and the leads sent to it (with their `email_keys`, what
    identifies each in Bison), in one transaction."""
    m = month_key(window.month)
    keys = pd.DataFrame({"dedupe_key": list(dedupe_keys)})
    if email_keys is not None:
        keys["email_hash"] = list(email_keys)
    with db.transaction(dsn) as conn:
        values = {
            "bison_list_id": list_id,
            "lead_count": len(keys),
            "list_name": list_name or window.list_name,
        }
        updated = _update_row(conn, client, window, "list_created", values, only_list=list_id)
        if updated != 1:
            raise ListAlreadyRecorded(
                f"{client}: another list is already recorded for {window.list_name}; Bison list "
                f"{list_id} is a second one (two runs uploaded at once?): delete it in Bison"
            )
        db.replace_partition(
            conn,
            "client_lead_batch_leads",
            {"client_slug": client, "window_start": window.start, "month": m},
            keys,
        )


class ListAlreadyRecorded(RuntimeError):
    """The window's ledger row already names a different Bison list: never overwritten."""


def record_list_verified(dsn: str, client: str, window: RenewalWindow, in_bison: int) -> None:
    """`list_verified`: the leads Bison holds in the window's list, counted just now."""
    _update_window(
        dsn, client, window, "list_verified", {"lead_count": in_bison, "list_verified_at": now()}
    )


def record_campaign_before_attach(
    dsn: str,
    client: str,
    window: RenewalWindow,
    campaign_id: str,
    title: str,
    leads_before: int,
    held: CampaignHolds | None = None,
    new: int | None = None,
) -> None:
    """The campaign and its lead count just before attaching, and how many of the window's leads
    it lacks (`new`) or holds already (`held`): the attach check waits for that growth."""
    values: dict[str, Any] = {
        "campaign_id": campaign_id,
        "campaign_title_before": title,
        "campaign_leads_before": leads_before,
    }
    if held is not None:
        values.update(
            leads_in_campaign=held.in_campaign, leads_returning=held.returning, leads_new=new
        )
    _update_window(dsn, client, window, None, values)


def record_attached(dsn: str, client: str, window: RenewalWindow, leads_after: int) -> None:
    """`attached`: the campaign's lead count after the window's list was attached to it."""
    _update_window(dsn, client, window, "attached", {"campaign_leads_after": leads_after})


def record_done(dsn: str, client: str, window: RenewalWindow, title_after: str) -> None:
    """`done`: the campaign's title after it moved on to (or already named) the window."""
    _update_window(dsn, client, window, "done", {"campaign_title_after": title_after})


def forget_list(dsn: str, client: str, window: RenewalWindow) -> str | None:
    """Forget the window's unverified Bison list (refused rows, deleted in Bison): the window is
    `pending` again and the next run uploads it anew. None unless the window is `list_created`."""
    with db.transaction(dsn) as conn:
        row = conn.execute(
            "with old as (select bison_list_id from client_lead_batches where client_slug = %s "
            "  and window_start = %s and status = 'list_created' for update) "
            "update client_lead_batches set status = 'pending', bison_list_id = null, lead_count = 0, "
            "list_requested_at = null, list_position = null, refused_rows = null, refused_messages = null, "
            "refused_accepted_at = null, refused_accepted_by = null, updated_at = now() "
            "from old where client_slug = %s and window_start = %s and status = 'list_created' "
            "returning old.bison_list_id",
            [client, window.start, client, window.start],
        ).fetchone()
        if row is None:
            return None
        conn.execute(
            "delete from client_lead_batch_leads where client_slug = %s and window_start = %s",
            [client, window.start],
        )
    return str(row[0])


def record_list_position(
    dsn: str, client: str, window: RenewalWindow, position: int | None
) -> None:
    """Where the window's list sat in Bison's paged list of lead lists (0 = first item)."""
    if position is not None:
        _update_window(dsn, client, window, None, {"list_position": int(position)})


def record_refused(
    dsn: str, client: str, window: RenewalWindow, refused: int, messages: list[str]
) -> None:
    """Bison refused rows of the window's list: the window waits for `homeowner windows accept`."""
    _update_window(
        dsn,
        client,
        window,
        None,
        {"refused_rows": refused, "refused_messages": "\n".join(messages)[:4000]},
    )


def accept_refused(dsn: str, client: str, window: RenewalWindow, by: str) -> dict[str, Any] | None:
    """A person's go-ahead to go on without the rows Bison refused; None when none were refused."""
    with db.transaction(dsn) as conn:
        row = conn.execute(
            "update client_lead_batches set refused_accepted_at = now(), refused_accepted_by = %s, "
            "updated_at = now() where client_slug = %s and window_start = %s and refused_rows > 0 "
            "returning refused_rows, status",
            [by, client, window.start],
        ).fetchone()
    return None if row is None else {"refused_rows": int(row[0]), "status": row[1]}


ANNOUNCEMENTS = ("list_announced_at", "evergreen_announced_at", "missed_reported_at")


def mark_announced(dsn: str, client: str, window: RenewalWindow, which: str) -> None:
    """Remember that a window's Slack message went out, so a later run does not post it again."""
    if which not in ANNOUNCEMENTS:
        raise ValueError(which)
    _update_window(dsn, client, window, None, {which: now()})


# The locks that guard the transitions


class UploadLockLost(Failure):
    """The upload lock's database session died: another run may now hold the window.

    Raised before any further Bison call; the cause (the database error) is kept as
    `__cause__`. Not retried in place: a re-run finds the list by name and uploads nothing twice.
    """

    def __init__(self, key: str, cause: BaseException) -> None:
        super().__init__(
            description=f"upload lock {key} lost ({type(cause).__name__}: {str(cause).strip()[:200]}); "
            "nothing more was sent to Bison. Re-run the window (it finds its list by name)",
            metadata={"error_type": "UploadLockLost"},
            allow_retries=False,
        )


# The lock's session: fail fast when the server is unreachable, give up waiting for another
# run's lock after LOCK_WAIT, and notice a dead peer (keepalives) instead of hanging on it.
LOCK_CONNECT_TIMEOUT_SECONDS = 10


LOCK_WAIT = os.environ.get("HOMEOWNER_UPLOAD_LOCK_TIMEOUT", "15min")


LOCK_APPLICATION_NAME = "homeowner-upload-lock"


class UploadLock:
    """A held upload lock; `ensure_held()` before every Bison call."""

    def __init__(self, conn: Any, key: str) -> None:
        self._conn = conn
        self.key = key
        self.lost: BaseException | None = None

    def ensure_held(self) -> None:
        """Raise UploadLockLost unless this session still holds the advisory lock."""
        if self.lost is not None:
            raise UploadLockLost(self.key, self.lost)
        try:
            held = self._conn.execute(
                "select exists (select 1 from pg_locks where locktype = 'advisory' and granted "
                "and pid = pg_backend_pid() and objsubid = 1 "
                "and ((classid::int8 << 32) | objid::int8) = hashtextextended(%s, 0))",
                [self.key],
            ).fetchone()[0]
        except Exception as exc:  # noqa: BLE001 - any failure of the session loses the lock
            self.lost = exc
            raise UploadLockLost(self.key, exc) from exc
        if not held:
            self.lost = RuntimeError("the session no longer holds the lock")
            raise UploadLockLost(self.key, self.lost)


@contextmanager
def upload_lock(dsn: str, client: str, window: RenewalWindow) -> Iterator[UploadLock]:
    """One uploader per client and window at a time, across processes and machines.

    Two runs for the same window (a retry racing a manual re-run) would both find no list by
    name and both upload; a session-level advisory lock makes the second wait, then find it.
    The session has connect and lock timeouts and TCP keepalives; a lost session surfaces as
    UploadLockLost at the next `ensure_held()`, and the unlock never hides the run's own error.
    """
    with _advisory_session(dsn, f"bison-upload|{client}|{window.key}") as lock:
        yield lock


# How often a PT5 waiting for its campaign asks again, and how often its log says it still waits.
CAMPAIGN_LOCK_POLL_SECONDS = 0.5


CAMPAIGN_LOCK_REMIND_SECONDS = 60.0


@contextmanager
def campaign_lock(
    dsn: str, workspace: str, say: Callable[[str], None] | None = None
) -> Iterator[UploadLock]:
    """One PT5 per Bison workspace (so per Evergreen campaign) at a time, however the run was
    launched (schedule, UI, backfill, `homeowner windows force`): run tags do not reach UI runs,
    so it is held here, like the Cole login lock. A run that finds it taken waits (its log says
    so); the holder's death releases it with its session. The title then only moves forward:
    each run reads it after the one before has renamed it."""
    with _advisory_session(dsn, f"bison-campaign|{workspace}", say=say) as lock:
        yield lock


@contextmanager
def _advisory_session(
    dsn: str, key: str, say: Callable[[str], None] | None = None
) -> Iterator[UploadLock]:
    """A session-level advisory lock on its own connection. Without `say`: wait at most
    LOCK_WAIT (lock_timeout); with `say`: poll without limit, saying that the run waits."""
    conn = db.connect(
        dsn,
        autocommit=True,
        connect_timeout=LOCK_CONNECT_TIMEOUT_SECONDS,
        keepalives=1,
        keepalives_idle=30,
        keepalives_interval=10,
        keepalives_count=3,
        application_name=LOCK_APPLICATION_NAME,
    )
    with conn:
        if say is None:
            conn.execute(sql.SQL("set lock_timeout = {}").format(sql.Literal(LOCK_WAIT)))
            conn.execute("select pg_advisory_lock(hashtextextended(%s, 0))", [key])
        else:
            _poll_for_lock(conn, key, say)
        lock = UploadLock(conn, key)
        lock.ensure_held()
        try:
            yield lock
        except BaseException:
            _unlock_quietly(conn, key)
            raise
        _unlock_quietly(conn, key)


def _poll_for_lock(conn: Any, key: str, say: Callable[[str], None]) -> None:
    def try_once() -> bool:
        return bool(
            conn.execute("select pg_try_advisory_lock(hashtextextended(%s, 0))", [key]).fetchone()[
                0
            ]
        )

    if try_once():
        return
    began = last_said = time.monotonic()
    say(f"waiting for {key}: another run holds it")
    while not try_once():
        time.sleep(CAMPAIGN_LOCK_POLL_SECONDS)
        if time.monotonic() - last_said >= CAMPAIGN_LOCK_REMIND_SECONDS:
            last_said = time.monotonic()
            say(f"still waiting for {key} ({last_said - began:.0f} s)")
    say(f"{key} free after {time.monotonic() - began:.1f} s")


def _unlock_quietly(conn: Any, key: str) -> None:
    """Release the lock if the session still lives; a dead session released it already."""
    try:
        conn.execute("select pg_advisory_unlock(hashtextextended(%s, 0))", [key])
    except Exception:  # noqa: BLE001, S110 - never mask the error that ended the block
        pass
