"""Durable side effects: every email and calendar write is an outbox row.

Rows are written in the same transaction as the state change that causes them
(:func:`enqueue`), so a crash can lose neither the change nor its effects.  Delivery is at
least once and harmless when repeated: an email carries a fixed Message-ID, a calendar write
a fixed UID and is reconciled against the meeting's current state when it runs.

Claiming takes a lease (``claimed_until``): a worker that dies mid-delivery leaves a row that
becomes due again when the lease runs out.  On PostgreSQL rows are claimed with ``FOR UPDATE
SKIP LOCKED`` so several replicas share the work; on SQLite the ``BEGIN IMMEDIATE`` write
transaction serialises claims.  Rows of one meeting are delivered in order: a row waits while
an older row of the same meeting is still pending.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, and_, bindparam, func, or_, select, update
from sqlalchemy.orm import Session, aliased

from ptm_sync.crashpoints import crash_point
from ptm_sync.errors import PtmError
from ptm_sync.store import Database, Outbox
from ptm_sync.store.insert import insert_new

log = logging.getLogger(__name__)

PENDING, DONE, DEAD = "pending", "done", "dead"
EMAIL, CALENDAR = "email", "calendar"

MAX_ATTEMPTS = 8
BASE_DELAY = timedelta(seconds=30)
MAX_DELAY = timedelta(hours=2)
LEASE = timedelta(minutes=5)

_TABLE: Table = Outbox.__table__  # type: ignore[assignment]
_MARK_DONE = (
    update(_TABLE)
    .where(_TABLE.c.id == bindparam("row_id"))
    .values(state=DONE, done_at=bindparam("at"), claimed_until=None, attempts=_TABLE.c.attempts + 1)
)

#: A deliverer performs one row's effect; it raises PtmError (retryable or not) on failure.
Deliverer = Callable[[Outbox], None]


def enqueue(
    session: Session,
    *,
    key: str,
    kind: str,
    payload: Mapping[str, Any],
    now: datetime,
    meeting_id: int | None = None,
) -> None:
    """Add a side effect to the caller's transaction; a row with the same key is kept as is.

    One statement: ``INSERT … ON CONFLICT (key) DO NOTHING`` on SQLite and PostgreSQL, so
    the unique key, not a look-up before the insert, decides whether the row is new.
    """
    values = {
        "key": key,
        "kind": kind,
        "payload": json.dumps(payload, sort_keys=True),
        "meeting_id": meeting_id,
        "state": PENDING,
        "attempts": 0,
        "next_attempt_at": now,
        "claimed_until": None,
        "last_error": "",
        "created_at": now,
        "done_at": None,
    }
    insert_new(session, _TABLE, values, key="key")


def backoff(attempts: int, retry_after: float | None = None) -> timedelta:
    """Exponential backoff after ``attempts`` failures, or the server's Retry-After if longer."""
    delay = min(BASE_DELAY * (2 ** min(max(attempts - 1, 0), 20)), MAX_DELAY)
    if retry_after is not None:
        delay = max(delay, timedelta(seconds=retry_after))
    return delay


def _due(now: datetime) -> Any:
    # A meeting's email waits while an older email of the same meeting is pending (an
    # update must not overtake the invitation it updates): it is due only when it is the
    # oldest pending email of its meeting.  Calendar rows need no order — the deliverer
    # brings the calendar in line with the meeting as it is now — so a slow mailbox never
    # holds up a teacher's calendar.  One grouped look-up for all candidates, rather than a
    # search of the outbox for each, keeps a claim quick when thousands of rows wait.
    older = aliased(Outbox)
    first_pending = (
        select(func.min(older.id))
        .where(older.state == PENDING, older.meeting_id.is_not(None), older.kind == EMAIL)
        .group_by(older.meeting_id)
    )
    return and_(
        Outbox.state == PENDING,
        Outbox.next_attempt_at <= now,
        or_(Outbox.claimed_until.is_(None), Outbox.claimed_until <= now),
        or_(
            Outbox.meeting_id.is_(None),
            Outbox.kind != EMAIL,
            Outbox.id.in_(first_pending),
        ),
    )


