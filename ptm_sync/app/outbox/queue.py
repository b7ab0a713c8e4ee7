"""Durable side effects: every email and calendar write is an outbox row.

Rows are written in the same transaction as the state change that causes them
(:func:`enqueue`), so a crash can lose neither the change nor its effects.  Delivery is at
least once and harmless when repeated: an email carries a fixed Message-ID, a calendar write
a fixed UID and is reconciled against the meeting's current state when it runs.

Rows are claimed under a lease (:mod:`.leases`); this module delivers what was claimed,
counts the failures and dead-letters what cannot be delivered.  Delivery by destination
is :mod:`.dispatch`; what staff see of the queue is :mod:`.listing`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, NotRequired, TypedDict, cast

from sqlalchemy import Table, bindparam, update
from sqlalchemy.orm import Session

from ptm_sync.adapters.store import Database, Outbox
from ptm_sync.adapters.store.db import database_outage
from ptm_sync.adapters.store.insert import insert_new
from ptm_sync.app.outbox.leases import claim_batch
from ptm_sync.core.errors import PtmError
from ptm_sync.core.model import OutboxKind, OutboxState
from ptm_sync.ops.crashpoints import crash_point
from ptm_sync.ops.metrics import DELIVERIES, DELIVERY_FAILURES, PROCESS

log = logging.getLogger(__name__)

PENDING, DONE, DEAD = OutboxState.PENDING, OutboxState.DONE, OutboxState.DEAD
EMAIL, CALENDAR, VIDEO = OutboxKind.EMAIL, OutboxKind.CALENDAR, OutboxKind.VIDEO

MAX_ATTEMPTS = 8
BASE_DELAY = timedelta(seconds=30)
MAX_DELAY = timedelta(hours=2)

_TABLE: Table = Outbox.__table__  # type: ignore[assignment]
_MARK_DONE = (
    update(_TABLE)
    .where(_TABLE.c.id == bindparam("row_id"))
    .values(
        state=DONE,
        done_at=bindparam("at"),
        claimed_until=None,
        claimed_by=None,
        attempts=_TABLE.c.attempts + 1,
    )
)
#: A row finished without its effect: the deliverer found it no longer wanted.
_MARK_DROPPED = _MARK_DONE.values(last_error=bindparam("note"))

#: An ``email`` row: the envelope and either the letter (rendered when it is sent, by
#: :func:`ptm_sync.core.booking.notices.email_of`) or the message itself, base64.
EmailPayload = TypedDict(
    "EmailPayload",
    {
        "from": str,
        "to": list[str],
        "letter": NotRequired[dict[str, Any]],
        "raw": NotRequired[str],
    },
)


class CalendarPayload(TypedDict):
    """A ``calendar`` row: bring the teacher's calendar in line with the meeting as it is
    when the row is delivered."""

    meeting_id: int | None


class VideoPayload(TypedDict):
    """A ``video`` row: make the meeting's Zoom room, or remove the one named."""

    action: Literal["create", "delete"]
    meeting_id: int
    zoom_id: NotRequired[str]


Payload = EmailPayload | CalendarPayload | VideoPayload

#: A deliverer performs one row's effect; it raises PtmError (retryable or not) on failure.
#: It returns None when the effect happened, or a note (no personal data) when the row is
#: no longer wanted and was finished without it (a reminder of a meeting that has started):
#: the row is done, with the note as its ``last_error``, and counted as dropped, never as
#: a failure.
Deliverer = Callable[[Outbox], str | None]


