"""The booking engine: every state change of a meeting, in one transaction with its effects.

Each public method works inside the caller's write session: it changes the meeting, appends
one row to the append-only history, and enqueues the outbox rows (emails, calendar writes)
the change causes.  Nothing here talks to a server; the outbox delivers later, so a crash at
any point loses nothing (DESIGN §6).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

from icalendar import Calendar
from icalendar.enums import PARTSTAT, STATUS
from sqlalchemy import Table, bindparam, insert, select
from sqlalchemy.orm import Session

from ptm_sync import imip, itip, messages, outbox, trust
from ptm_sync.config import Config, PeriodConfig
from ptm_sync.errors import BookingRefused, PtmError
from ptm_sync.model import ACTIVE_STATES, Actor, Interval, MeetingFormat, MeetingState
from ptm_sync.store import (
    Guardian,
    Meeting,
    MeetingGuardian,
    MeetingHistory,
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
_HISTORY_TABLE: Table = MeetingHistory.__table__  # type: ignore[assignment]
_HISTORY = insert(_HISTORY_TABLE)


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


class Booking:
    """State changes of meetings.  ``now`` is fixed per instance: one instance per event."""

    def __init__(self, config: Config, *, now: datetime, video: VideoProvider) -> None:
        if config.mail is None:
            raise BookingRefused("[mail] is not configured: organizer address needed")
        self.config = config
        self.mail = config.mail
        self.tz = config.tz
        self.now = now
        self.video = video

    # --- reading ------------------------------------------------------------------------

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

    # --- transitions ----------------------------------------------------------------------

    def propose(
        self,
        session: Session,
        *,
        period: PeriodConfig,
        teacher: Teacher,
        guardian: Guardian,
        students: Sequence[Student],
        slot: Interval,
        origin: str = "offer",
        guardians: Sequence[Guardian] = (),
    ) -> Meeting:
        """A new meeting that holds ``slot`` until the hold deadline; sends the invitations.

        ``guardian`` is the primary guardian; ``guardians`` may name every guardian of the
        student(s) for this teacher (the primary among them or not): each is a party of the
        meeting and gets an invitation of their own.

        Raises IntegrityError (at flush) when another active meeting holds the slot: the
        database, not this code, is what makes a double booking impossible.  Raises
        BookingRefused once the period's booking has closed.
        """
        require_open(period, self.now, self.tz)
        domain = self.mail.organizer.rsplit("@", 1)[1]
        uid = trust.make_uid(signing_secret(session), secrets.token_hex(12), domain)
        hold = self.now + timedelta(hours=period.hold_hours)
        if period.booking_closes is not None:
            hold = min(hold, period.booking_closes)
        meeting = Meeting(
            uid=uid,
            period_id=period.id,
            teacher_id=teacher.id,
            guardian_id=guardian.id,
            start=slot.start,
            end=slot.end,
            state=MeetingState.PROPOSED.value,
            sequence=0,
            origin=origin,
            organizer="",
            partstat="NEEDS-ACTION",
            video_url="",
            location=self._location(period, teacher),
            hold_until=hold,
            reproposals=0,
            created_at=self.now,
            updated_at=self.now,
        )
        if period.format != MeetingFormat.IN_PERSON:
            room = self.video.create_room(uid)
            meeting.video_url = room.url if room else ""
        meeting.students = [MeetingStudent(student_id=s.id) for s in students]
        invited = {g.id: g for g in (guardian, *guardians)}  # the primary first, each once
        meeting.guardians = [
            MeetingGuardian(guardian=g, partstat=PARTSTAT.NEEDS_ACTION) for g in invited.values()
        ]
        session.add(meeting)
        session.flush()  # the unique index speaks here
        meeting.organizer = self.organizer(session, meeting)
        self._history(session, meeting, None, Actor.SYSTEM, f"proposed ({origin})")
        self._send_request(session, meeting, STATUS.TENTATIVE, kind="invitation")
        return meeting

    def confirm(
        self,
        session: Session,
        meeting: Meeting,
        *,
        actor: Actor,
        reason: str,
        inbound_id: int | None = None,
        by: MeetingGuardian | None = None,
    ) -> None:
        """proposed → confirmed: the teacher's calendar gets the event; every guardian an
        update.  ``by``: the guardian whose answer this is."""
        self._require(meeting, {MeetingState.PROPOSED})
        before = meeting.state
        meeting.state = MeetingState.CONFIRMED.value
        if by is not None:
            by.partstat = PARTSTAT.ACCEPTED
        meeting.partstat = PARTSTAT.ACCEPTED
        meeting.sequence += 1  # STATUS changed: significant (RFC 5546 §2.1.4)
        meeting.hold_until = None
        meeting.updated_at = self.now
        self._history(session, meeting, before, actor, reason, inbound_id)
        self._calendar(session, meeting)
        self._send_request(session, meeting, STATUS.CONFIRMED, kind="confirmation")

    def decline(
        self,
        session: Session,
        meeting: Meeting,
        *,
        actor: Actor,
        reason: str,
        inbound_id: int | None = None,
        by: MeetingGuardian | None = None,
    ) -> None:
        """The family said no: the slot is released; a confirmed meeting is taken down.

        Every guardian is told.  ``by``: the guardian whose answer this is.
        """
        self._require(meeting, {MeetingState.PROPOSED, MeetingState.CONFIRMED})
        before = meeting.state
        meeting.state = (
            MeetingState.DECLINED.value
            if before == MeetingState.PROPOSED
            else MeetingState.CANCELLED.value
        )
        if by is not None:
            by.partstat = PARTSTAT.DECLINED
        meeting.partstat = PARTSTAT.DECLINED
        meeting.hold_until = None
        meeting.updated_at = self.now
        self._history(session, meeting, before, actor, reason, inbound_id)
        if before == MeetingState.CONFIRMED:
            self._calendar(session, meeting)
        self._send_declined(session, meeting, by)

    def cancel(self, session: Session, meeting: Meeting, *, actor: Actor, reason: str) -> None:
        """Staff or teacher cancels: CANCEL to every guardian, the teacher's event removed."""
        self._require(meeting, {MeetingState.PROPOSED, MeetingState.CONFIRMED})
        before = meeting.state
        meeting.state = MeetingState.CANCELLED.value
        meeting.sequence += 1
        meeting.hold_until = None
        meeting.updated_at = self.now
        self._history(session, meeting, before, actor, reason)
        if before == MeetingState.CONFIRMED:
            self._calendar(session, meeting)
        self._send_cancel(session, meeting, reason)

    def expire(self, session: Session, meeting: Meeting) -> None:
        """No answer by the hold deadline: the slot returns to the pool; every guardian is
        told."""
        self._require(meeting, {MeetingState.PROPOSED})
        before = meeting.state
        meeting.state = MeetingState.EXPIRED.value
        meeting.sequence += 1
        meeting.hold_until = None
        meeting.updated_at = self.now
        self._history(session, meeting, before, Actor.SYSTEM, "no answer by the hold deadline")
        self._send_cancel(session, meeting, "the reserved time was not confirmed in time")

    def move(
        self,
        session: Session,
        meeting: Meeting,
        slot: Interval,
        *,
        actor: Actor,
        reason: str,
        inbound_id: int | None = None,
        by: MeetingGuardian | None = None,
    ) -> None:
        """A new time for the meeting, which is then confirmed (an accepted COUNTER).

        The meeting keeps its UID; SEQUENCE goes up and the old time is kept in the history
        (DESIGN §3).  ``by``, the guardian who asked for the time, accepts it; the other
        guardians' answers were for the old time and are reset to NEEDS-ACTION, as for any
        moved meeting.  Raises IntegrityError at flush when another meeting holds the slot.
        """
        self._require(meeting, {MeetingState.PROPOSED, MeetingState.CONFIRMED})
        before, old_start = meeting.state, meeting.start
        meeting.start, meeting.end = slot.start, slot.end
        meeting.state = MeetingState.CONFIRMED.value
        if by is not None:
            for attendee in meeting.guardians:
                attendee.partstat = PARTSTAT.ACCEPTED if attendee is by else PARTSTAT.NEEDS_ACTION
        meeting.partstat = PARTSTAT.ACCEPTED
        meeting.sequence += 1
        meeting.hold_until = None
        meeting.updated_at = self.now
        session.flush()  # the unique index and the exclusion constraint speak here
        self._history(session, meeting, before, actor, reason, inbound_id, old_start=old_start)
        self._calendar(session, meeting)
        self._send_request(session, meeting, STATUS.CONFIRMED, kind="confirmation")

    def decline_counter(
        self,
        session: Session,
        meeting: Meeting,
        why: str,
        alternatives: Sequence[Interval],
        to: MeetingGuardian,
    ) -> None:
        """DECLINECOUNTER (RFC 5546 §3.2.8): the proposed time is refused; the meeting keeps
        its time; the guardian who asked (``to``) is told why and offered up to three free
        alternatives."""
        parties = self.parties(session, meeting)
        text = messages.counter_declined(
            school=self.config.school.name,
            period_title=self.period(meeting).title,
            meeting=self.facts(parties, meeting),
            tz=self.tz,
            contact=self.config.school.contact,
            why=why,
            alternatives=[(a.start, a.end) for a in alternatives],
        )
        inv = self.invitation(session, meeting, STATUS.TENTATIVE, parties, text, to)
        cal = itip.build_decline_counter(inv, self.tz, text.plain)
        kind = f"declinecounter-{self.now:%Y%m%dT%H%M%S%f}"
        self._email(session, meeting, to.guardian, kind, text, cal, "DECLINECOUNTER")
        self._history(
            session, meeting, meeting.state, Actor.SYSTEM, f"proposed time declined: {why}"
        )

    def refresh(self, session: Session, meeting: Meeting, to: MeetingGuardian) -> None:
        """REFRESH (RFC 5546 §3.2.6): send the guardian who asked (``to``) the current
        REQUEST again, with a fresh DTSTAMP."""
        status = {
            MeetingState.PROPOSED: STATUS.TENTATIVE,
            MeetingState.CONFIRMED: STATUS.CONFIRMED,
        }.get(MeetingState(meeting.state))
        # A kind of its own per REFRESH: the Message-ID (the outbox key) must differ from
        # the first REQUEST or CANCEL of this SEQUENCE, or the outbox keeps the old row.
        kind = f"refresh-{self.now:%Y%m%dT%H%M%S}"
        if status is None:
            self._send_cancel(session, meeting, f"this meeting is {meeting.state}", kind, to)
            return
        self._send_request(session, meeting, status, kind, to)

    def record_answer(
        self,
        session: Session,
        meeting: Meeting,
        attendee: MeetingGuardian,
        partstat: str,
        inbound_id: int | None,
        reason: str = "",
    ) -> None:
        """An answer that changes no state (e.g. TENTATIVE, or one guardian declining while
        another attends) is still part of the record: the guardian's and the family's."""
        attendee.partstat = partstat
        someone_attends = any(a.partstat == PARTSTAT.ACCEPTED for a in meeting.guardians)
        meeting.partstat = PARTSTAT.ACCEPTED if someone_attends else partstat
        meeting.updated_at = self.now
        reason = reason or f"{attendee.guardian.name} replied {partstat}"
        self._history(session, meeting, meeting.state, Actor.PARENT, reason, inbound_id)

    # --- effects --------------------------------------------------------------------------

    def _require(self, meeting: Meeting, allowed: set[MeetingState]) -> None:
        if meeting.state not in allowed:
            raise PtmError(f"meeting {meeting.id} is {meeting.state}")

    def _history(
        self,
        session: Session,
        meeting: Meeting,
        before: str | None,
        actor: Actor,
        reason: str,
        inbound_id: int | None = None,
        old_start: datetime | None = None,
    ) -> None:
        # Append-only: written at once, never loaded back into the session.
        session.execute(
            _HISTORY,
            {
                "meeting_id": meeting.id,
                "at": self.now,
                "actor": actor.value,
                "from_state": before,
                "to_state": meeting.state,
                "old_start": old_start,
                "new_start": meeting.start,
                "reason": reason,
                "inbound_id": inbound_id,
            },
        )

    def _location(self, period: PeriodConfig, teacher: Teacher) -> str:
        if period.format == MeetingFormat.VIDEO:
            return ""
        if period.location:
            return period.location.replace("{room}", teacher.room)
        return f"Room {teacher.room}" if teacher.room else ""

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
        """Every guardian learns that the time is released, and who declined it."""
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
            self._email(session, meeting, attendee.guardian, "declined", text, None, None)

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

    def _calendar(self, session: Session, meeting: Meeting) -> None:
        """Bring the teacher's calendar in line with the meeting (delivered by the outbox)."""
        outbox.enqueue(
            session,
            key=f"calendar:{meeting.uid}:{meeting.sequence}:{meeting.state}",
            kind=outbox.CALENDAR,
            payload={"meeting_id": meeting.id},
            now=self.now,
            meeting_id=meeting.id,
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


def require_open(period: PeriodConfig, now: datetime, tz: tzinfo) -> None:
    """Raise BookingRefused once the period's booking deadline has passed."""
    closes = period.booking_closes
    if closes is not None and now >= closes:
        raise BookingRefused(
            f"booking for {period.id} closed at {closes.astimezone(tz):%Y-%m-%d %H:%M}"
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


def active(meeting: Meeting) -> bool:
    return MeetingState(meeting.state) in ACTIVE_STATES
