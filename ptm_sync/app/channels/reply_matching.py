"""Matching a message to its meeting and to the guardian who speaks in it (DESIGN §4).

The meeting is found by the UID we issued and locked for the decision; the message must
pass our own mail server's DMARC/DKIM check where one is trusted, name an ATTENDEE we
invited, come from that attendee, and, with plus addressing, be sent to this meeting's
address.  Each check that fails raises :class:`~ptm_sync.core.errors.Unusable` with the
reason the message is quarantined for.
"""

from __future__ import annotations

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session, contains_eager, selectinload

from ptm_sync.adapters.store import Meeting, MeetingGuardian, MeetingStudent, Teacher
from ptm_sync.config.settings import MailConfig
from ptm_sync.core import imip, trust
from ptm_sync.core.booking.values import MeetingView
from ptm_sync.core.errors import QuarantineReason, Unusable
from ptm_sync.core.ical import itip

# Built once: statements built per message cost more than running them.
_MEETING_BY_UID = (
    select(Meeting, Teacher)
    .join(Teacher, Teacher.id == Meeting.teacher_id)
    .join(Meeting.guardians)
    .join(MeetingGuardian.guardian)
    .options(
        contains_eager(Meeting.guardians).contains_eager(MeetingGuardian.guardian),
        selectinload(Meeting.students).joinedload(MeetingStudent.student),
    )
    .where(Meeting.uid == bindparam("uid"))
    .with_for_update(of=(Meeting, MeetingGuardian))
)


def locked_meeting(session: Session, uid: str) -> tuple[Meeting, Teacher]:
    """The meeting with this UID and its teacher, its guardians loaded in the same query,
    the meeting locked.  The caller holds on to the teacher while it decides: the session's
    identity map keeps objects only while they are referenced, and the decision reads the
    teacher again (``session.get``), which is then free instead of a query each time.

    FOR UPDATE OF meetings: on PostgreSQL two workers with two answers for one meeting
    must take turns, or both read "proposed" and both confirm (SQLite's BEGIN IMMEDIATE
    serialises anyway).  The guardians' rows are locked too: the one who waited then reads
    their answers as the first left them, not as they were when it began.

    Raises:
        Unusable: ``unknown-uid`` when no meeting has this UID.
    """
    found = session.execute(_MEETING_BY_UID, {"uid": uid}).unique().one_or_none()
    if found is None:
        raise Unusable(QuarantineReason.UNKNOWN_UID, "no meeting with this UID")
    meeting, teacher = found
    return meeting, teacher


def authenticated(inbound: imip.Inbound, mail: MailConfig) -> None:
    """Where our own receiving server checked DMARC/DKIM, a failure quarantines (DESIGN §4)."""
    if mail.trusted_authserv_id:
        verdict = trust.authentication_verdict(
            inbound.authentication_results, mail.trusted_authserv_id
        )
        if verdict == "fail":
            raise Unusable(
                QuarantineReason.AUTHENTICATION_FAILED, "DMARC/DKIM failed at our mail server"
            )


def sent_to_meeting(inbound: imip.Inbound, mail: MailConfig, secret: bytes, uid: str) -> None:
    """With plus addressing, a reply sent to another meeting's address quarantines.

    The message is refused when its recipients carry reply tokens and none of them is this
    meeting's; one sent to the organizer's address without a token is let through.
    """
    if not mail.plus_addressing:
        return
    tokens = [
        token
        for token in (trust.token_from_address(a, mail.organizer) for a in inbound.recipients)
        if token is not None
    ]
    if tokens and not any(t.isascii() and trust.token_matches(secret, uid, t) for t in tokens):
        raise Unusable(
            QuarantineReason.WRONG_TOKEN, "the reply was sent to another meeting's address"
        )


def speaker(
    meeting: MeetingView, msg: itip.ItipMessage, sender: str, mail: MailConfig
) -> tuple[int, itip.Attendee]:
    """The guardian of the meeting a message speaks for, and its ATTENDEE.

    The ATTENDEE must be one of the meeting's guardians (or an alias from ``[mail]
    aliases``) and the sender that same guardian (DESIGN §4); any of them may answer.
    """
    named = [(p, a) for p in meeting.parties if (a := msg.attendee(p.email))]
    if not named:
        only = msg.replying_attendee
        if only is None:
            raise Unusable(
                QuarantineReason.ATTENDEE_NOT_INVITED, "the reply names no attendee we invited"
            )
        named = [
            (p, only)
            for p in meeting.parties
            if trust.sender_may_act(only.email, p.email, p.email, mail.aliases)
        ]
        if not named:
            raise Unusable(
                QuarantineReason.ATTENDEE_NOT_INVITED, "the reply is for somebody we did not invite"
            )
    for party, attendee in named:
        if trust.sender_may_act(sender, attendee.email, party.email, mail.aliases):
            return party.guardian_id, attendee
    raise Unusable(QuarantineReason.SENDER_NOT_ATTENDEE, "the sender is not the invited attendee")