def enqueue(
    session: Session,
    *,
    key: str,
    kind: str,
    payload: Payload,
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


@dataclass
class FlushReport:
    delivered: int = 0
    retried: int = 0
    dead: int = 0
    errors: list[str] = field(default_factory=list)
    resumed: int = 0  # rows taken over from a stopped process
    dropped: int = 0  # rows finished unsent: no longer wanted (a reminder too late)
    notes: list[str] = field(default_factory=list)  # "<key>: dropped: <why>", one a drop
    deferred: dict[str, int] = field(default_factory=dict)  # destination -> rows not tried

    def add(self, other: FlushReport) -> None:
        self.delivered += other.delivered
        self.retried += other.retried
        self.dead += other.dead
        self.errors += other.errors
        self.resumed += other.resumed
        self.dropped += other.dropped
        self.notes += other.notes
        for where, count in other.deferred.items():
            self.deferred[where] = self.deferred.get(where, 0) + count


def deliver_one(
    db: Database,
    row: Outbox,
    deliverer: Deliverer | None,
    *,
    clock: Callable[[], datetime],
    report: FlushReport,
) -> PtmError | None:
    """Deliver one claimed row and record the outcome; returns the failure, if any.

    A row the deliverer finds no longer wanted (it returns a note) is done without a
    failure: counted in ``report.dropped``, the note kept as its ``last_error`` and logged.
    """
    try:
        if deliverer is None:
            raise PtmError(f"no deliverer for {row.kind!r} configured")
        dropped = deliverer(row)
    except PtmError as exc:
        if _failed(db, row.id, exc, clock(), report):
            _given_up(deliverer, row)
        return exc
    except Exception as exc:
        if database_outage(exc):  # our database, not this row: no attempt counted
            raise
        log.exception("outbox row %d (%s) failed unexpectedly", row.id, row.kind)
        failure = PtmError(f"unexpected {type(exc).__name__}: {exc}")
        failure.retryable = True  # counted: dead-lettered after MAX_ATTEMPTS
        if _failed(db, row.id, failure, clock(), report):
            _given_up(deliverer, row)
        return failure
    crash_point("before-mark-done")
    # Recorded at once, row by row: a crash repeats at most the one item in flight.
    with db.write_connection() as connection:
        if dropped is not None:
            connection.execute(_MARK_DROPPED, {"row_id": row.id, "at": clock(), "note": dropped})
        else:
            connection.execute(_MARK_DONE, {"row_id": row.id, "at": clock()})
    if dropped is not None:
        report.dropped += 1
        report.notes.append(f"{row.key}: {dropped}")
        # The note names no person (e.g. "dropped: the meeting has started").
        log.info("outbox row %d (%s) not sent: %s", row.id, row.kind, dropped)
        return None
    report.delivered += 1
    PROCESS.count(DELIVERIES, kind=row.kind)  # metrics
    return None


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
    claimed = claim_batch(db, now=clock(), limit=limit, kinds=kinds)
    report.resumed = claimed.resumed
    for row in claimed.rows:
        deliver_one(db, row, deliverers.get(row.kind), clock=clock, report=report)
    return report


def _given_up(deliverer: Deliverer | None, row: Outbox) -> None:
    """Tell a deliverer that has a ``given_up(row)`` that its row was dead-lettered (what
    waited for the row can then go without it: DESIGN §6, nothing left waiting for ever)."""
    hook = getattr(deliverer, "given_up", None)
    if hook is None:
        return
    try:
        hook(row)
    except Exception:
        log.exception("outbox row %d (%s): its give-up hook failed", row.id, row.kind)


def _failed(db: Database, row_id: int, exc: PtmError, now: datetime, report: FlushReport) -> bool:
    """Count the failed attempt; returns True when the row is now dead-lettered."""
    with db.write() as session:
        row = session.get(Outbox, row_id)
        assert row is not None
        row.attempts += 1
        row.last_error = str(exc)[:2000]
        row.claimed_until = None
        row.claimed_by = None
        if exc.retryable and row.attempts < MAX_ATTEMPTS:
            row.next_attempt_at = now + backoff(row.attempts, exc.retry_after)
            report.retried += 1
            PROCESS.count(DELIVERY_FAILURES, kind=row.kind, result="retry")  # metrics
            # Ids and error kinds only: the error text can name a parent's address.
            # INFO: a retry is routine (the caller reports the failure in its own words).
            log.info("outbox row %d (%s): will retry: %s", row.id, row.kind, type(exc).__name__)
        else:
            row.state = DEAD
            report.dead += 1
            PROCESS.count(DELIVERY_FAILURES, kind=row.kind, result="dead")  # metrics
            log.error(
                "outbox row %d (%s): dead-lettered after %d attempts: %s",
                row.id,
                row.kind,
                row.attempts,
                type(exc).__name__,
            )
        report.errors.append(f"{row.key}: {exc}")
        return row.state == DEAD


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
        total.add(report)
        if report.delivered + report.retried + report.dead + report.dropped == 0:
            return total


def payload(row: Outbox) -> dict[str, Any]:
    """The row's payload as stored (any kind)."""
    data: dict[str, Any] = json.loads(row.payload)
    return data


def email_payload(row: Outbox) -> EmailPayload:
    return cast(EmailPayload, payload(row))


def calendar_payload(row: Outbox) -> CalendarPayload:
    return cast(CalendarPayload, payload(row))


def video_payload(row: Outbox) -> VideoPayload:
    return cast(VideoPayload, payload(row))
