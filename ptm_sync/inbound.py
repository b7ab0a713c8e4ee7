"""The inbound pipeline: one email in, one recorded decision out.

`mail deliver` (stdin) and `mail fetch` (IMAP) both call :func:`process`.  The message is
read (:mod:`ptm_sync.imip`), recognised as a duplicate by its digest, checked against the
meeting it names (:mod:`ptm_sync.trust`) and applied by the booking engine — all in one write
transaction together with the :class:`~ptm_sync.store.Inbound` record, so a message's effect
and the fact that it was processed commit together or not at all.

A message we cannot use changes nothing and goes to quarantine with a short, stable reason.
Bounces, auto-replies and read receipts are recorded as what they are, never mistaken for
replies (DESIGN §4).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime

from icalendar.enums import PARTSTAT
from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, contains_eager

from ptm_sync import imip, itip, trust
from ptm_sync.booking import Booking, attendees, attending, signing_secret
from ptm_sync.config import Config, MailConfig
from ptm_sync.errors import Unusable
from ptm_sync.model import Actor, Interval, MeetingState
from ptm_sync.store import Database, Inbound, Meeting, MeetingGuardian, Teacher
from ptm_sync.store.insert import insert_new_id
from ptm_sync.video import VideoProvider

log = logging.getLogger(__name__)

APPLIED, STALE, DUPLICATE, QUARANTINED = "applied", "stale", "duplicate", "quarantined"
_INBOUND: Table = Inbound.__table__  # type: ignore[assignment]
# Built once: statements built per message cost more than running them.
_MEETING_BY_UID = (
    select(Meeting, Teacher)
    .join(Teacher, Teacher.id == Meeting.teacher_id)
    .join(Meeting.guardians)
    .join(MeetingGuardian.guardian)
    .options(contains_eager(Meeting.guardians).contains_eager(MeetingGuardian.guardian))
    .where(Meeting.uid == bindparam("uid"))
    .with_for_update(of=(Meeting, MeetingGuardian))
)
_RECORD_DECISION = (
    update(_INBOUND)
    .where(_INBOUND.c.id == bindparam("row_id"))
    .values(
        outcome=bindparam("new_outcome"),
        reason=bindparam("new_reason"),
        meeting_id=bindparam("new_meeting_id"),
        raw=bindparam("new_raw"),
    )
)
RECORDED_KINDS = {
    imip.Kind.BOUNCE: "bounce",
    imip.Kind.AUTO_REPLY: "auto_reply",
    imip.Kind.READ_RECEIPT: "read_receipt",
}


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one message."""

    outcome: str
    reason: str = ""
    meeting_uid: str | None = None
    inbound_id: int | None = None

    def __str__(self) -> str:
        detail = f" ({self.reason})" if self.reason else ""
        return f"{self.outcome}{detail}"


@dataclass(frozen=True, slots=True)
class _Decision:
    outcome: str
    reason: str
    meeting: Meeting | None = None


def digest_of(raw: bytes, inbound: imip.Inbound | None) -> str:
    if inbound is not None and inbound.message_id and inbound.calendar:
        return imip.calendar_digest(inbound)
    return hashlib.sha256(raw).hexdigest()


def process(
    db: Database, config: Config, raw: bytes, *, now: datetime, video: VideoProvider
) -> Outcome:
    """Process one inbound message exactly once; never raises for bad input."""
    try:
        inbound: imip.Inbound | None = imip.extract(raw, tz=config.tz)
    except Unusable as exc:
        inbound = None
        early: Unusable | None = exc
    else:
        early = None
    digest = digest_of(raw, inbound)
    try:
        return _record(db, config, raw, inbound, early, digest, now, video)
    except DBAPIError:
        raise  # the database is away: the caller retries later (EX_TEMPFAIL, next IMAP pass)
    except Exception:
        # A bug must neither lose the message nor block the ones behind it: it is kept in
        # quarantine, where staff can see it, and processing goes on.
        log.exception("inbound message could not be processed; kept in quarantine")
        with db.write() as session:
            row_id = insert_new_id(
                session,
                _INBOUND,
                _record_values(digest, now, inbound, "internal-error", raw),
                key="digest",
            )
        return Outcome(QUARANTINED, "internal-error", None, row_id)


def _record_values(
    digest: str, now: datetime, inbound: imip.Inbound | None, reason: str, raw: bytes | None
) -> dict[str, object]:
    return {
        "digest": digest,
        "received_at": now,
        "message_id": (inbound.message_id if inbound else None) or "",
        "sender": (inbound.sender if inbound else None) or "",
        "outcome": QUARANTINED,
        "reason": reason,
        "meeting_id": None,
        "raw": raw,
    }


