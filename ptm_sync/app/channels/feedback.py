"""Feedback replies: a family's answer to a feedback request, recorded against its meeting
(DESIGN §3).

When a period has no ``feedback_url`` the request asks the family to reply by email; its
Reply-To is ``organizer+feedback-<token>@domain`` with ``[mail] plus_addressing``
(:func:`ptm_sync.core.booking.letters.feedback_address`), else the organizer address itself.
An inbound message is such a reply when it is sent to a feedback address (To, Cc or an
envelope recipient such as Delivered-To), or when In-Reply-To or References name the
request's Message-ID (the outbox row ``email:<Message-ID>`` of the meeting).  Its
text — the plain body without the quoted request, bounded — becomes a
:class:`~ptm_sync.adapters.store.Feedback` row with the guardian who sent it.  Only a
guardian of the meeting may: the sender is compared as an iTIP reply's is (the effective
sender, an alias from ``[mail] aliases`` counting as its guardian: DESIGN §4), and anybody
else's message is quarantined as ``sender-not-attendee``, never recorded.  It is never taken
for an iTIP answer, even with a calendar part; a bounce, an auto-reply or a read receipt is
recorded as what it is, and a message our mail server found forged (DMARC) is quarantined
as any would be.

Feedback is no change of the meeting: nothing here writes the meeting, its history or the
outbox (the applier's, :mod:`ptm_sync.app.booking.apply`).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from ptm_sync.adapters.store import Feedback, Guardian, Inbound, Meeting, MeetingGuardian, Outbox
from ptm_sync.app.channels.reply_matching import authenticated
from ptm_sync.app.channels.reply_record import InboundDecision
from ptm_sync.config.settings import Config, MailConfig
from ptm_sync.core import imip, trust
from ptm_sync.core.booking.decide import DUPLICATE
from ptm_sync.core.booking.letters import FEEDBACK_TAG
from ptm_sync.core.errors import QuarantineReason, Unusable
from ptm_sync.core.imip.reply_text import reply_text, thread_ids

#: The inbound outcome of a feedback reply (``meetings show`` lists its text).
FEEDBACK = "feedback"
#: The Message-IDs of feedback requests start so (:func:`ptm_sync.core.booking.letters.
#: message_id`: the template's name first).
_REQUEST_ID = "<feedback_request."
#: Messages recorded as what they are, before anything else (DESIGN §4).
_NOT_REPLIES = frozenset({imip.Kind.BOUNCE, imip.Kind.AUTO_REPLY, imip.Kind.READ_RECEIPT})


def recorded(
    session: Session,
    config: Config,
    inbound: imip.Inbound,
    raw: bytes,
    inbound_id: int,
    now: datetime,
) -> InboundDecision | None:
    """Record ``raw`` as feedback when it answers a feedback request; None when it does
    not (the pipeline decides it as any other message).

    Raises:
        Unusable: ``authentication-failed`` when our mail server found it forged;
            ``sender-not-attendee`` when its sender is none of the meeting's guardians.
    """
    mail = config.mail
    if mail is None or inbound.kind in _NOT_REPLIES:
        return None
    if inbound.kind is imip.Kind.UNUSABLE and inbound.calendar is None:
        return None  # over a size limit: only its head was read
    meeting_id = _by_address(session, inbound, mail) or _by_thread(session, inbound, raw)
    if meeting_id is None:
        return None
    authenticated(inbound, mail)
    meeting = session.get(Meeting, meeting_id)
    if meeting is None:  # pragma: no cover - the outbox row keeps no deleted meeting's id
        return None
    if meeting.purged_at is not None:
        return InboundDecision(FEEDBACK, "not recorded: the meeting was purged", meeting.id)
    guardian_id = _guardian(session, meeting.id, inbound.sender or "", mail)
    if guardian_id is None:
        raise Unusable(
            QuarantineReason.SENDER_NOT_ATTENDEE, "feedback from somebody not of the meeting"
        )
    if inbound.message_id and _seen(session, meeting.id, inbound.message_id):
        return InboundDecision(DUPLICATE, "feedback recorded already", meeting.id, meeting.uid)
    text = reply_text(raw)
    if not text:
        return InboundDecision(FEEDBACK, "empty: nothing recorded", meeting.id, meeting.uid)
    session.add(
        Feedback(
            meeting_id=meeting.id,
            guardian_id=guardian_id,
            at=now,
            text=text,
            inbound_id=inbound_id,
        )
    )
    return InboundDecision(FEEDBACK, "feedback recorded", meeting.id, meeting.uid)


def _by_address(session: Session, inbound: imip.Inbound, mail: MailConfig) -> int | None:
    """The meeting whose feedback address the message was sent to."""
    for address in inbound.recipients:
        if f"+{FEEDBACK_TAG}" not in address:  # cheap: most messages go elsewhere
            continue
        tag = trust.token_from_address(address, mail.organizer)
        if tag is None or not tag.startswith(FEEDBACK_TAG) or not tag.isascii():
            continue
        found = session.scalar(
            select(Meeting.id).where(Meeting.feedback_token == tag[len(FEEDBACK_TAG) :])
        )
        if found is not None:
            return found
    return None


def _by_thread(session: Session, inbound: imip.Inbound, raw: bytes) -> int | None:
    """The meeting whose feedback request the message answers (In-Reply-To, References)."""
    if _REQUEST_ID.encode() not in raw:  # cheap: most messages name no request
        return None
    named = [inbound.in_reply_to or "", *thread_ids(raw)]
    keys = [f"email:{i}" for i in dict.fromkeys(named) if i.startswith(_REQUEST_ID)]
    if not keys:
        return None
    return session.scalar(
        select(Outbox.meeting_id)
        .where(Outbox.key.in_(keys), Outbox.meeting_id.is_not(None))
        .limit(1)
    )


def _seen(session: Session, meeting_id: int, message_id: str) -> bool:
    """Whether this message (by Message-ID) was recorded as the meeting's feedback already:
    one reply delivered twice, to two of our addresses, is recorded once."""
    return (
        session.scalar(
            select(Feedback.id)
            .join(Inbound, Inbound.id == Feedback.inbound_id)
            .where(Feedback.meeting_id == meeting_id, Inbound.message_id == message_id)
            .limit(1)
        )
        is not None
    )


def _guardian(session: Session, meeting_id: int, sender: str, mail: MailConfig) -> int | None:
    """The meeting's guardian who sent it (or one of their ``[mail] aliases``), else None:
    the comparison an iTIP reply's sender passes
    (:func:`~ptm_sync.app.channels.reply_matching.speaker`)."""
    rows = session.execute(
        select(Guardian.id, Guardian.email)
        .join(MeetingGuardian, MeetingGuardian.guardian_id == Guardian.id)
        .where(MeetingGuardian.meeting_id == meeting_id)
    ).all()
    for guardian_id, email in rows:
        if trust.sender_may_act(sender, email, email, mail.aliases):
            return int(guardian_id)
    return None
