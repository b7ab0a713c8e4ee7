"""The school's records, as staff read them: a meeting's history, the waiting list, one
inbound message (DESIGN §3, §7).

Read models only — they write nothing — shared by the command line and the staff console.
Times come back in the school's zone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ptm_sync.adapters.store import (
    Feedback,
    Guardian,
    Inbound,
    Meeting,
    MeetingGuardian,
    MeetingHistory,
    MeetingNote,
    MeetingStudent,
    Student,
    Teacher,
    WaitlistEntry,
)
from ptm_sync.config.settings import Config
from ptm_sync.core import imip
from ptm_sync.core.errors import NotFoundError, QuarantineReason, Unusable
from ptm_sync.core.imip import limits as inputlimits
from ptm_sync.core.imip.limits import InputLimits

# --- one meeting's history ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Transition:
    """One row of a meeting's append-only history.  ``from_state`` None: the meeting was
    created.  ``old_start`` / ``new_start``: the time before and after (a move when they
    differ).  ``message_id`` / ``inbound_id``: the inbound message that caused it, if any."""

    at: datetime
    actor: str
    from_state: str | None
    to_state: str
    old_start: datetime | None
    new_start: datetime | None
    reason: str
    inbound_id: int | None
    message_id: str

    @property
    def moved(self) -> bool:
        return self.old_start is not None and self.old_start != self.new_start


@dataclass(frozen=True, slots=True)
class Remark:
    """A staff note (``by``: its author) or a family's feedback (``by``: the guardian's
    email, ``by_name`` their name; both "" when not known: feedback recorded before senders
    were checked, or its guardian deleted) on a meeting; ``at`` in the school's zone."""

    at: datetime
    by: str
    text: str
    by_name: str = ""


@dataclass(frozen=True, slots=True)
class MeetingRecord:
    """A meeting as it is now, with its whole history, oldest first; the staff notes and the
    families' feedback, oldest first (staff only: never shown to a family).  ``purged_at``:
    when its personal data was purged (None: kept)."""

    id: int
    uid: str
    period: str
    teacher: str
    guardians: tuple[str, ...]  # the primary first
    students: tuple[str, ...]
    start: datetime
    end: datetime
    state: str
    sequence: int
    origin: str
    history: tuple[Transition, ...]
    notes: tuple[Remark, ...] = ()
    feedback: tuple[Remark, ...] = ()
    purged_at: datetime | None = None


def meeting_record(session: Session, config: Config, meeting_id: int) -> MeetingRecord:
    """Meeting ``meeting_id``, its history, notes and feedback.

    Raises:
        NotFoundError: no such meeting.
    """
    meeting = session.get(Meeting, meeting_id)
    if meeting is None:
        raise NotFoundError(f"no meeting {meeting_id}")
    tz = config.tz
    teacher = session.get(Teacher, meeting.teacher_id)
    guardians = session.scalars(
        select(Guardian.email)
        .join(MeetingGuardian, MeetingGuardian.guardian_id == Guardian.id)
        .where(MeetingGuardian.meeting_id == meeting_id)
        .order_by(MeetingGuardian.guardian_id != meeting.guardian_id, MeetingGuardian.guardian_id)
    )
    students = session.scalars(
        select(Student.student_id)
        .join(MeetingStudent, MeetingStudent.student_id == Student.id)
        .where(MeetingStudent.meeting_id == meeting_id)
        .order_by(Student.student_id)
    )
    rows = session.execute(
        select(MeetingHistory, Inbound.message_id)
        .outerjoin(Inbound, Inbound.id == MeetingHistory.inbound_id)
        .where(MeetingHistory.meeting_id == meeting_id)
        .order_by(MeetingHistory.id)
    )
    history = tuple(
        Transition(
            at=h.at.astimezone(tz),
            actor=h.actor,
            from_state=h.from_state,
            to_state=h.to_state,
            old_start=h.old_start.astimezone(tz) if h.old_start else None,
            new_start=h.new_start.astimezone(tz) if h.new_start else None,
            reason=h.reason,
            inbound_id=h.inbound_id,
            message_id=message_id or "",
        )
        for h, message_id in rows
    )
    notes = tuple(
        Remark(n.at.astimezone(tz), n.author, n.text)
        for n in session.scalars(
            select(MeetingNote)
            .where(MeetingNote.meeting_id == meeting_id)
            .order_by(MeetingNote.at, MeetingNote.id)
        )
    )
    feedback = tuple(
        Remark(f.at.astimezone(tz), email or "", f.text, name or "")
        for f, email, name in session.execute(
            select(Feedback, Guardian.email, Guardian.name)
            .outerjoin(Guardian, Guardian.id == Feedback.guardian_id)
            .where(Feedback.meeting_id == meeting_id, Feedback.text != "")  # "": purged
            .order_by(Feedback.at, Feedback.id)
        )
    )
    return MeetingRecord(
        id=meeting.id,
        uid=meeting.uid,
        period=meeting.period_id,
        teacher=teacher.email if teacher else "",
        guardians=tuple(guardians),
        students=tuple(students),
        start=meeting.start.astimezone(tz),
        end=meeting.end.astimezone(tz),
        state=meeting.state,
        sequence=meeting.sequence,
        origin=meeting.origin,
        history=history,
        notes=notes,
        feedback=feedback,
        purged_at=meeting.purged_at.astimezone(tz) if meeting.purged_at else None,
    )


