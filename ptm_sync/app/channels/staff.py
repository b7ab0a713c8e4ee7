"""Staff acting for families: book (phone, paper form), reschedule, cancel (DESIGN §3, §7).

The use cases behind `book`, `reschedule` and `cancel`.  Each finds the people and the
meeting it names, hands one staff event (:class:`~ptm_sync.core.booking.events.StaffBook`,
:class:`~ptm_sync.core.booking.events.StaffReschedule`,
:class:`~ptm_sync.core.booking.events.StaffCancel`) to the booking core's applier, and returns
the decision.  The core decides (the admission rule with the staff override, the history,
the messages, the waiting list); this module only gathers what it decides on.

A refusal is a :class:`StaffRefused` (a :class:`~ptm_sync.core.errors.UserError`) carrying the
reason and up to three free times; nothing was written then.  Who left the roster (``roster
import --replace``: a teacher, guardian or student with ``retired_at``) is booked nothing and
their meetings are not moved: a :class:`~ptm_sync.core.errors.BookingRefused` says so (a
cancellation stays possible: staff decide what happens to a kept meeting).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from ptm_sync.adapters.store import (
    Database,
    Guardian,
    Link,
    Meeting,
    MeetingGuardian,
    Student,
    Teacher,
)
from ptm_sync.adapters.video.providers import VideoProvider
from ptm_sync.app.booking import load
from ptm_sync.app.booking.apply import Applier
from ptm_sync.app.channels.booking_address import period_for
from ptm_sync.config.settings import Config, PeriodConfig
from ptm_sync.core.booking import disruption
from ptm_sync.core.booking.decide import APPLIED
from ptm_sync.core.booking.events import StaffBook, StaffCancel, StaffReschedule
from ptm_sync.core.booking.values import Decision, MeetingView, Origin
from ptm_sync.core.errors import BookingRefused, NotFoundError
from ptm_sync.core.model import ACTIVE_STATES, Interval

_ACTIVE = [s.value for s in ACTIVE_STATES]


class StaffRefused(BookingRefused):
    """Raised when the booking core refuses a staff change; nothing was written.

    ``reason`` is the core's sentence; ``alternatives`` up to three free times nearest to
    the one asked for (UTC), also named in the message in the school's zone.
    """

    def __init__(
        self, what: str, reason: str, alternatives: Sequence[Interval] = (), *, tz: ZoneInfo
    ) -> None:
        self.reason = reason
        self.alternatives = tuple(alternatives)
        free = ""
        if self.alternatives:
            times = ", ".join(f"{a.start.astimezone(tz):%Y-%m-%d %H:%M}" for a in alternatives)
            free = f"; free times nearby: {times}"
        super().__init__(f"{what}: {reason}{free}")


@dataclass
class DayCancelled:
    """What a bulk cancellation did: the decisions applied, the replacement proposed for
    each cancelled meeting (by its id; a meeting without one put its family on the waiting
    list, ``Decision.waitlist``, unless it left the roster: ``Decision.left``), the
    meetings it left (meeting id, why), and how many guardians were sent the day's
    notice."""

    cancelled: list[Decision] = field(default_factory=list)
    replacements: dict[int, MeetingView] = field(default_factory=dict)
    left: list[tuple[int, str]] = field(default_factory=list)
    notices: int = 0


def book(
    db: Database,
    config: Config,
    *,
    guardian: str,
    teacher: str,
    start: datetime,
    student: str | None = None,
    override: bool = False,
    note: str = "",
    now: datetime,
    video: VideoProvider,
) -> Decision:
    """Book ``teacher`` at ``start`` for ``guardian``'s students with that teacher.

    The meeting is one slot long (the period whose evening holds ``start``); it covers the
    guardian's students the teacher teaches (only ``student`` when given), and every
    guardian of those students with that teacher is a party, unless a student meets
    ``separate``-ly (roster ``meeting_mode``, else the period's), when only ``guardian`` is.
    Unanswered proposals for the same need are superseded by the core.

    Raises:
        NotFoundError: no such teacher, guardian or student.
        BookingRefused: the teacher, the guardian or the student left the roster; the
            guardian has no student with the teacher, or the student already has a
            confirmed meeting with the teacher (reschedule it instead).
        StaffRefused: the core refused the time (busy, off the grid, deadline, caps…).
    """
    applier = Applier(config, now=now, video=video)
    with db.write() as session:
        the_teacher = teacher_by_email(session, teacher)
        the_guardian = _guardian(session, guardian)
        _on_roster(the_teacher, the_guardian)
        students = _students(session, the_guardian, the_teacher, student)
        _on_roster(*students)
        period = period_for(config.periods, Interval(start, start), now)
        slot = _slot(period, start)
        parties = load.parties(session, period, the_guardian, the_teacher, students)
        draft = load.draft(
            config,
            period,
            the_teacher,
            parties,
            students,
            slot,
            fresh=applier.fresh(session, period.id, the_teacher.account),
            origin=Origin.STAFF,
        )
        decision = applier.handle(
            session, draft, StaffBook(slot=slot, override=override, note=note)
        )
        if decision.outcome != APPLIED:
            raise StaffRefused("not booked", decision.reason, decision.alternatives, tz=config.tz)
    return decision


def reschedule(
    db: Database,
    config: Config,
    meeting_id: int,
    start: datetime,
    *,
    override: bool = False,
    note: str = "",
    now: datetime,
    video: VideoProvider,
) -> Decision:
    """Move meeting ``meeting_id`` to ``start`` (one slot of its period).

    Raises:
        NotFoundError: no such meeting.
        BookingRefused: the meeting's teacher, one of its guardians or students left the
            roster.
        StaffRefused: the core refused (the meeting is closed, the time is not free…), or
            the meeting is at that time already.
    """
    applier = Applier(config, now=now, video=video)
    with db.write() as session:
        meeting = _meeting(session, meeting_id)
        teacher_of = session.get(Teacher, meeting.teacher_id)
        assert teacher_of is not None
        _on_roster(
            teacher_of,
            *(link.guardian for link in meeting.guardians),
            *(link.student for link in meeting.students),
        )
        slot = _slot(config.period(meeting.period_id), start)
        event = StaffReschedule(slot=slot, override=override, note=note)
        decision = applier.handle(session, meeting, event)
        if decision.outcome != APPLIED:
            raise StaffRefused("not moved", decision.reason, decision.alternatives, tz=config.tz)
    return decision


def cancel(
    db: Database,
    config: Config,
    meeting_id: int,
    *,
    reason: str = "",
    now: datetime,
    video: VideoProvider,
) -> Decision:
    """Cancel meeting ``meeting_id``; every guardian is told, the teacher's event removed,
    and the freed time offered to the first family waiting for the teacher (the core).

    Raises:
        NotFoundError: no such meeting.
        StaffRefused: the meeting is not proposed or confirmed.
    """
    applier = Applier(config, now=now, video=video)
    with db.write() as session:
        meeting = _meeting(session, meeting_id)
        decision = applier.handle(session, meeting, StaffCancel(reason=reason))
        if decision.outcome != APPLIED:
            raise StaffRefused("not cancelled", decision.reason, tz=config.tz)
    return decision


def cancel_day(
    db: Database,
    config: Config,
    *,
    teacher: str,
    day: date,
    reason: str = "",
    now: datetime,
    video: VideoProvider,
) -> DayCancelled:
    """Cancel every proposed or confirmed meeting of ``teacher`` on ``day`` (the school's
    local date): DESIGN §3 "Bulk disruption".

    Each meeting gets its CANCEL, and its family a replacement time on another evening of
    the period (a new proposal) where one is free and the admission rule allows it, else
    a place on the teacher's waiting list (neither for who left the roster: the core
    decides, :attr:`~ptm_sync.core.booking.values.Context.left`); each guardian gets one
    plain notice about all of their meetings that day.  A family (meetings sharing a
    guardian) is decided in one transaction, with its notice.  The freed times are not
    offered to the waiting list: the teacher cannot meet that day
    (:attr:`StaffCancel.offer_freed`).  A meeting answered meanwhile (closed) is left and
    named in :attr:`DayCancelled.left`.

    Raises:
        NotFoundError: no such teacher.
    """
    applier = Applier(config, now=now, video=video)
    tz = config.tz
    since = datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)
    until = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz).astimezone(UTC)
    with db.read() as session:
        the_teacher = teacher_by_email(session, teacher)
        ids = list(
            session.scalars(
                select(Meeting.id)
                .where(
                    Meeting.teacher_id == the_teacher.id,
                    Meeting.state.in_(_ACTIVE),
                    Meeting.start >= since,
                    Meeting.start < until,
                )
                .order_by(Meeting.start, Meeting.id)
            )
        )
        guardians: dict[int, set[int]] = {meeting_id: set() for meeting_id in ids}
        if ids:
            links = session.execute(
                select(MeetingGuardian.meeting_id, MeetingGuardian.guardian_id).where(
                    MeetingGuardian.meeting_id.in_(ids)
                )
            )
            for meeting_id, guardian_id in links:
                guardians[meeting_id].add(guardian_id)
    result = DayCancelled()
    event = StaffCancel(reason=reason, offer_freed=False, elsewhere=Interval(since, until))
    for family in disruption.families(guardians):
        with db.write() as session:
            applied = []
            for meeting_id in family:
                meeting = session.get(Meeting, meeting_id, with_for_update=True)
                if meeting is None:
                    result.left.append((meeting_id, "gone"))
                    continue
                decision = applier.handle(session, meeting, event)
                if decision.outcome != APPLIED:
                    result.left.append((meeting_id, decision.reason))
                    continue
                applied.append(decision)
                new = disruption.replaced_by(decision)
                if new is not None:
                    made = session.scalar(select(Meeting.id).where(Meeting.uid == new.uid))
                    result.replacements[meeting_id] = replace(new, id=made)
            result.notices += applier.notify_day_cancelled(session, applied, reason=reason)
        result.cancelled += applied
    return result


# --- finding what a command names ------------------------------------------------------------


def teacher_by_email(session: Session, email: str) -> Teacher:
    """The roster's teacher with ``email`` (any case).

    Raises:
        NotFoundError: no such teacher.
    """
    found = session.scalars(select(Teacher).where(Teacher.email == _address(email))).one_or_none()
    if found is None:
        raise NotFoundError(f"no teacher {email!r} in the roster")
    return found


def _guardian(session: Session, email: str) -> Guardian:
    found = session.scalars(select(Guardian).where(Guardian.email == _address(email))).one_or_none()
    if found is None:
        raise NotFoundError(f"no guardian {email!r} in the roster")
    return found


def _on_roster(*people: Teacher | Guardian | Student) -> None:
    """Raises BookingRefused naming the first of ``people`` who left the roster."""
    for person in people:
        if person.retired_at is not None:
            kind, name = (
                ("student", person.student_id)
                if isinstance(person, Student)
                else ("teacher" if isinstance(person, Teacher) else "guardian", person.email)
            )
            raise BookingRefused(
                f"{kind} {name} left the roster (roster import --replace); "
                "import them again to book"
            )


def _meeting(session: Session, meeting_id: int) -> Meeting:
    # Locked: an answer arriving meanwhile waits for this change (or is decided first).
    found = session.get(Meeting, meeting_id, with_for_update=True)
    if found is None:
        raise NotFoundError(f"no meeting {meeting_id}")
    return found


def _address(email: str) -> str:
    return email.strip().lower()


def _students(
    session: Session, guardian: Guardian, teacher: Teacher, student: str | None
) -> list[Student]:
    """The guardian's students the teacher teaches (the roster's links); only ``student``
    when given."""
    theirs = list(
        session.scalars(
            select(Student)
            .join(Link, Link.student_id == Student.id)
            .where(Link.guardian_id == guardian.id, Link.teacher_id == teacher.id)
            .order_by(Student.id)
            .distinct()
        )
    )
    if student is None:
        if not theirs:
            raise BookingRefused(
                f"{guardian.email} is not a guardian of any of {teacher.email}'s students"
            )
        return theirs
    chosen = [s for s in theirs if s.student_id == student.strip()]
    if not chosen:
        exists = session.scalars(select(Student.id).where(Student.student_id == student.strip()))
        if exists.first() is None:
            raise NotFoundError(f"no student {student!r} in the roster")
        raise BookingRefused(
            f"student {student} is not {guardian.email}'s student with {teacher.email}"
        )
    return chosen


def _slot(period: PeriodConfig, start: datetime) -> Interval:
    """One slot of ``period`` from ``start`` (whether it lies on the grid is the core's
    question)."""
    return Interval(start, start + timedelta(minutes=period.slot_minutes)).utc()
