"""Durable side effects: every email and calendar write is an outbox row.

Rows are written in the same transaction as the state change that causes them
(:func:`enqueue`), so a crash can lose neither the change nor its effects.  Delivery is at
least once and harmless when repeated: an email carries a fixed Message-ID, a calendar write
a fixed UID and is reconciled against the meeting's current state when it runs.

Claiming takes a lease (``claimed_until``) in the name of its owner (``claimed_by``: host,
pid and start time of the process, see :class:`Owner`).  Leases are short and renewed while
the owner works (:func:`renew`); a restart on the same host takes over at once the rows of an
owner that is known dead (no such process, or the pid now belongs to a process started at
another time).  A lease of a process on another host is taken only when it runs out.  On
PostgreSQL rows are claimed with ``FOR UPDATE SKIP LOCKED`` so several replicas share the
work; on SQLite the ``BEGIN IMMEDIATE`` write transaction serialises claims.  Rows of one
meeting are delivered in order: a row waits while an older row of the same meeting is still
pending.  Delivery itself, by destination, is :mod:`ptm_sync.app.outbox.dispatch`.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from typing import Any, Literal, NotRequired, TypedDict, cast

import psutil
from sqlalchemy import Table, and_, bindparam, func, or_, select, update
from sqlalchemy.orm import Session, aliased

from ptm_sync.adapters.store import Database, Outbox
from ptm_sync.adapters.store.db import database_outage
from ptm_sync.adapters.store.insert import insert_new
from ptm_sync.core.errors import NotFoundError, PtmError, UserError
from ptm_sync.core.model import OutboxKind, OutboxState
from ptm_sync.ops.crashpoints import crash_point
from ptm_sync.ops.metrics import DELIVERIES, DELIVERY_FAILURES, PROCESS

log = logging.getLogger(__name__)

PENDING, DONE, DEAD = OutboxState.PENDING, OutboxState.DONE, OutboxState.DEAD
EMAIL, CALENDAR, VIDEO = OutboxKind.EMAIL, OutboxKind.CALENDAR, OutboxKind.VIDEO

MAX_ATTEMPTS = 8
BASE_DELAY = timedelta(seconds=30)
MAX_DELAY = timedelta(hours=2)
#: How long a claim holds a row; the owner renews it every :data:`HEARTBEAT` while it works,
#: so only a dead or hung owner's rows wait this long (on another host: a lease's expiry is
#: the only sign of death we can trust).
LEASE = timedelta(seconds=90)
HEARTBEAT = timedelta(seconds=20)

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
Deliverer = Callable[[Outbox], None]


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


@dataclass(frozen=True, slots=True)
class Owner:
    """Who holds a lease: a process, named by host, pid and start time (seconds since the
    epoch, as the operating system reports it), written ``host/pid/start``."""

    host: str
    pid: int
    started: float

    @property
    def token(self) -> str:
        return f"{self.host}/{self.pid}/{self.started:.2f}"

    @classmethod
    def parse(cls, token: str) -> Owner | None:
        """The owner a ``claimed_by`` value names; None for one we cannot read."""
        host, _, rest = token.rpartition("/")
        host, _, pid = host.rpartition("/")
        try:
            return cls(host, int(pid), float(rest))
        except ValueError:
            return None

    def known_dead(self, here: Owner) -> bool:
        """True only when this owner surely no longer runs: same host as ``here``, and no
        process with its pid, or one started at another time (the pid was reused).

        Another host's processes cannot be seen from here: never known dead.
        """
        if self.host != here.host or self == here:
            return False
        try:
            process = psutil.Process(self.pid)
            if abs(process.create_time() - self.started) > 1.0:
                return True  # the pid now names another process
            return bool(process.status() == psutil.STATUS_ZOMBIE)  # killed, not yet reaped
        except psutil.NoSuchProcess:
            return True
        except psutil.Error:  # not ours to look at: assume it runs
            return False


@cache
def this_process() -> Owner:
    """The owner token of the running process (computed once per process)."""
    pid = os.getpid()
    return Owner(socket.gethostname(), pid, round(psutil.Process(pid).create_time(), 2))


def _due(now: datetime, dead: Collection[str] = ()) -> Any:
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
    free = [Outbox.claimed_until.is_(None), Outbox.claimed_until <= now]
    if dead:
        free.append(Outbox.claimed_by.in_(list(dead)))
    return and_(
        Outbox.state == PENDING,
        Outbox.next_attempt_at <= now,
        or_(*free),
        or_(
            Outbox.meeting_id.is_(None),
            Outbox.kind != EMAIL,
            Outbox.id.in_(first_pending),
        ),
    )


def _dead_owners(session: Session, now: datetime, here: Owner) -> list[str]:
    """The owners of live leases that are known dead (see :meth:`Owner.known_dead`)."""
    tokens = session.scalars(
        select(Outbox.claimed_by)
        .where(
            Outbox.state == PENDING,
            Outbox.claimed_until > now,
            Outbox.claimed_by.is_not(None),
            Outbox.claimed_by != here.token,
        )
        .distinct()
    )
    dead = []
    for token in tokens:
        owner = Owner.parse(token) if token else None
        if token and owner is not None and owner.known_dead(here):
            dead.append(token)
    return dead


@dataclass
class Claim:
    """Rows leased to one owner; ``resumed``: how many of them a dead process had held."""

    rows: list[Outbox]
    resumed: int = 0


def claim_batch(
    db: Database,
    *,
    now: datetime,
    limit: int = 100,
    kinds: Collection[str] | None = None,
    where: Any = None,
    owner: Owner | None = None,
) -> Claim:
    """Lease up to ``limit`` due rows (of ``kinds``, matching the SQL condition ``where``)
    to ``owner`` (default: this process) until ``now`` + :data:`LEASE`.

    Rows whose lease is held by a process known dead are due at once.  The rows come back
    in order and loaded: they stay readable after the claim's transaction (the store does
    not expire objects on commit), so a deliverer needs no second look-up.
    """
    owner = owner or this_process()
    with db.write() as session:
        dead = _dead_owners(session, now, owner)
        # The ids first: sorting whole rows (payloads and all) to pick the first few is
        # what a one-step SELECT … ORDER BY id LIMIT n would make the database do.
        query = select(Outbox.id, Outbox.claimed_by, Outbox.claimed_until)
        query = query.where(_due(now, dead)).order_by(Outbox.id).limit(limit)
        if kinds is not None:
            query = query.where(Outbox.kind.in_(list(kinds)))
        if where is not None:
            query = query.where(where)
        if db.dialect == "postgresql":
            query = query.with_for_update(skip_locked=True, of=Outbox)
        found = session.execute(query).all()
        if not found:
            return Claim([])
        ids = [row_id for row_id, _, _ in found]
        resumed = sum(
            1 for _, by, until in found if by in dead and until is not None and until > now
        )
        if resumed:
            log.warning("outbox: resuming %d row(s) of a stopped process", resumed)
        session.execute(
            update(_TABLE)
            .where(_TABLE.c.id.in_(ids))
            .values(claimed_until=now + LEASE, claimed_by=owner.token)
        )
        rows = list(session.scalars(select(Outbox).where(Outbox.id.in_(ids)).order_by(Outbox.id)))
        return Claim(rows, resumed)


def claim_rows(
    db: Database, *, now: datetime, limit: int = 100, kinds: Collection[str] | None = None
) -> list[Outbox]:
    """Lease up to ``limit`` due rows to this process; returns them in order, loaded."""
    return claim_batch(db, now=now, limit=limit, kinds=kinds).rows


def claim(
    db: Database, *, now: datetime, limit: int = 100, kinds: Collection[str] | None = None
) -> list[int]:
    """Lease up to ``limit`` due rows to this worker; returns their ids in order."""
    return [row.id for row in claim_rows(db, now=now, limit=limit, kinds=kinds)]


def renew(
    db: Database,
    *,
    now: datetime,
    owner: Owner | None = None,
    ids: Collection[int] | None = None,
) -> int:
    """Extend the leases ``owner`` (default: this process) holds — on the rows ``ids`` only,
    when given — to ``now`` + LEASE.

    The heartbeat of a working owner; returns the number of rows renewed.  A worker that
    renews only the rows in its hands lets the rows of one of its own workers that stopped
    (the database went away mid-delivery) fall free when their lease runs out.
    """
    token = (owner or this_process()).token
    if ids is not None and not ids:
        return 0
    query = update(_TABLE).where(
        _TABLE.c.claimed_by == token,
        _TABLE.c.state == PENDING,
        _TABLE.c.claimed_until.is_not(None),
    )
    if ids is not None:
        query = query.where(_TABLE.c.id.in_(list(ids)))
    with db.write() as session:
        result = session.execute(query.values(claimed_until=now + LEASE))
        return int(getattr(result, "rowcount", 0) or 0)


def release(db: Database, ids: Collection[int], *, owner: Owner | None = None) -> None:
    """Give back leases on rows not tried (due again at once, for anybody)."""
    if not ids:
        return
    token = (owner or this_process()).token
    with db.write() as session:
        session.execute(
            update(_TABLE)
            .where(_TABLE.c.id.in_(list(ids)), _TABLE.c.claimed_by == token)
            .values(claimed_until=None, claimed_by=None)
        )


def count_due(
    db: Database, *, now: datetime, kinds: Collection[str] | None = None, where: Any = None
) -> int:
    """How many rows (of ``kinds``, matching ``where``) are due and free now."""
    query = select(func.count()).select_from(Outbox).where(_due(now))
    if kinds is not None:
        query = query.where(Outbox.kind.in_(list(kinds)))
    if where is not None:
        query = query.where(where)
    with db.read() as session:
        return int(session.scalar(query) or 0)


@dataclass(frozen=True, slots=True)
class Backlog:
    """What is pending and not delivered now: counts only, no personal data."""

    due: int = 0  # due now and free (left by a destination that is out)
    retrying: int = 0  # waiting for their next attempt
    held: int = 0  # leased by another live process
    held_until: datetime | None = None  # when the last of those leases runs out


def backlog(db: Database, *, now: datetime, owner: Owner | None = None) -> Backlog:
    """Count the pending rows by why they wait (for ``outbox flush`` and the logs)."""
    token = (owner or this_process()).token
    with db.read() as session:
        rows = session.execute(
            select(Outbox.next_attempt_at, Outbox.claimed_until, Outbox.claimed_by).where(
                Outbox.state == PENDING
            )
        ).all()
    due = retrying = held = 0
    held_until: datetime | None = None
    for next_at, until, by in rows:
        if until is not None and until > now and by != token:
            held += 1
            held_until = until if held_until is None else max(held_until, until)
        elif next_at > now:
            retrying += 1
        else:
            due += 1
    return Backlog(due, retrying, held, held_until)


@dataclass
class FlushReport:
    delivered: int = 0
    retried: int = 0
    dead: int = 0
    errors: list[str] = field(default_factory=list)
    resumed: int = 0  # rows taken over from a stopped process
    deferred: dict[str, int] = field(default_factory=dict)  # destination -> rows not tried

    def add(self, other: FlushReport) -> None:
        self.delivered += other.delivered
        self.retried += other.retried
        self.dead += other.dead
        self.errors += other.errors
        self.resumed += other.resumed
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
    """Deliver one claimed row and record the outcome; returns the failure, if any."""
    try:
        if deliverer is None:
            raise PtmError(f"no deliverer for {row.kind!r} configured")
        deliverer(row)
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
        connection.execute(_MARK_DONE, {"row_id": row.id, "at": clock()})
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
        if report.delivered + report.retried + report.dead == 0:
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


# --- what staff see: `outbox` and `outbox retry` (DESIGN §7) ----------------------------

#: The states `outbox` shows (DESIGN §7): never tried, failed and to be tried again, given up.
WAITING, RETRYING = "waiting", "retrying"


@dataclass(frozen=True, slots=True)
class Pending:
    """One row not delivered yet, as `outbox` lists it.

    ``state``: ``waiting`` (not tried yet), ``retrying`` (failed, tried again at
    ``next_attempt_at``) or ``dead`` (given up after :data:`MAX_ATTEMPTS` or a permanent
    failure).  ``meeting``: the meeting's id, None for a row of no meeting.
    """

    id: int
    kind: str
    meeting: int | None
    state: str
    attempts: int
    next_attempt_at: datetime | None
    last_error: str

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "meeting": self.meeting,
            "state": self.state,
            "attempts": self.attempts,
            "next_attempt_at": self.next_attempt_at,
            "last_error": self.last_error,
        }


def _pending(row: Outbox) -> Pending:
    state = DEAD if row.state == DEAD else RETRYING if row.attempts else WAITING
    return Pending(
        row.id,
        row.kind,
        row.meeting_id,
        state,
        row.attempts,
        None if row.state == DEAD else row.next_attempt_at,
        row.last_error,
    )


def undelivered(db: Database) -> list[Pending]:
    """Every row not delivered: waiting, retrying and dead, oldest first (done rows are
    history, not work)."""
    with db.read() as session:
        rows = session.scalars(select(Outbox).where(Outbox.state != DONE).order_by(Outbox.id))
        return [_pending(row) for row in rows]


def requeue(db: Database, row_id: int, *, now: datetime) -> Pending:
    """Make a dead or retrying row due now, its attempts counted from 0 again (the failure
    was fixed: a password, a mailbox, a server back).

    Raises:
        NotFoundError: no row ``row_id``.
        UserError: the row was delivered already, or another process is delivering it now.
    """
    with db.write() as session:
        row = session.get(Outbox, row_id)
        if row is None:
            raise NotFoundError(f"no outbox row {row_id} (see `ptm-sync outbox`)")
        if row.state == DONE:
            raise UserError(f"outbox row {row_id} was delivered already: nothing to retry")
        if row.claimed_until is not None and row.claimed_until > now:
            raise UserError(
                f"outbox row {row_id} is being delivered right now by a running ptm-sync; "
                "see `ptm-sync outbox` again in a minute"
            )
        row.state = PENDING
        row.attempts = 0
        row.next_attempt_at = now
        row.claimed_until = None
        row.claimed_by = None
        row.last_error = ""
        session.flush()
        return _pending(row)


def requeue_all(db: Database, *, now: datetime) -> int:
    """Make every dead row and every row waiting to be retried due now, attempts counted
    from 0 (the server is back); rows a running process holds are left to it.  Returns how
    many were requeued."""
    with db.write() as session:
        rows = session.scalars(
            select(Outbox).where(
                or_(Outbox.state == DEAD, and_(Outbox.state == PENDING, Outbox.attempts > 0)),
                or_(Outbox.claimed_until.is_(None), Outbox.claimed_until <= now),
            )
        ).all()
        for row in rows:
            row.state, row.attempts, row.next_attempt_at = PENDING, 0, now
            row.claimed_until, row.claimed_by, row.last_error = None, None, ""
        return len(rows)


def unsent_emails(db: Database, since: datetime) -> int:
    """How many emails queued at ``since`` or later are not delivered (pending or dead)."""
    with db.read() as session:
        found = session.scalar(
            select(func.count())
            .select_from(Outbox)
            .where(Outbox.kind == EMAIL, Outbox.state != DONE, Outbox.created_at >= since)
        )
    return int(found or 0)
