"""What staff see of the outbox: ``outbox`` (the rows not delivered) and ``outbox retry``
(DESIGN §7)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, select

from ptm_sync.adapters.store import Database, Outbox
from ptm_sync.core.errors import NotFoundError, UserError
from ptm_sync.core.model import OutboxKind, OutboxState

PENDING, DONE, DEAD = OutboxState.PENDING, OutboxState.DONE, OutboxState.DEAD
EMAIL = OutboxKind.EMAIL

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
