"""Deciding one message that was read: what it asks, handed to the booking engine.

A bounce, an auto-reply or a read receipt is recorded as what it is.  A REQUEST or CANCEL
for a UID we did not issue is a parent organizing with a teacher's booking address
(:mod:`ptm_sync.app.channels.booking_address`).  A REPLY, REFRESH or COUNTER for one of our
meetings is matched to it and its guardian (:mod:`ptm_sync.app.channels.reply_matching`),
becomes the booking event it carries (RFC 5546 §3.2) and is applied; the decision comes
back as what is written on the message's inbound row, in a few words.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from ptm_sync.adapters.store.secret import signing_secret
from ptm_sync.adapters.video.providers import VideoProvider
from ptm_sync.app.booking.apply import Applier
from ptm_sync.app.channels.booking_address import booking_request
from ptm_sync.app.channels.reply_matching import (
    authenticated,
    locked_meeting,
    sent_to_meeting,
    speaker,
)
from ptm_sync.app.channels.reply_record import InboundDecision
from ptm_sync.config.settings import Config
from ptm_sync.core import imip, trust
from ptm_sync.core.booking.decide import APPLIED, QUARANTINED
from ptm_sync.core.booking.events import Answer, Counter, Event, Refresh
from ptm_sync.core.booking.values import Decision
from ptm_sync.core.errors import QuarantineReason, Unusable
from ptm_sync.core.ical import itip
from ptm_sync.core.model import Interval

#: Messages recorded as what they are, never taken for replies (DESIGN §4): the outcome
#: each kind is recorded with.
RECORDED_KINDS = {
    imip.Kind.BOUNCE: "bounce",
    imip.Kind.AUTO_REPLY: "auto_reply",
    imip.Kind.READ_RECEIPT: "read_receipt",
}


def decide(
    session: Session,
    config: Config,
    inbound: imip.Inbound,
    inbound_id: int,
    now: datetime,
    video: VideoProvider,
    released: bool = False,
) -> InboundDecision:
    """Decide the message recorded as ``inbound_id`` in the caller's transaction.

    ``released``: staff released it from quarantine.

    Raises:
        Unusable: the message cannot be used; the caller quarantines it with the reason.
    """
    if inbound.kind in RECORDED_KINDS:
        return InboundDecision(RECORDED_KINDS[inbound.kind], inbound.quarantine_reason or "")
    msg = inbound.require_itip()
    mail = config.mail
    assert mail is not None  # the Applier refuses to exist without it
    applier = Applier(config, now=now, video=video)
    secret = signing_secret(session)
    # Ours are ASCII; the constant-time comparison refuses other text (a TypeError).
    ours = msg.uid.isascii() and trust.uid_is_ours(secret, msg.uid)
    if msg.method in (itip.Method.REQUEST, itip.Method.CANCEL) and not ours:
        # A parent organizes: a request to a teacher's booking address (DESIGN §3).
        authenticated(inbound, mail)
        decided = booking_request(session, applier, inbound, msg, inbound_id, released=released)
        return _recorded(decided)
    if not ours:
        raise Unusable(QuarantineReason.UNKNOWN_UID, "UID not issued by this service")
    meeting, teacher = locked_meeting(session, msg.uid)
    authenticated(inbound, mail)
    if msg.method not in (itip.Method.REPLY, itip.Method.REFRESH, itip.Method.COUNTER):
        raise Unusable(
            QuarantineReason.UNSUPPORTED_METHOD, f"{msg.method} is not handled for our meetings"
        )
    view = applier.view(session, meeting, teacher)
    invited, attendee = speaker(view, msg, inbound.sender or "", mail)
    sent_to_meeting(inbound, mail, secret, meeting.uid)
    event = _event(msg, invited, attendee, inbound_id)
    decided = applier.handle(session, view, event, inbound_id=inbound_id)
    del teacher  # held until here (see locked_meeting)
    return _recorded(decided)


def _event(
    msg: itip.ItipMessage, guardian_id: int, attendee: itip.Attendee, inbound_id: int
) -> Event:
    """The booking event an iTIP message from a guardian carries (RFC 5546 §3.2)."""
    if msg.method == itip.Method.REFRESH:
        return Refresh(guardian_id=guardian_id, inbound_id=inbound_id)
    times = (
        Interval(msg.start, msg.end)
        if msg.start is not None and msg.end is not None and msg.end > msg.start
        else None
    )
    if msg.method == itip.Method.COUNTER:
        if times is None:
            raise Unusable(
                QuarantineReason.COUNTER_WITHOUT_TIME, "a COUNTER must propose a start and an end"
            )
        return Counter(
            guardian_id=guardian_id,
            proposed=times,
            sequence=msg.sequence,
            dtstamp=msg.dtstamp,
            comment=msg.comment or "",
            inbound_id=inbound_id,
        )
    return Answer(
        guardian_id=guardian_id,
        partstat=attendee.partstat,
        sequence=msg.sequence,
        dtstamp=msg.dtstamp,
        comment=msg.comment or "",
        inbound_id=inbound_id,
        # Compared with the meeting's time by the core, after the ordering rule.
        proposed=times if not msg.all_day else None,
    )


def _recorded(decision: Decision) -> InboundDecision:
    """What the booking engine decided, as written on the inbound row; a decision to
    quarantine is raised, so that the caller's savepoint undoes what the message began."""
    if decision.outcome == QUARANTINED:
        raise Unusable(decision.reason, "")
    meeting = decision.after or decision.before
    if meeting is None or meeting.id is None:
        return InboundDecision(decision.outcome, _short(decision))
    return InboundDecision(decision.outcome, _short(decision), meeting.id, meeting.uid)


def _short(decision: Decision) -> str:
    """The reason recorded for the message: what was decided, in a few words."""
    if decision.outcome == APPLIED and decision.rule in (
        "counter-refused",
        "request-refused",
        "request-move-refused",
    ):
        why = decision.notices[0].reason if decision.notices else decision.reason
        what = "counter" if decision.rule == "counter-refused" else "request"
        return f"{what} declined: {why}"
    if decision.outcome != APPLIED or (decision.history is None and decision.after):
        return decision.reason
    return {
        "accept": "accepted",
        "accept-recorded": "accepted",
        "decline": "declined",
        "decline-recorded": "declined; another guardian attends",
        "counter-granted": "counter accepted",
        "refresh": "refresh",
        "tentative": "tentative",
        "accept-late": "accepted after the hold deadline",
        "request-granted": "booked",
        "request-moved": "moved",
        "organizer-cancel": "cancelled",
    }.get(decision.rule, f"{decision.rule}: {decision.reason}")
