"""What the parents are sent: invitations, updates and notices, as outbox rows (I/O free).

:class:`Notices` turns a meeting's current state into the emails its guardians receive —
REQUEST, CANCEL and DECLINECOUNTER calendar messages and plain notices — and enqueues them
in the caller's transaction.  :class:`~ptm_sync.booking.Booking` decides the changes and
calls it.  Each email has a fixed Message-ID, so a redelivery is recognisably the same.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

from icalendar import Calendar
from icalendar.enums import PARTSTAT, STATUS
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from ptm_sync import imip, itip, messages, outbox, trust
from ptm_sync.config import Config, MailConfig, PeriodConfig
from ptm_sync.errors import BookingRefused
from ptm_sync.store import (
    Guardian,
    Meeting,
    MeetingGuardian,
    MeetingStudent,
    Setting,
    Student,
    Teacher,
)
from ptm_sync.video import VideoProvider

SECRET_KEY = "uid_secret"


#: Signing secrets already read, by connection pool (one per database; a disposed engine
#: gets a new pool).  The secret never changes once stored, so it is read once per process.
_SECRETS: weakref.WeakKeyDictionary[Any, bytes] = weakref.WeakKeyDictionary()


def signing_secret(session: Session) -> bytes:
    """The key that signs meeting UIDs and reply tokens; made once, kept in the database."""
    pool = session.get_bind().engine.pool
    known = _SECRETS.get(pool)
    if known is not None:
        return known
    row = session.get(Setting, SECRET_KEY)
    if row is None:
        # Not remembered: this transaction may still roll back.
        row = Setting(key=SECRET_KEY, value=secrets.token_hex(32))
        session.add(row)
        session.flush()
        return bytes.fromhex(row.value)
    secret = _SECRETS[pool] = bytes.fromhex(row.value)
    return secret


# Built once: statements built per change cost more than running them.
_STUDENTS_OF = (
    select(Student)
    .join(MeetingStudent, MeetingStudent.student_id == Student.id)
    .where(MeetingStudent.meeting_id == bindparam("meeting_id"))
    .order_by(Student.id)
)


@dataclass(frozen=True, slots=True)
class Parties:
    """The people a meeting is between, loaded once per change.

    ``guardians``: every guardian invited, each with their own answer, the primary
    (``meetings.guardian_id``) first.
    """

    teacher: Teacher
    guardians: tuple[MeetingGuardian, ...]
    students: tuple[Student, ...]


def attendees(meeting: Meeting) -> list[MeetingGuardian]:
    """The meeting's guardians with their answers: the primary first, then in the order
    the roster stored them."""
    return sorted(
        meeting.guardians, key=lambda a: (a.guardian_id != meeting.guardian_id, a.guardian_id)
    )


def attending(meeting: Meeting, besides: MeetingGuardian) -> MeetingGuardian | None:
    """Another guardian who has accepted the meeting, if any."""
    return next(
        (a for a in attendees(meeting) if a is not besides and a.partstat == PARTSTAT.ACCEPTED),
        None,
    )


class Notices:
    """The emails of meeting changes.  ``now`` is fixed per instance: one per event."""

    def __init__(self, config: Config, *, now: datetime, video: VideoProvider) -> None:
        if config.mail is None:
            raise BookingRefused("[mail] is not configured: organizer address needed")
        self.config = config
        self.mail: MailConfig = config.mail
        self.tz = config.tz
        self.now = now
        self.video = video

    def parties(self, session: Session, meeting: Meeting) -> Parties:
        teacher = session.get(Teacher, meeting.teacher_id)
        assert teacher is not None
        guardians = tuple(attendees(meeting))
        students = tuple(session.scalars(_STUDENTS_OF, {"meeting_id": meeting.id}))
        return Parties(teacher, guardians, students)

    def period(self, meeting: Meeting) -> PeriodConfig:
        return self.config.period(meeting.period_id)

    def organizer(self, session: Session, meeting: Meeting) -> str:
        """The ORGANIZER address: plus-addressed per meeting when configured (DESIGN §4)."""
        if not self.mail.plus_addressing:
            return self.mail.organizer
        token = trust.make_token(signing_secret(session), meeting.uid)
        return trust.organizer_address(self.mail.organizer, token)

    def facts(self, parties: Parties, meeting: Meeting) -> messages.MeetingFacts:
        return messages.MeetingFacts(
            teacher_name=parties.teacher.name,
            students=tuple(s.name.split()[0] for s in parties.students),
            start=meeting.start,
            end=meeting.end,
            video_url=meeting.video_url,
            location=meeting.location,
        )

    def invitation(
        self,
        session: Session,
        meeting: Meeting,
        status: str,
        parties: Parties,
        text: messages.Text,
        attendee: MeetingGuardian,
    ) -> itip.Invitation:
        """The meeting as one guardian's calendar sees it: that guardian is the ATTENDEE,
        with their own answer as PARTSTAT; ``text`` becomes its DESCRIPTION."""
        period = self.period(meeting)
        about = ", ".join(s.name.split()[0] for s in parties.students)
        summary = f"{period.title}: {parties.teacher.name}" + (f" ({about})" if about else "")
        return itip.Invitation(
            uid=meeting.uid,
            sequence=meeting.sequence,
            start=meeting.start,
            end=meeting.end,
            summary=summary,
            organizer=meeting.organizer or self.organizer(session, meeting),
            organizer_name=self.config.school.name,
            attendee=attendee.guardian.email,
            attendee_name=attendee.guardian.name,
            status=status,
            dtstamp=self.now,
            description=text.plain,
            location=meeting.location,
            video_url=meeting.video_url,
            partstat=attendee.partstat,
        )

    def _message_id(self, meeting: Meeting, kind: str, guardian: Guardian) -> str:
        """Fixed per meeting, kind, SEQUENCE and recipient: the outbox key (DESIGN §6)."""
        local, _, domain = meeting.uid.partition("@")
        to = hashlib.sha256(guardian.email.lower().encode()).hexdigest()[:10]
        return f"<{kind}.{meeting.sequence}.{local}.{to}@{domain or 'ptm-sync'}>"

    def _send_request(
        self,
        session: Session,
        meeting: Meeting,
        status: str,
        kind: str,
        to: MeetingGuardian | None = None,
    ) -> None:
        """A REQUEST to each guardian (or only ``to``), each naming its own ATTENDEE."""
        parties = self.parties(session, meeting)
        period, facts = self.period(meeting), self.facts(parties, meeting)
        make = messages.confirmation if status == STATUS.CONFIRMED else messages.invitation
        text = make(
            school=self.config.school.name,
            period_title=period.title,
            meeting=facts,
            tz=self.tz,
            contact=self.config.school.contact,
        )
        for attendee in [to] if to else parties.guardians:
            inv = self.invitation(session, meeting, status, parties, text, attendee)
            cal = itip.build_request(inv, self.tz)
            self._email(session, meeting, attendee.guardian, kind, text, cal, "REQUEST")

    def _send_cancel(
        self,
        session: Session,
        meeting: Meeting,
        reason: str,
        kind: str = "cancel",
        to: MeetingGuardian | None = None,
    ) -> None:
        """A CANCEL to each guardian (or only ``to``)."""
        parties = self.parties(session, meeting)
        text = messages.cancellation(
            school=self.config.school.name,
            period_title=self.period(meeting).title,
            meeting=self.facts(parties, meeting),
            tz=self.tz,
            contact=self.config.school.contact,
            reason=reason,
        )
        for attendee in [to] if to else parties.guardians:
            inv = self.invitation(session, meeting, STATUS.CANCELLED, parties, text, attendee)
            cal = itip.build_cancel(inv, self.tz)
            self._email(session, meeting, attendee.guardian, kind, text, cal, "CANCEL")

    def _send_declined(
        self, session: Session, meeting: Meeting, by: MeetingGuardian | None
    ) -> None:
        """Every guardian learns that the time is released, and who declined it.

        The message is a CANCEL (RFC 5546 §3.2.5): the other guardians' calendars hold the
        invitation or the confirmation, and a plain email would leave it there.
        """
        parties = self.parties(session, meeting)
        facts = self.facts(parties, meeting)
        for attendee in parties.guardians:
            text = messages.declined(
                school=self.config.school.name,
                period_title=self.period(meeting).title,
                meeting=facts,
                tz=self.tz,
                contact=self.config.school.contact,
                page_url=self.page_url(meeting.period_id),
                declined_by=by.guardian.name if by and by is not attendee else "",
            )
            inv = self.invitation(session, meeting, STATUS.CANCELLED, parties, text, attendee)
            cal = itip.build_cancel(inv, self.tz)
            self._email(session, meeting, attendee.guardian, "declined", text, cal, "CANCEL")

    def page_url(self, period_id: str) -> str:
        base = self.config.web.public_url.rstrip("/")
        return f"{base}/periods/{period_id}" if base else ""

    def _email(
        self,
        session: Session,
        meeting: Meeting,
        guardian: Guardian,
        kind: str,
        text: messages.Text,
        cal: Calendar | None,
        method: str | None,
    ) -> None:
        common: dict[str, Any] = {
            "sender": meeting.organizer or self.mail.organizer,
            "sender_name": self.config.school.name,
            "to": guardian.email,
            "to_name": guardian.name,
            "subject": text.subject,
            "text": text.plain,
            "html": text.html,
            "message_id": self._message_id(meeting, kind, guardian),
            "date": self.now,
        }
        msg: EmailMessage
        if cal is not None and method is not None:
            msg = imip.build_invitation_email(cal=cal, method=method, **common)
        else:
            msg = imip.build_plain_email(**common)
        enqueue_email(
            session,
            msg,
            meeting_id=meeting.id,
            now=self.now,
            envelope_from=self.mail.organizer,
            to=[guardian.email],
        )

    def notify_family(
        self,
        session: Session,
        *,
        period: PeriodConfig,
        guardian: Guardian,
        meetings: Sequence[Meeting],
    ) -> None:
        """The one notification email per guardian and period (purpose, dates, how, contact),
        listing ``meetings``: those of the guardian's children proposed now."""
        facts = [self.facts(self.parties(session, m), m) for m in meetings]
        days = sorted({w.start.astimezone(self.tz).date() for w in period.windows})
        dates = [f"{day:%A %d %B}" for day in days]  # in date order, not by weekday name
        holds = [m.hold_until for m in meetings if m.hold_until]
        text = messages.notification(
            school=self.config.school.name,
            period_title=period.title,
            guardian_name=guardian.name,
            dates=dates,
            meetings=facts,
            tz=self.tz,
            contact=self.config.school.contact,
            hold_until=min(holds) if holds else None,
            page_url=self.page_url(period.id),
        )
        domain = self.mail.organizer.rsplit("@", 1)[1]
        # One notification per family and set of meetings: a later `invite` that adds
        # meetings for the family tells it about them; a repeated one sends nothing twice.
        uids = ",".join(sorted(m.uid for m in meetings))
        digest = trust.make_token(signing_secret(session), f"{period.id}/{guardian.email}/{uids}")
        msg = imip.build_plain_email(
            sender=self.mail.organizer,
            sender_name=self.config.school.name,
            to=guardian.email,
            to_name=guardian.name,
            subject=text.subject,
            text=text.plain,
            html=text.html,
            message_id=f"<notify.{period.id}.{digest}@{domain}>",
            date=self.now,
        )
        enqueue_email(
            session,
            msg,
            meeting_id=None,
            now=self.now,
            envelope_from=self.mail.organizer,
            to=[guardian.email],
        )


def enqueue_email(
    session: Session,
    msg: EmailMessage,
    *,
    meeting_id: int | None,
    now: datetime,
    envelope_from: str,
    to: Sequence[str],
) -> None:
    """An email as an outbox row; its Message-ID is the idempotency key."""
    if "Date" not in msg:
        msg["Date"] = format_datetime(now)
    raw = msg.as_bytes()
    outbox.enqueue(
        session,
        key=f"email:{msg['Message-ID']}",
        kind=outbox.EMAIL,
        payload={
            "from": envelope_from,
            "to": list(to),
            "raw": base64.b64encode(raw).decode("ascii"),
        },
        now=now,
        meeting_id=meeting_id,
    )