# --- the waiting list -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Waiting:
    """A family waiting for a teacher: ``position`` from 1 per teacher and period."""

    period: str
    teacher: str
    guardian: str
    students: tuple[str, ...]
    position: int
    since: datetime

    def as_json(self) -> dict[str, Any]:
        """The contract's JSON object (DESIGN §7)."""
        return {
            "teacher": self.teacher,
            "guardian": self.guardian,
            "students": list(self.students),
            "position": self.position,
            "since": self.since.isoformat(),
        }


def waitlist(
    session: Session,
    config: Config,
    *,
    teacher_email: str | None = None,
    period_id: str | None = None,
) -> list[Waiting]:
    """The families waiting (state ``waiting``), per period and teacher in the order they
    will be served: first come, first served.

    Raises:
        NotFoundError: ``teacher_email`` is no teacher in the roster.
        ConfigError: ``period_id`` is no configured period.
    """
    query = (
        select(WaitlistEntry, Teacher.email, Guardian.email)
        .join(Teacher, Teacher.id == WaitlistEntry.teacher_id)
        .join(Guardian, Guardian.id == WaitlistEntry.guardian_id)
        .where(WaitlistEntry.state == "waiting")
        .order_by(WaitlistEntry.period_id, Teacher.email, WaitlistEntry.id)
    )
    if period_id is not None:
        query = query.where(WaitlistEntry.period_id == config.period(period_id).id)
    if teacher_email:
        wanted = teacher_email.strip().lower()
        if session.scalars(select(Teacher.id).where(Teacher.email == wanted)).first() is None:
            raise NotFoundError(f"no teacher {teacher_email!r} in the roster")
        query = query.where(Teacher.email == wanted)
    found = session.execute(query).all()
    ids = {int(s) for entry, _, _ in found for s in entry.students.split(",") if s}
    names = dict(
        session.execute(select(Student.id, Student.student_id).where(Student.id.in_(ids))).all()
    )
    result: list[Waiting] = []
    positions: dict[tuple[str, str], int] = {}
    for entry, teacher, guardian in found:
        key = (entry.period_id, teacher)
        positions[key] = positions.get(key, 0) + 1
        students = [names[int(s)] for s in entry.students.split(",") if s and int(s) in names]
        result.append(
            Waiting(
                period=entry.period_id,
                teacher=teacher,
                guardian=guardian,
                students=tuple(sorted(students)),
                position=positions[key],
                since=entry.since.astimezone(config.tz),
            )
        )
    return result


# --- one inbound message --------------------------------------------------------------------


#: The reasons, short (the table below is read as a table).
Q = QuarantineReason

#: Every reason a message is quarantined for, in plain words (DESIGN §4): what staff read
#: in ``quarantine show`` next to the recorded reason.
REASONS: dict[str, str] = {
    # Over a limit of ptm_sync.core.imip.limits: the message was not read further.
    inputlimits.TOO_LARGE: (
        "the message (over [mail] max_message_bytes), its header section or its calendar"
        " parts were larger than their limit; it was not read"
    ),
    inputlimits.TOO_MANY_PARTS: "more MIME parts or multipart sections than the limit",
    inputlimits.TOO_MANY_COMPONENTS: (
        "more calendar components (events, time zones, alarms) than the limit"
        " ([mail] max_calendar_components)"
    ),
    inputlimits.TOO_MANY_PROPERTIES: "more calendar lines than the limit",
    inputlimits.LINE_TOO_LONG: "a calendar line longer than the limit",
    inputlimits.TOO_DEEP: "MIME parts or calendar components nested deeper than the limit",
    inputlimits.RECURRENCE_TOO_LARGE: (
        "a recurrence that would repeat too often (more often than hourly, or more"
        " instances than the limit) was not expanded"
    ),
    # Not usable as it is.
    Q.NOT_AN_EMAIL: "the stored bytes are not an email",
    Q.INTERNAL_ERROR: "reading the message failed on a bug (see the log); it is kept",
    Q.UNSTORABLE: "the message holds a value the database refuses (e.g. a number out of range)",
    Q.NO_CALENDAR_PART: "an email without a calendar part: a person's message for staff",
    Q.BOUNCE: "a delivery failure report",
    Q.AUTO_REPLY: "an automatic answer (out of office)",
    Q.READ_RECEIPT: "a read receipt",
    Q.BROKEN_ICALENDAR: "the calendar part is not valid iCalendar",
    Q.NO_METHOD: "the calendar part names no iTIP method (METHOD)",
    Q.UNSUPPORTED_METHOD: "the iTIP method is not one this service handles for the meeting",
    Q.UNSUPPORTED_PARTSTAT: "the reply's participation status is not one this service handles",
    Q.NO_VEVENT: "the calendar part holds no event",
    Q.NO_UID: "the event has no UID",
    Q.UID_TOO_LONG: "the event's UID is longer than any this service issues",
    Q.MULTIPLE_UIDS: "the calendar part holds events of more than one meeting",
    Q.NO_ORGANIZER: "the request names no organizer",
    Q.COUNTER_WITHOUT_TIME: "a counter-proposal without a new start and end",
    Q.REQUEST_WITHOUT_TIME: "a booking request without a start and end",
    # Not trusted, or for no meeting of ours.
    Q.UNKNOWN_UID: "no meeting of this service has this UID",
    Q.UID_CONFLICT: "the UID belongs to another meeting",
    Q.WRONG_TOKEN: "the reply was sent to another meeting's address",
    Q.AUTHENTICATION_FAILED: "the mail server found DMARC/DKIM failed",
    Q.SENDER_NOT_ATTENDEE: (
        "the sender is not the invited guardian (an alias may be missing: [mail] aliases)"
    ),
    Q.SENDER_NOT_ORGANIZER: "the sender is not the request's organizer",
    Q.ATTENDEE_NOT_INVITED: "the reply names nobody this service invited",
    Q.STRANGER: "the sender is not a guardian in the roster",
    Q.NOT_FOR_A_BOOKING_ADDRESS: "no teacher's booking address is invited",
    Q.BOOKING_ADDRESS_MANUAL: "booking requests wait for staff (booking address set to manual)",
}