def _record(
    db: Database,
    config: Config,
    raw: bytes,
    inbound: imip.Inbound | None,
    early: Unusable | None,
    digest: str,
    now: datetime,
    video: VideoProvider,
) -> Outcome:
    """Record the message and its decision in one write transaction."""
    with db.write() as session:
        # The unique digest decides: a message seen before is not recorded again.
        row_id = insert_new_id(
            session, _INBOUND, _record_values(digest, now, inbound, "", None), key="digest"
        )
        if row_id is None:
            return Outcome(DUPLICATE, "already processed")
        if early is not None or inbound is None:
            decision = _Decision(QUARANTINED, early.reason if early else "not-an-email")
        else:
            try:
                # A savepoint: a message that ends in quarantine changes nothing, even
                # what the decision had begun to change before it found the problem.
                with session.begin_nested():
                    decision = _decide(session, config, inbound, row_id, now, video)
            except Unusable as exc:
                decision = _Decision(QUARANTINED, exc.reason)
        session.execute(
            _RECORD_DECISION,
            {
                "row_id": row_id,
                "new_outcome": decision.outcome,
                "new_reason": decision.reason,
                "new_meeting_id": decision.meeting.id if decision.meeting else None,
                # Kept for staff to inspect; purged with the meeting data.
                "new_raw": raw if decision.outcome == QUARANTINED else None,
            },
        )
        uid = decision.meeting.uid if decision.meeting else None
        result = Outcome(decision.outcome, decision.reason, uid, row_id)
    log.info("inbound message: %s", result)
    return result


def _decide(
    session: Session,
    config: Config,
    inbound: imip.Inbound,
    inbound_id: int,
    now: datetime,
    video: VideoProvider,
) -> _Decision:
    if inbound.kind in RECORDED_KINDS:
        return _Decision(RECORDED_KINDS[inbound.kind], inbound.quarantine_reason or "")
    msg = inbound.require_itip()
    secret = signing_secret(session)
    if not trust.uid_is_ours(secret, msg.uid):
        raise Unusable("unknown-uid", "UID not issued by this service")
    # The meeting with its guardians and teacher in one query: the checks below and the
    # booking engine then find them in the session without asking the database again.
    # FOR UPDATE OF meetings: on PostgreSQL two workers with two answers for one meeting
    # must take turns, or both read "proposed" and both confirm (SQLite's BEGIN IMMEDIATE
    # serialises anyway).  The guardians' rows are locked too: the one who waited then
    # reads their answers as the first left them, not as they were when it began.
    found = session.execute(_MEETING_BY_UID, {"uid": msg.uid}).unique().one_or_none()
    if found is None:
        raise Unusable("unknown-uid", "no meeting with this UID")
    meeting = found[0]
    mail = config.mail
    assert mail is not None  # Booking refuses to exist without it
    if mail.trusted_authserv_id:
        verdict = trust.authentication_verdict(
            inbound.authentication_results, mail.trusted_authserv_id
        )
        if verdict == "fail":
            raise Unusable("authentication-failed", "DMARC/DKIM failed at our mail server")
    if msg.method not in (itip.Method.REPLY, itip.Method.REFRESH, itip.Method.COUNTER):
        raise Unusable("unsupported-method", f"{msg.method} is not handled yet")
    invited, attendee = _speaker(meeting, msg, inbound.sender or "", mail)
    if mail.plus_addressing:
        tokens = [
            token
            for token in (trust.token_from_address(a, mail.organizer) for a in inbound.recipients)
            if token is not None
        ]
        if tokens and not any(trust.token_matches(secret, meeting.uid, t) for t in tokens):
            raise Unusable("wrong-token", "the reply was sent to another meeting's address")
    booking = Booking(config, now=now, video=video)
    if msg.method == itip.Method.REFRESH:
        # Only an invited attendee may ask for the current REQUEST (RFC 5546 §3.2.6).
        booking.refresh(session, meeting, invited)
        return _Decision(APPLIED, "refresh", meeting)
    if msg.method == itip.Method.COUNTER:
        return _counter(session, booking, meeting, invited, msg, inbound_id)
    # RFC 5546 §2.1.5, DESIGN §4: ordered per attendee.  An equal (SEQUENCE, DTSTAMP) pair
    # is the same answer sent again; a lower one is an older answer that arrived late.
    last = (invited.reply_sequence, invited.reply_dtstamp)
    if not itip.is_newer(msg.sequence, msg.dtstamp, *last):
        if (msg.sequence, msg.dtstamp) == last:
            return _Decision(DUPLICATE, "the same reply was processed before", meeting)
        return _Decision(STALE, "a newer reply was processed before", meeting)
    invited.reply_sequence, invited.reply_dtstamp = msg.sequence, msg.dtstamp
    meeting.reply_sequence, meeting.reply_dtstamp = msg.sequence, msg.dtstamp
    return _apply_reply(
        session, booking, meeting, invited, attendee.partstat, inbound_id, msg.comment
    )


