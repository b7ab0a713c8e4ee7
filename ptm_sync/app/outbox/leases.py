"""Claiming outbox rows: leases in an owner's name, renewed while the owner works.

Claiming takes a lease (``claimed_until``) in the name of its owner (``claimed_by``: host,
pid and start time of the process, see :class:`Owner`).  Leases are short and renewed while
the owner works (:func:`renew`); a restart on the same host takes over at once the rows of an
owner that is known dead (no such process, or the pid now belongs to a process started at
another time).  A lease of a process on another host is taken only when it runs out.  On
PostgreSQL rows are claimed with ``FOR UPDATE SKIP LOCKED`` so several replicas share the
work; on SQLite the ``BEGIN IMMEDIATE`` write transaction serialises claims.  Rows of one
meeting are delivered in order: a row waits while an older row of the same meeting is still
pending.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

import psutil
from sqlalchemy import Table, and_, func, or_, select, update
from sqlalchemy.orm import Session, aliased

from ptm_sync.adapters.store import Database, Outbox
from ptm_sync.core.model import OutboxKind, OutboxState

log = logging.getLogger(__name__)

PENDING, DONE, DEAD = OutboxState.PENDING, OutboxState.DONE, OutboxState.DEAD
EMAIL = OutboxKind.EMAIL
_TABLE: Table = Outbox.__table__  # type: ignore[assignment]

#: How long a claim holds a row; the owner renews it every :data:`HEARTBEAT` while it works,
#: so only a dead or hung owner's rows wait this long (on another host: a lease's expiry is
#: the only sign of death we can trust).
LEASE = timedelta(seconds=90)
HEARTBEAT = timedelta(seconds=20)


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


def due(now: datetime, dead: Collection[str] = ()) -> Any:
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


def dead_owners(session: Session, now: datetime, here: Owner) -> list[str]:
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
        dead = dead_owners(session, now, owner)
        # The ids first: sorting whole rows (payloads and all) to pick the first few is
        # what a one-step SELECT … ORDER BY id LIMIT n would make the database do.
        query = select(Outbox.id, Outbox.claimed_by, Outbox.claimed_until)
        query = query.where(due(now, dead)).order_by(Outbox.id).limit(limit)
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
            log.warning("outbox: resumed %d left unfinished by a stopped ptm-sync process", resumed)
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
    query = select(func.count()).select_from(Outbox).where(due(now))
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
    retry_at: datetime | None = None  # the first of the retrying rows' next attempts


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
    retry_at: datetime | None = None
    for next_at, until, by in rows:
        if until is not None and until > now and by != token:
            held += 1
            held_until = until if held_until is None else max(held_until, until)
        elif next_at > now:
            retrying += 1
            retry_at = next_at if retry_at is None else min(retry_at, next_at)
        else:
            due += 1
    return Backlog(due, retrying, held, held_until, retry_at)
