"""The inbound row: each message recorded once, by its digest, with what became of it.

A message is inserted under its digest (a digest recorded already makes it a duplicate),
kept in quarantine with a short, stable reason and its raw bytes, or marked with the
outcome of its decision, whose raw bytes are not kept.  :class:`Outcome` is what the
pipeline reports for each message.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Table, bindparam, update
from sqlalchemy.orm import Session

from ptm_sync.adapters.store import Inbound
from ptm_sync.adapters.store.insert import insert_new_id
from ptm_sync.core import imip
from ptm_sync.core.booking.decide import DUPLICATE, QUARANTINED
from ptm_sync.core.errors import QuarantineReason
from ptm_sync.core.imip.limits import HEAD_BYTES, TOO_LARGE

#: Quarantine reason of a message holding a value the database refuses (a number out of
#: range): it would be refused every time, so it is no temporary failure.
UNSTORABLE = QuarantineReason.UNSTORABLE
_INBOUND: Table = Inbound.__table__  # type: ignore[assignment]
# Built once: statements built per message cost more than running them.
_RECORD_DECISION = (
    update(_INBOUND)
    .where(_INBOUND.c.id == bindparam("row_id"))
    .values(
        outcome=bindparam("new_outcome"),
        reason=bindparam("new_reason"),
        meeting_id=bindparam("new_meeting_id"),
        raw=bindparam("new_raw"),
    )
)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one message."""

    outcome: str
    reason: str = ""
    meeting_uid: str | None = None
    inbound_id: int | None = None

    def __str__(self) -> str:
        detail = f" ({self.reason})" if self.reason else ""
        return f"{self.outcome}{detail}"


@dataclass(frozen=True, slots=True)
class InboundDecision:
    """What is written on a message's inbound row: the outcome, its reason and the meeting."""

    outcome: str
    reason: str
    meeting_id: int | None = None
    meeting_uid: str | None = None


def insert(
    session: Session,
    digest: str,
    now: datetime,
    inbound: imip.Inbound | None,
    reason: str,
    raw: bytes | None,
) -> int | None:
    """A new inbound row for the message, quarantined with ``reason`` until its decision is
    written; None when its digest is recorded already (the unique digest decides)."""
    return insert_new_id(
        session, _INBOUND, _row_values(digest, now, inbound, reason, raw), key="digest"
    )


def quarantine(
    session: Session,
    raw: bytes,
    inbound: imip.Inbound | None,
    digest: str,
    now: datetime,
    reason: str,
) -> Outcome:
    """Record the message in quarantine with ``reason``, changing nothing else (or, when
    its digest is recorded already, report the duplicate)."""
    if reason == TOO_LARGE:
        raw = raw[:HEAD_BYTES]  # kept for staff to see who sent it, not the whole of it
    row_id = insert(session, digest, now, inbound, reason, raw)
    if row_id is None:
        return Outcome(DUPLICATE, "already processed")
    return Outcome(QUARANTINED, reason, None, row_id)


def _row_values(
    digest: str, now: datetime, inbound: imip.Inbound | None, reason: str, raw: bytes | None
) -> dict[str, object]:
    return {
        "digest": digest,
        "received_at": now,
        "message_id": (inbound.message_id if inbound else None) or "",
        "sender": (inbound.sender if inbound else None) or "",
        "outcome": QUARANTINED,
        "reason": reason,
        "meeting_id": None,
        "raw": raw,
    }


def write_decision(session: Session, raw: bytes, row_id: int, decision: InboundDecision) -> Outcome:
    """The decision on the message's inbound row ``row_id``."""
    session.execute(
        _RECORD_DECISION,
        {
            "row_id": row_id,
            "new_outcome": decision.outcome,
            "new_reason": decision.reason,
            "new_meeting_id": decision.meeting_id,
            # Kept for staff to inspect; purged with the meeting data.
            "new_raw": raw if decision.outcome == QUARANTINED else None,
        },
    )
    return Outcome(decision.outcome, decision.reason, decision.meeting_uid, row_id)