def claim_rows(
    db: Database, *, now: datetime, limit: int = 100, kinds: Collection[str] | None = None
) -> list[Outbox]:
    """Lease up to ``limit`` due rows to this worker; returns them in order, loaded.

    The rows stay readable after the claim's transaction (the store does not expire
    objects on commit), so a deliverer needs no second look-up.
    """
    with db.write() as session:
        # The ids first: sorting whole rows (payloads and all) to pick the first few is
        # what a one-step SELECT … ORDER BY id LIMIT n would make the database do.
        query = select(Outbox.id).where(_due(now)).order_by(Outbox.id).limit(limit)
        if kinds is not None:
            query = query.where(Outbox.kind.in_(list(kinds)))
        if db.dialect == "postgresql":
            query = query.with_for_update(skip_locked=True, of=Outbox)
        ids = list(session.scalars(query))
        if not ids:
            return []
        session.execute(
            update(_TABLE).where(_TABLE.c.id.in_(ids)).values(claimed_until=now + LEASE)
        )
        return list(session.scalars(select(Outbox).where(Outbox.id.in_(ids)).order_by(Outbox.id)))


def claim(
    db: Database, *, now: datetime, limit: int = 100, kinds: Collection[str] | None = None
) -> list[int]:
    """Lease up to ``limit`` due rows to this worker; returns their ids in order."""
    return [row.id for row in claim_rows(db, now=now, limit=limit, kinds=kinds)]


@dataclass
class FlushReport:
    delivered: int = 0
    retried: int = 0
    dead: int = 0
    errors: list[str] = field(default_factory=list)


def deliver(
    db: Database,
    deliverers: Mapping[str, Deliverer],
    *,
    clock: Callable[[], datetime],
    limit: int = 100,
    kinds: Collection[str] | None = None,
) -> FlushReport:
    """Claim and deliver due rows once; failures are rescheduled or dead-lettered."""
    report = FlushReport()
    for row in claim_rows(db, now=clock(), limit=limit, kinds=kinds):
        deliverer = deliverers.get(row.kind)
        try:
            if deliverer is None:
                raise PtmError(f"no deliverer for {row.kind!r} configured")
            deliverer(row)
        except PtmError as exc:
            _failed(db, row.id, exc, clock(), report)
            continue
        except Exception as exc:
            log.exception("outbox row %d (%s) failed unexpectedly", row.id, row.kind)
            failure = PtmError(f"unexpected {type(exc).__name__}: {exc}")
            failure.retryable = True  # counted: dead-lettered after MAX_ATTEMPTS
            _failed(db, row.id, failure, clock(), report)
            continue
        crash_point("before-mark-done")
        # Recorded at once, row by row: a crash repeats at most the one item in flight.
        with db.write_connection() as connection:
            connection.execute(_MARK_DONE, {"row_id": row.id, "at": clock()})
        report.delivered += 1
    return report


def _failed(db: Database, row_id: int, exc: PtmError, now: datetime, report: FlushReport) -> None:
    with db.write() as session:
        row = session.get(Outbox, row_id)
        assert row is not None
        row.attempts += 1
        row.last_error = str(exc)[:2000]
        row.claimed_until = None
        if exc.retryable and row.attempts < MAX_ATTEMPTS:
            row.next_attempt_at = now + backoff(row.attempts, exc.retry_after)
            report.retried += 1
            # Ids and error kinds only: the error text can name a parent's address.
            log.warning("outbox row %d (%s): will retry: %s", row.id, row.kind, type(exc).__name__)
        else:
            row.state = DEAD
            report.dead += 1
            log.error(
                "outbox row %d (%s): dead-lettered after %d attempts: %s",
                row.id,
                row.kind,
                row.attempts,
                type(exc).__name__,
            )
        report.errors.append(f"{row.key}: {exc}")


def flush(
    db: Database,
    deliverers: Mapping[str, Deliverer],
    *,
    clock: Callable[[], datetime],
    batch: int = 100,
) -> FlushReport:
    """Deliver every row that is due now, batch after batch, until none is left.

    Only rows of the kinds ``deliverers`` can deliver are taken: emails wait in the outbox
    while no SMTP server is configured, rather than being given up on.
    """
    total = FlushReport()
    while True:
        report = deliver(db, deliverers, clock=clock, limit=batch, kinds=list(deliverers))
        total.delivered += report.delivered
        total.retried += report.retried
        total.dead += report.dead
        total.errors += report.errors
        if report.delivered + report.retried + report.dead == 0:
            return total


def payload(row: Outbox) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(row.payload)
    return data
