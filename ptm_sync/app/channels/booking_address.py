"""Requests to teachers' booking addresses, taken like an Exchange room mailbox (DESIGN §3).

A parent invites ``book+<teacher_key>@…`` (or the address the roster or ``[mail]
booking_address`` gives) to an event at a free time.  This channel finds the teacher the
request is for, the guardian who sent it and the students that guardian has with that
teacher, and hands a :class:`~ptm_sync.core.booking.events.Request` (or, for the parent's CANCEL,
an :class:`~ptm_sync.core.booking.events.OrganizerCancel`) to the booking core.  The parent stays
ORGANIZER and the meeting keeps the parent's UID; such a meeting is found by that UID and
its organizer.

Strangers never book: a sender who is no guardian in the roster is quarantined unanswered
(``[booking_address] process_external_meeting_messages = false``, the default) or declined
(``true``); a guardian with no student in the teacher's classes is declined.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from sqlalchemy import bindparam, or_, select
from sqlalchemy.orm import Session

from ptm_sync.adapters.store import Guardian, Link, Meeting, Student, Teacher
from ptm_sync.app.booking import load
from ptm_sync.app.booking.apply import Applier
from ptm_sync.config.settings import PeriodConfig
from ptm_sync.core import imip, trust
from ptm_sync.core.booking.addresses import teacher_key_in
from ptm_sync.core.booking.events import OrganizerCancel, Request
from ptm_sync.core.booking.values import Decision, Fresh, Origin
from ptm_sync.core.errors import QuarantineReason, Unusable
from ptm_sync.core.ical import itip
from ptm_sync.core.model import Interval

# Built once: one request runs each of them.
_MEETING_BY_UID = select(Meeting).where(Meeting.uid == bindparam("uid"))
_TEACHERS_BY_ADDRESS = (
    select(Teacher)
    .where(
        or_(
            Teacher.booking_address.in_(bindparam("addresses", expanding=True)),
            Teacher.key.in_(bindparam("keys", expanding=True)),
        )
    )
    .order_by(Teacher.id)
)
_GUARDIANS_BY_EMAIL = (
    select(Guardian)
    .where(Guardian.email.in_(bindparam("emails", expanding=True)))
    .order_by(Guardian.id)
)
_STUDENTS = (
    select(Student)
    .join(Link, Link.student_id == Student.id)
    .join(Teacher, Teacher.id == Link.teacher_id)
    .where(
        Link.guardian_id == bindparam("guardian"),
        Link.teacher_id == bindparam("teacher"),
        # Who left the roster (`roster import --replace`) books nothing new.
        Student.retired_at.is_(None),
        Teacher.retired_at.is_(None),
    )
    .order_by(Student.id)
    .distinct()
)


def booking_request(
    session: Session,
    applier: Applier,
    inbound: imip.Inbound,
    msg: itip.ItipMessage,
    inbound_id: int,
    *,
    released: bool = False,
) -> Decision:
    """Decide a parent's REQUEST or CANCEL sent to a booking address.

    Raises:
        Unusable: the message goes to quarantine — ``not-for-a-booking-address`` (no
            teacher's booking address among its attendees and recipients),
            ``booking-address-manual`` (``automate_processing = "none"``: staff decide,
            and ``released``, staff releasing it from quarantine, is their "yes"),
            ``no-organizer``, ``sender-not-organizer``, ``stranger`` or ``unknown-uid``.
    """
    config = applier.config
    mail = applier.mail
    teacher = _teacher(session, applier, msg, inbound)
    if config.booking_address.automate_processing == "none" and not released:
        raise Unusable(QuarantineReason.BOOKING_ADDRESS_MANUAL, "booking requests wait for staff")
    if msg.organizer is None:
        raise Unusable(QuarantineReason.NO_ORGANIZER, "a request names its organizer")
    sender = inbound.sender or ""
    guardian = _guardian(session, msg.organizer, mail.aliases)
    if guardian is None:
        if not config.booking_address.process_external_meeting_messages:
            raise Unusable(QuarantineReason.STRANGER, "the sender is not a guardian in the roster")
    elif not trust.sender_may_act(sender, msg.organizer, guardian.email, mail.aliases):
        raise Unusable(
            QuarantineReason.SENDER_NOT_ORGANIZER, "the sender is not the request's organizer"
        )
    existing = session.scalars(_MEETING_BY_UID, {"uid": msg.uid}).one_or_none()
    if existing is not None:
        if existing.origin != Origin.BOOKING_ADDRESS.value or existing.teacher_id != teacher.id:
            raise Unusable(QuarantineReason.UID_CONFLICT, "this UID belongs to another meeting")
        view = applier.view(session, existing)
        if guardian is None or view.party(guardian.id) is None:
            raise Unusable(
                QuarantineReason.SENDER_NOT_ORGANIZER, "the request belongs to another family"
            )
        if msg.method == itip.Method.CANCEL:
            cancel = OrganizerCancel(
                guardian_id=guardian.id,
                sequence=msg.sequence,
                dtstamp=msg.dtstamp,
                inbound_id=inbound_id,
            )
            return applier.handle(session, view, cancel, inbound_id=inbound_id)
        request = _request(msg, guardian.id, inbound_id)
        return applier.handle(session, view, request, inbound_id=inbound_id)
    if msg.method == itip.Method.CANCEL:
        raise Unusable(QuarantineReason.UNKNOWN_UID, "a cancellation of nothing we booked")
    if guardian is not None and guardian.retired_at is not None:
        # Left the roster (`roster import --replace`): a stranger to new bookings.
        if not config.booking_address.process_external_meeting_messages:
            raise Unusable(
                QuarantineReason.STRANGER, "the sender is no longer a guardian in the roster"
            )
        guardian = None
    slot = _slot(msg)
    period = period_for(config.periods, slot, applier.now)
    students = _students(session, guardian, teacher) if guardian is not None else []
    person = guardian if guardian is not None else _outsider(msg)
    # Joint students' other guardians are parties too (the teacher's event names them, and
    # they do not book the teacher again); the answers go to the organizer alone.
    people = load.parties(session, period, person, teacher, students) if students else [person]
    draft = load.draft(
        config,
        period,
        teacher,
        people,
        students,
        slot or Interval(applier.now, applier.now),
        fresh=Fresh(
            uid=msg.uid,
            organizer=itip.address_of(msg.organizer),
            video_url=applier.room(period.id, msg.uid, teacher.account),
        ),
        origin=Origin.BOOKING_ADDRESS,
    )
    event = _request(msg, person.id, inbound_id)
    return applier.handle(
        session,
        draft,
        event,
        inbound_id=inbound_id,
        is_guardian=bool(students),
        in_roster=guardian is not None,
    )


def _request(msg: itip.ItipMessage, guardian_id: int, inbound_id: int) -> Request:
    return Request(
        guardian_id=guardian_id,
        uid=msg.uid,
        organizer=itip.address_of(msg.organizer or ""),
        slot=_slot(msg),
        sequence=msg.sequence,
        dtstamp=msg.dtstamp,
        recurring=msg.recurring,
        all_day=msg.all_day,
        summary=msg.summary or "",
        comment=msg.comment or "",
        inbound_id=inbound_id,
    )


def _slot(msg: itip.ItipMessage) -> Interval | None:
    if msg.start is None or msg.end is None or msg.end <= msg.start:
        return None
    return Interval(msg.start, msg.end).utc()


def period_for(
    periods: Sequence[PeriodConfig], slot: Interval | None, now: datetime
) -> PeriodConfig:
    """The period a requested time belongs to: the one whose windows hold its start, else
    the next period still ahead (whose free times the refusal offers), else the last."""
    if slot is not None:
        for period in periods:
            if any(w.start <= slot.start < w.end for w in period.windows):
                return period
    ahead = [p for p in periods if max(w.end for w in p.windows) > now]
    if ahead:
        return min(ahead, key=lambda p: min(w.start for w in p.windows))
    return periods[-1]


def _teacher(
    session: Session, applier: Applier, msg: itip.ItipMessage, inbound: imip.Inbound
) -> Teacher:
    """The teacher whose booking address the request invites (as ATTENDEE or recipient).

    Found by index: an address given in the roster, or the teacher key an address made
    from the pattern carries; the teacher's own booking address must then be that one
    (a roster address replaces the pattern's).
    """
    wanted = {itip.address_of(a.email) for a in msg.attendees}
    wanted |= {itip.address_of(a) for a in inbound.recipients}
    mail = applier.mail
    keys = {
        key
        for address in wanted
        if (key := teacher_key_in(address, mail.booking_address, mail.organizer)) is not None
    }
    found = session.scalars(
        _TEACHERS_BY_ADDRESS, {"addresses": sorted(wanted), "keys": sorted(keys)}
    )
    for teacher in found:
        if load.teacher_info(applier.config, teacher).booking_address in wanted:
            return teacher
    raise Unusable(
        QuarantineReason.NOT_FOR_A_BOOKING_ADDRESS, "no teacher's booking address is invited"
    )


def _guardian(
    session: Session, address: str, aliases: Mapping[str, Sequence[str]]
) -> Guardian | None:
    """The roster's guardian with this address, or whose ``[mail] aliases`` include it."""
    wanted = trust.normalize_address(address)
    candidates = [itip.address_of(address)]
    for email, extra in aliases.items():
        if any(trust.normalize_address(a) == wanted for a in extra):
            candidates.append(itip.address_of(email))
    # The roster stores addresses lower-cased: the index answers.
    found = session.scalars(_GUARDIANS_BY_EMAIL, {"emails": candidates}).first()
    if found is not None:
        return found
    # Gmail spells one mailbox many ways (dots, +tags): compare the normal forms.
    for guardian in session.scalars(select(Guardian)):
        if trust.normalize_address(guardian.email) == wanted:
            return guardian
    return None


def _students(session: Session, guardian: Guardian, teacher: Teacher) -> list[Student]:
    """The guardian's students the teacher teaches (the roster's links)."""
    return list(session.scalars(_STUDENTS, {"guardian": guardian.id, "teacher": teacher.id}))


def _outsider(msg: itip.ItipMessage) -> Guardian:
    """A sender who is no guardian, as a value to address the refusal to (never stored)."""
    address = itip.address_of(msg.organizer or "")
    return Guardian(id=0, email=address, name=msg.organizer_name or address)