#: Reasons over an input limit for which the calendar part is shown as kept, unread.
_CALENDAR_LIMITS = frozenset(
    {
        inputlimits.TOO_MANY_PARTS,
        inputlimits.TOO_MANY_COMPONENTS,
        inputlimits.TOO_MANY_PROPERTIES,
        inputlimits.LINE_TOO_LONG,
        inputlimits.TOO_DEEP,
        inputlimits.RECURRENCE_TOO_LARGE,
    }
)


#: ``InboundRecord.missing`` of a message that has no calendar part at all.
NO_CALENDAR_PART = "the message has no calendar part"


def explain(reason: str) -> str:
    """``reason`` in plain words; "" for a reason that is no quarantine reason."""
    return REASONS.get(reason, "")


@dataclass(frozen=True, slots=True)
class InboundRecord:
    """One inbound message as staff inspect it.  ``calendar``: its calendar part as text,
    or None — then ``missing`` says why (not kept, cut, over a limit, not an email, or
    :data:`NO_CALENDAR_PART`).
    ``explanation``: the reason in plain words, with what was over a limit if known."""

    id: int
    received_at: datetime
    message_id: str
    sender: str
    subject: str
    outcome: str
    reason: str
    meeting_id: int | None
    calendar: str | None
    missing: str = ""
    explanation: str = ""


def inbound_record(
    session: Session, config: Config, inbound_id: int, limits: InputLimits | None = None
) -> InboundRecord:
    """Inbound message ``inbound_id``, with its calendar part read from the kept message.

    A message quarantined for what its calendar holds (over an input limit) has its
    calendar part shown as it came, never read as iCalendar; one quarantined as
    ``too-large`` was kept cut (its first 64 KiB), so its calendar part is not shown.

    Raises:
        NotFoundError: no such message.
    """
    row = session.get(Inbound, inbound_id)
    if row is None:
        raise NotFoundError(f"no inbound message {inbound_id}")
    limits = limits or InputLimits()
    subject, calendar, missing, detail = "", None, "", ""
    if row.raw is None:
        missing = "the message itself is not kept (only quarantined messages are)"
    elif row.reason == inputlimits.TOO_LARGE:
        missing = (
            f"the message was cut: only its first {inputlimits.HEAD_BYTES // 1024} KiB were"
            " kept, and a calendar cut short is no calendar"
        )
        subject = _subject(row.raw, config, limits)
    else:
        try:
            found = imip.extract(row.raw, tz=config.tz, limits=limits)
        except Unusable as exc:
            missing = f"the stored bytes are not an email ({exc})"
        else:
            subject = found.subject
            if found.reason == row.reason:
                detail = found.detail
            data = found.calendar
            if data is None and row.reason in _CALENDAR_LIMITS:
                try:
                    data = imip.calendar_text(row.raw, limits)
                except Unusable as exc:
                    missing = (
                        f"the message is over an input limit ({exc.reason}), so it is not read"
                    )
            if data is not None:
                calendar = data.decode("utf-8", "replace")
            elif not missing:
                missing = NO_CALENDAR_PART
    explanation = explain(row.reason)
    if explanation and detail:
        explanation = f"{explanation} ({detail})"
    return InboundRecord(
        id=row.id,
        received_at=row.received_at.astimezone(config.tz),
        message_id=row.message_id,
        sender=row.sender,
        subject=subject,
        outcome=row.outcome,
        reason=row.reason,
        meeting_id=row.meeting_id,
        calendar=calendar,
        missing=missing,
        explanation=explanation,
    )


def _subject(raw: bytes, config: Config, limits: InputLimits) -> str:
    """The Subject of a kept message, read from its headers only."""
    try:
        return imip.extract(raw, tz=config.tz, limits=limits).subject
    except Unusable:
        return ""