def _speaker(
    meeting: Meeting, msg: itip.ItipMessage, sender: str, mail: MailConfig
) -> tuple[MeetingGuardian, itip.Attendee]:
    """The guardian of the meeting a message speaks for, and its ATTENDEE.

    The ATTENDEE must be one of the meeting's guardians (or an alias from ``[mail]
    aliases``) and the sender that same guardian (DESIGN §4); any of them may answer.
    """
    parties = [(party, party.guardian.email) for party in attendees(meeting)]
    named = [(party, a) for party, email in parties if (a := msg.attendee(email))]
    if not named:
        only = msg.replying_attendee
        if only is None:
            raise Unusable("attendee-not-invited", "the reply names no attendee we invited")
        named = [
            (party, only)
            for party, email in parties
            if trust.sender_may_act(only.email, email, email, mail.aliases)
        ]
        if not named:
            raise Unusable("attendee-not-invited", "the reply is for somebody we did not invite")
    for party, attendee in named:
        if trust.sender_may_act(sender, attendee.email, party.guardian.email, mail.aliases):
            return party, attendee
    raise Unusable("sender-not-attendee", "the sender is not the invited attendee")


def _counter(
    session: Session,
    booking: Booking,
    meeting: Meeting,
    invited: MeetingGuardian,
    msg: itip.ItipMessage,
    inbound_id: int,
) -> _Decision:
    """Propose new time: granted, or declined with alternatives (:mod:`ptm_sync.counter`)."""
    from ptm_sync.counter import handle_counter

    if msg.start is None or msg.end is None or msg.end <= msg.start:
        raise Unusable("counter-without-time", "a COUNTER must propose a start and an end")
    state = MeetingState(meeting.state)
    if state not in (MeetingState.PROPOSED, MeetingState.CONFIRMED):
        raise Unusable(f"meeting-{state.value}", "proposed a new time for a closed meeting")
    outcome = handle_counter(
        session,
        booking,
        meeting,
        Interval(msg.start, msg.end),
        by=invited,
        inbound_id=inbound_id,
        comment=msg.comment,
    )
    return _Decision(APPLIED, outcome, meeting)


def _apply_reply(
    session: Session,
    booking: Booking,
    meeting: Meeting,
    invited: MeetingGuardian,
    partstat: str,
    inbound_id: int,
    comment: str | None,
) -> _Decision:
    """One guardian's answer.  The first to accept books the meeting for the family; a
    decline releases it only when no other guardian attends."""
    state = MeetingState(meeting.state)
    who = invited.guardian.name
    note = f": {comment}" if comment else ""
    if partstat == PARTSTAT.ACCEPTED:
        if state == MeetingState.CONFIRMED:
            if invited.partstat == PARTSTAT.ACCEPTED:
                return _Decision(DUPLICATE, "already confirmed", meeting)
            reason = f"{who} accepted{note}"
            booking.record_answer(session, meeting, invited, partstat, inbound_id, reason)
            return _Decision(APPLIED, "accepted", meeting)
        if state != MeetingState.PROPOSED:
            raise Unusable(f"meeting-{state.value}", "accepted a meeting that is closed")
        booking.confirm(
            session,
            meeting,
            actor=Actor.PARENT,
            reason=f"{who} accepted{note}",
            inbound_id=inbound_id,
            by=invited,
        )
        return _Decision(APPLIED, "accepted", meeting)
    if partstat == PARTSTAT.DECLINED:
        if state not in (MeetingState.PROPOSED, MeetingState.CONFIRMED):
            return _Decision(STALE, f"meeting already {state.value}", meeting)
        other = attending(meeting, besides=invited)
        if other is not None:
            reason = f"{who} declined; {other.guardian.name} attends{note}"
            booking.record_answer(session, meeting, invited, partstat, inbound_id, reason)
            return _Decision(APPLIED, "declined; another guardian attends", meeting)
        booking.decline(
            session,
            meeting,
            actor=Actor.PARENT,
            reason=f"{who} declined{note}",
            inbound_id=inbound_id,
            by=invited,
        )
        return _Decision(APPLIED, "declined", meeting)
    if partstat in (PARTSTAT.TENTATIVE, PARTSTAT.NEEDS_ACTION):
        booking.record_answer(session, meeting, invited, str(partstat), inbound_id)
        return _Decision(APPLIED, str(partstat).lower(), meeting)
    raise Unusable("unsupported-partstat", f"PARTSTAT {partstat} is not handled")
