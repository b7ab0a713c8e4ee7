"""The waiting list in the store: families waiting for a teacher, first come first served.

Reads and writes ``waitlist`` rows only; the applier (:mod:`ptm_sync.app.booking.apply`)
calls these when a decision puts a family on the list, books one that was waiting, or
frees a slot: :func:`offer` hands that slot to the first family that can take it, each
offer decided and written by :meth:`~ptm_sync.app.booking.apply.Applier.handle`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from ptm_sync.adapters.store import Guardian, Student, Teacher
from ptm_sync.adapters.store import WaitlistEntry as WaitlistRow
from ptm_sync.app.booking import load
from ptm_sync.config.settings import Config, PeriodConfig
from ptm_sync.core.booking.decide import APPLIED
from ptm_sync.core.booking.events import Event, Offer
from ptm_sync.core.booking.values import Decision, Fresh, MeetingView, Origin, WaitlistEntry
from ptm_sync.core.model import Interval, WaitlistState

#: How many waiting families a freed slot is tried for (the rest clash with it).
TRIES = 20

WAITING, OFFERED, LEFT = WaitlistState.WAITING, WaitlistState.OFFERED, WaitlistState.LEFT


class Proposer(Protocol):
    """The applier as the waiting list uses it: it makes a new meeting's identity, and
    decides and writes an offer (:class:`~ptm_sync.app.booking.apply.Applier`)."""

    config: Config

    def fresh(self, session: Session, period: str, account: str = "") -> Fresh: ...

    def handle(self, session: Session, meeting: MeetingView, event: Event) -> Decision: ...


def entry_for(
    period: str,
    teacher_id: int,
    guardians: Sequence[Guardian],
    students: Sequence[Student],
    since: datetime,
) -> WaitlistEntry | None:
    """The waiting-list entry of a family (``guardians`` and the ``students`` they come
    for) for a teacher; None when either list is empty."""
    if not guardians or not students:
        return None
    return WaitlistEntry(
        id=None,
        period=period,
        teacher_id=teacher_id,
        guardian_ids=tuple(dict.fromkeys(g.id for g in guardians)),
        student_ids=tuple(s.id for s in students),
        since=since,
    )


def join(session: Session, entry: WaitlistEntry) -> bool:
    """Put the family of ``entry`` on the list, unless it waits already; True if added."""
    primary, *others = entry.guardian_ids
    waiting = session.scalar(
        select(WaitlistRow.id).where(
            WaitlistRow.period_id == entry.period,
            WaitlistRow.teacher_id == entry.teacher_id,
            WaitlistRow.guardian_id == primary,
            WaitlistRow.state == WAITING,
        )
    )
    if waiting is not None:
        return False
    session.add(
        WaitlistRow(
            period_id=entry.period,
            teacher_id=entry.teacher_id,
            guardian_id=primary,
            since=entry.since,
            state=WAITING,
            guardians=",".join(str(g) for g in others),
            students=",".join(str(s) for s in entry.student_ids),
        )
    )
    return True


def leave(session: Session, meeting: MeetingView, meeting_id: int) -> None:
    """A family that books the teacher by any channel no longer waits for them."""
    if meeting.origin is Origin.WAITLIST:
        return  # the offer marks its own entry
    guardians = [p.guardian_id for p in meeting.parties]
    for row in session.scalars(
        select(WaitlistRow).where(
            WaitlistRow.period_id == meeting.period,
            WaitlistRow.teacher_id == meeting.teacher.id,
            WaitlistRow.guardian_id.in_(guardians),
            WaitlistRow.state == WAITING,
        )
    ):
        row.state, row.meeting_id = LEFT, meeting_id


def first_waiting(session: Session, period: str, teacher_id: int) -> list[WaitlistRow]:
    """The families waiting for the teacher, in the order they joined (at most TRIES)."""
    return list(
        session.scalars(
            select(WaitlistRow)
            .where(
                WaitlistRow.period_id == period,
                WaitlistRow.teacher_id == teacher_id,
                WaitlistRow.state == WAITING,
            )
            .order_by(WaitlistRow.id)
            .limit(TRIES)
        )
    )


def draft_for(
    session: Session,
    config: Config,
    period: PeriodConfig,
    teacher: Teacher,
    entry: WaitlistRow,
    slot: Interval,
    fresh: Fresh,
) -> MeetingView | None:
    """The proposal of ``slot`` to the family of ``entry``; None (and the entry left) when
    the family is gone from the roster (or retired from it)."""
    ids = [entry.guardian_id, *(int(g) for g in entry.guardians.split(",") if g)]
    people = {
        g.id: g
        for g in session.scalars(
            select(Guardian).where(Guardian.id.in_(ids), Guardian.retired_at.is_(None))
        )
    }
    student_ids = [int(s) for s in entry.students.split(",") if s]
    students = list(
        session.scalars(
            select(Student).where(Student.id.in_(student_ids), Student.retired_at.is_(None))
        )
    )
    if entry.guardian_id not in people or not students:
        entry.state = LEFT
        return None
    guardians = [people[g] for g in ids if g in people]
    return load.draft(
        config, period, teacher, guardians, students, slot, fresh=fresh, origin=Origin.WAITLIST
    )


def offered(entry: WaitlistRow, meeting_id: int | None) -> None:
    entry.state, entry.meeting_id = OFFERED, meeting_id


def offer(
    proposer: Proposer, session: Session, period: str, teacher_id: int, slot: Interval
) -> None:
    """A freed slot goes to the first family waiting for the teacher that can take it
    (the admission rule decides: it may clash with the family's other meetings).  Each
    offer is decided and written by ``proposer.handle``: the applier's path, never here."""
    entries = first_waiting(session, period, teacher_id)
    if not entries:
        return
    teacher = session.get(Teacher, teacher_id)
    assert teacher is not None
    if teacher.retired_at is not None:
        return  # the teacher left the roster: nobody is offered their time
    the_period = proposer.config.period(period)
    for entry in entries:
        fresh = proposer.fresh(session, period, teacher.account)
        draft = draft_for(session, proposer.config, the_period, teacher, entry, slot, fresh)
        if draft is None:
            continue
        decision = proposer.handle(session, draft, Offer(slot=slot, origin=Origin.WAITLIST))
        if decision.outcome == APPLIED and decision.after is not None:
            offered(entry, decision.after.id)
            return
