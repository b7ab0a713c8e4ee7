"""The booking engine: every state change of a meeting, in one transaction with its effects.

Each public method works inside the caller's write session: it changes the meeting, appends
one row to the append-only history, and enqueues the outbox rows (emails, calendar writes)
the change causes.  Nothing here talks to a server; the outbox delivers later, so a crash at
any point loses nothing (DESIGN §6).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta, tzinfo

from icalendar.enums import PARTSTAT, STATUS
from sqlalchemy import Table, insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ptm_sync import itip, messages, outbox, trust
from ptm_sync.config import PeriodConfig
from ptm_sync.errors import BookingRefused, PtmError, SlotTaken
from ptm_sync.model import ACTIVE_STATES, Actor, Interval, MeetingFormat, MeetingState
from ptm_sync.notices import (
    Notices,
    Parties,
    attendees,
    attending,
    enqueue_email,
    signing_secret,
)
from ptm_sync.store import (
    Guardian,
    Meeting,
    MeetingGuardian,
    MeetingHistory,
    MeetingStudent,
    Student,
    Teacher,
)

__all__ = [
    "Booking",
    "Parties",
    "active",
    "attendees",
    "attending",
    "enqueue_email",
    "require_open",
    "signing_secret",
]

# Built once: statements built per change cost more than running them.
_HISTORY_TABLE: Table = MeetingHistory.__table__  # type: ignore[assignment]
_HISTORY = insert(_HISTORY_TABLE)


def _claim_slot(session: Session) -> None:
    """Write the meeting's time; the database refuses a slot another meeting holds.

    The partial unique index (and on PostgreSQL the exclusion constraint) is what makes a
    double booking impossible; its refusal becomes :class:`SlotTaken`.  Call it inside a
    savepoint when the transaction should go on after a lost race.
    """
    try:
        session.flush()
    except IntegrityError as exc:
        raise SlotTaken("another meeting holds that time") from exc


#: States a family or staff can still change.
_OPEN = {MeetingState.PROPOSED, MeetingState.CONFIRMED}


class Booking(Notices):
    """State changes of meetings.  ``now`` is fixed per instance: one instance per event.

    Built as ``Booking(config, now=..., video=...)`` (see :class:`Notices`).
    """

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

        Raises SlotTaken when another active meeting holds the slot: the
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
        _claim_slot(session)
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
        # STATUS changes: a significant change, SEQUENCE + 1 (RFC 5546 §2.1.4).
        before = self._enter(meeting, MeetingState.CONFIRMED, {MeetingState.PROPOSED}, bump=True)
        if by is not None:
            by.partstat = PARTSTAT.ACCEPTED
        meeting.partstat = PARTSTAT.ACCEPTED
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

        Every guardian gets a CANCEL (SEQUENCE + 1), so the meeting leaves every family
        calendar it was put in.  ``by``: the guardian whose answer this is.
        """
        after = (
            MeetingState.DECLINED
            if meeting.state == MeetingState.PROPOSED
            else MeetingState.CANCELLED
        )
        before = self._enter(meeting, after, _OPEN, bump=True)
        if by is not None:
            by.partstat = PARTSTAT.DECLINED
        meeting.partstat = PARTSTAT.DECLINED
        self._history(session, meeting, before, actor, reason, inbound_id)
        if before == MeetingState.CONFIRMED:
            self._calendar(session, meeting)
        self._send_declined(session, meeting, by)

    def cancel(self, session: Session, meeting: Meeting, *, actor: Actor, reason: str) -> None:
        """Staff or teacher cancels: CANCEL to every guardian, the teacher's event removed."""
        before = self._enter(meeting, MeetingState.CANCELLED, _OPEN, bump=True)
        self._history(session, meeting, before, actor, reason)
        if before == MeetingState.CONFIRMED:
            self._calendar(session, meeting)
        self._send_cancel(session, meeting, reason)

    def expire(self, session: Session, meeting: Meeting) -> None:
        """No answer by the hold deadline: the slot returns to the pool; every guardian is
        told."""
        before = self._enter(meeting, MeetingState.EXPIRED, {MeetingState.PROPOSED}, bump=True)
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
        moved meeting.  Raises SlotTaken when another meeting holds the slot.
        """
        old_start = meeting.start
        before = self._enter(meeting, MeetingState.CONFIRMED, _OPEN, bump=True)
        meeting.start, meeting.end = slot.start, slot.end
        if by is not None:
            for attendee in meeting.guardians:
                attendee.partstat = PARTSTAT.ACCEPTED if attendee is by else PARTSTAT.NEEDS_ACTION
        meeting.partstat = PARTSTAT.ACCEPTED
        _claim_slot(session)
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

    def _enter(
        self, meeting: Meeting, state: MeetingState, allowed: set[MeetingState], *, bump: bool
    ) -> str:
        """Move ``meeting`` to ``state`` from one of ``allowed``; returns the state it left.

        ``bump``: the change is significant to the parents' calendars (SEQUENCE + 1).
        """
        self._require(meeting, allowed)
        before = meeting.state
        meeting.state = state.value
        if bump:
            meeting.sequence += 1
        meeting.hold_until = None
        meeting.updated_at = self.now
        return before

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


def require_open(period: PeriodConfig, now: datetime, tz: tzinfo) -> None:
    """Raise BookingRefused once the period's booking deadline has passed."""
    closes = period.booking_closes
    if closes is not None and now >= closes:
        raise BookingRefused(
            f"booking for {period.id} closed at {closes.astimezone(tz):%Y-%m-%d %H:%M}"
        )


def active(meeting: Meeting) -> bool:
    return MeetingState(meeting.state) in ACTIVE_STATES
