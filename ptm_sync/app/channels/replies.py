"""The inbound pipeline: one email in, one recorded decision out.

`mail deliver` (stdin) and `mail fetch` (IMAP) both call :func:`process`; `quarantine
release` calls :func:`reprocess` on a message kept in quarantine.  The message is read
(:mod:`ptm_sync.core.imip.read`), recognised as a duplicate by its digest, checked against the
meeting it names (:mod:`ptm_sync.core.trust`) and applied by the booking engine — all in one write
transaction together with the :class:`~ptm_sync.adapters.store.Inbound` record, so a message's
effect and the fact that it was processed commit together or not at all.

A message we cannot use changes nothing and goes to quarantine with a short, stable reason.
Bounces, auto-replies and read receipts are recorded as what they are, never mistaken for
replies (DESIGN §4).
"""

from __future__ import annotations

import hashlib
import logging
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.exc import DataError, DBAPIError
from sqlalchemy.orm import Session, contains_eager, selectinload

from ptm_sync.adapters.store import (
    Database,
    Inbound,
    Meeting,
    MeetingGuardian,
    MeetingStudent,
    Teacher,
)
from ptm_sync.adapters.store.insert import insert_new_id
from ptm_sync.adapters.store.secret import signing_secret
from ptm_sync.adapters.video.providers import VideoProvider
from ptm_sync.app.booking.apply import Applier
from ptm_sync.app.channels.booking_address import booking_request
from ptm_sync.config.settings import Config, MailConfig
from ptm_sync.core import imip, trust
from ptm_sync.core.booking.decide import APPLIED, DUPLICATE, QUARANTINED
from ptm_sync.core.booking.events import Answer, Counter, Event, Refresh
from ptm_sync.core.booking.values import Decision, MeetingView
from ptm_sync.core.errors import ConfigError, NotFoundError, QuarantineReason, Unusable, UserError
from ptm_sync.core.ical import itip
from ptm_sync.core.imip.limits import HEAD_BYTES, TOO_LARGE, InputLimits
from ptm_sync.core.model import Interval
from ptm_sync.ops.crashpoints import crash_point
from ptm_sync.ops.metrics import INBOUND_DECISIONS, PROCESS

log = logging.getLogger(__name__)

#: Quarantine reason of a message holding a value the database refuses (a number out of
#: range): it would be refused every time, so it is no temporary failure.
UNSTORABLE = QuarantineReason.UNSTORABLE
_INBOUND: Table = Inbound.__table__  # type: ignore[assignment]
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
    meeting_id: int | None = None
    meeting_uid: str | None = None


def digest_of(raw: bytes, inbound: imip.Inbound | None) -> str:
    if inbound is not None and inbound.message_id and inbound.calendar:
        return imip.calendar_digest(inbound)
    return hashlib.sha256(raw).hexdigest()


def input_limits(config: Config) -> InputLimits:
    """The caps on one inbound message: ``[mail] max_message_bytes`` and
    ``max_calendar_components`` (DESIGN §8), the others fixed."""
    if config.mail is None:
        return InputLimits()
    return InputLimits(
        max_message_bytes=config.mail.max_message_bytes,
        max_calendar_components=config.mail.max_calendar_components,
    )


def _extract(raw: bytes, config: Config) -> tuple[imip.Inbound | None, Unusable | None]:
    """The message as read, or what made it unreadable.  Never raises: a message the
    reader fails on would fail every time, so it is quarantined (``internal-error``)."""
    try:
        return imip.extract(raw, tz=config.tz, limits=input_limits(config)), None
    except Unusable as exc:
        return None, exc
    except Exception as exc:  # noqa: BLE001 - a bug in reading: quarantine, never defer
        # Where, not what: the exception's text may quote the message (personal data).
        where = traceback.extract_tb(exc.__traceback__)[-1]
        log.error(
            "inbound message could not be read (%s at %s:%s); kept in quarantine",
            type(exc).__name__,
            where.filename,
            where.lineno,
        )
        return None, Unusable(QuarantineReason.INTERNAL_ERROR, type(exc).__name__)


def _read(raw: bytes, config: Config) -> tuple[imip.Inbound | None, Unusable | None, str]:
    """The message as read, what made it unreadable, and its digest."""
    inbound, early = _extract(raw, config)
    return inbound, early, digest_of(raw, inbound)


def process_batch(
    db: Database,
    config: Config,
    raws: Sequence[bytes],
    *,
    now: datetime,
    video: VideoProvider,
) -> list[Outcome]:
    """Process several messages in one write transaction: one durable commit for all.

    Each message is still all or nothing (a savepoint of its own), is decided on what the
    messages before it did, and is recorded exactly as :func:`process` records it; a bug
    in one keeps that one in quarantine and the others go on.  The IMAP path uses this
    (group commit): its messages are marked processed only after the commit.

    Raises:
        DBAPIError: the database is away; nothing of the batch was kept.
    """
    _require_mail(config)
    read = [(raw, *_read(raw, config)) for raw in raws]
    outcomes: list[Outcome] = []
    with db.write() as session:
        for raw, inbound, early, digest in read:
            try:
                # All or nothing: _record_in keeps each message's writes in a savepoint.
                outcome = _record_in(session, config, raw, inbound, early, digest, now, video)
            except DBAPIError:
                raise
            except Exception:
                log.exception("inbound message could not be processed; kept in quarantine")
                outcome = _internal_error(session, raw, inbound, digest, now)
            outcomes.append(outcome)
            # Each message stands alone: what it loaded is written (its savepoint is
            # released) and need not be tracked for the next ones, which would make every
            # flush of the batch look through all of it.
            session.flush()
            session.expunge_all()
    for outcome in outcomes:
        log.info("inbound message: %s", outcome)
        PROCESS.count(INBOUND_DECISIONS, outcome=outcome.outcome)  # metrics
    return outcomes


def _require_mail(config: Config) -> None:
    """Replies are answered from ``[mail] organizer``: without it no message can be
    decided now (the MTA keeps it, DESIGN §7), which is the config's fault, not the
    message's."""
    if config.mail is None:
        raise ConfigError("[mail] is missing: replies are answered from [mail] organizer")


def process(
    db: Database, config: Config, raw: bytes, *, now: datetime, video: VideoProvider
) -> Outcome:
    """Process one inbound message exactly once; never raises for bad input.

    Raises:
        ConfigError: ``[mail]`` is missing (nothing recorded).
        DBAPIError: the database is away (nothing recorded; try again later).
    """
    _require_mail(config)
    inbound, early, digest = _read(raw, config)
    try:
        return _record(db, config, raw, inbound, early, digest, now, video)
    except DBAPIError:
        raise  # the database is away: the caller retries later (EX_TEMPFAIL, next IMAP pass)
    except Exception:
        # A bug must neither lose the message nor block the ones behind it: it is kept in
        # quarantine, where staff can see it, and processing goes on.
        log.exception("inbound message could not be processed; kept in quarantine")
        with db.write() as session:
            return _internal_error(session, raw, inbound, digest, now)


def _internal_error(
    session: Session, raw: bytes, inbound: imip.Inbound | None, digest: str, now: datetime
) -> Outcome:
    return _quarantine(session, raw, inbound, digest, now, "internal-error")


def _quarantine(
    session: Session,
    raw: bytes,
    inbound: imip.Inbound | None,
    digest: str,
    now: datetime,
    reason: str,
) -> Outcome:
    """Record the message in quarantine with ``reason``, changing nothing else (or, when
    its digest is recorded already, report the duplicate)."""
    if reason == TOO_LARGE:
        raw = raw[:HEAD_BYTES]  # kept for staff to see who sent it, not the whole of it
    row_id = insert_new_id(
        session, _INBOUND, _record_values(digest, now, inbound, reason, raw), key="digest"
    )
    if row_id is None:
        return Outcome(DUPLICATE, "already processed")
    return Outcome(QUARANTINED, reason, None, row_id)


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
        result = _record_in(session, config, raw, inbound, early, digest, now, video)
    crash_point("after-commit")
    log.info("inbound message: %s", result)
    PROCESS.count(INBOUND_DECISIONS, outcome=result.outcome)  # metrics
    return result


def _record_in(
    session: Session,
    config: Config,
    raw: bytes,
    inbound: imip.Inbound | None,
    early: Unusable | None,
    digest: str,
    now: datetime,
    video: VideoProvider,
) -> Outcome:
    """Record the message and its decision in the caller's write transaction.

    One savepoint holds the message's inbound row and all its decision wrote: a message
    that ends in quarantine changes nothing but its own row, and a bug (raised) leaves
    nothing of it behind.  (One savepoint, not one for the row and one for the decision:
    on PostgreSQL each is a round trip, and a message costs about a dozen.)
    """
    if early is not None or inbound is None:
        why = early.reason if early else "not-an-email"
        return _quarantine(session, raw, inbound, digest, now, why)
    try:
        with session.begin_nested():
            # The unique digest decides: a message seen before is not recorded again.
            row_id = insert_new_id(
                session, _INBOUND, _record_values(digest, now, inbound, "", None), key="digest"
            )
            if row_id is None:
                return Outcome(DUPLICATE, "already processed")
            decision = _decide(session, config, inbound, row_id, now, video)
            crash_point("after-decide")
            return _write_decision(session, raw, row_id, decision)
    except Unusable as exc:
        return _quarantine(session, raw, inbound, digest, now, exc.reason)
    except DataError as exc:
        # A value of this message the database refuses (the savepoint is rolled back):
        # refused again on every try, so quarantined, not deferred.  Recorded without its
        # header values, one of which may be the value refused.  No SQL or parameters in
        # the log: they hold a family's data.
        log.warning("inbound message holds a value the database refuses (%s)", _kind(exc))
        return _quarantine(session, raw, None, digest, now, UNSTORABLE)


def _kind(exc: DBAPIError) -> str:
    return type(exc.orig).__name__ if exc.orig is not None else type(exc).__name__


def reprocess(
    db: Database, config: Config, inbound_id: int, *, now: datetime, video: VideoProvider
) -> Outcome:
    """Decide a quarantined message again, after staff fixed the cause (e.g. an alias).

    The same steps as :func:`process`, on the stored raw message, at ``now``; the outcome,
    reason and meeting are recorded on the same inbound row — no new row: its digest is
    there already, and a release must not be taken for a duplicate.  The raw message is
    kept only if it stays in quarantine.

    Raises:
        NotFoundError: no inbound message ``inbound_id``.
        UserError: the message is not in quarantine (released before, or never there),
            or its raw bytes were not kept (purged, or only the head of a message too
            large to read).
    """
    with db.write() as session:
        row = session.get(Inbound, inbound_id, with_for_update=True)
        if row is None:
            raise NotFoundError(f"no inbound message {inbound_id}")
        if row.outcome != QUARANTINED:
            why = f": {row.reason}" if row.reason else ""
            raise UserError(
                f"inbound message {inbound_id} is not in quarantine ({row.outcome}{why})"
            )
        if row.raw is None:
            raise UserError(f"inbound message {inbound_id} was not kept: nothing to reprocess")
        if row.reason == TOO_LARGE:
            raise UserError(
                f"inbound message {inbound_id} was too large: only its head was kept, "
                "nothing to reprocess"
            )
        raw = bytes(row.raw)
        inbound, early = _extract(raw, config)
        # Releasing a request that waited for staff (automate_processing = "none") is staff
        # deciding to take it: it is decided like any request.
        result = _decide_and_record(
            session, config, raw, inbound, early, inbound_id, now, video, released=True
        )
    log.info("inbound message %d released: %s", inbound_id, result)
    return result


def _decide_and_record(
    session: Session,
    config: Config,
    raw: bytes,
    inbound: imip.Inbound | None,
    early: Unusable | None,
    row_id: int,
    now: datetime,
    video: VideoProvider,
    *,
    released: bool = False,
) -> Outcome:
    """Decide the message and record the decision on its inbound row ``row_id``
    (``released``: staff released it from quarantine)."""
    if early is not None or inbound is None:
        decision = _Decision(QUARANTINED, early.reason if early else "not-an-email")
    else:
        try:
            # A savepoint: a message that ends in quarantine changes nothing, even what
            # the decision had begun to change before it found the problem.
            with session.begin_nested():
                decision = _decide(session, config, inbound, row_id, now, video, released)
        except Unusable as exc:
            decision = _Decision(QUARANTINED, exc.reason)
    return _write_decision(session, raw, row_id, decision)


def _write_decision(session: Session, raw: bytes, row_id: int, decision: _Decision) -> Outcome:
    """The decision on the message's inbound row ``row_id``."""
    session.execute(
        _RECORD_DECISION,
        {
            "row_id": row_id,
            "new_outcome": decision.outcome,
            "new_reason": decision.reason,
            "new_meeting_id": decision.meeting_id,
            # Kept for staff to inspect; purged with the meeting data.
            "new_raw": raw if decision.outcome == QUARANTINED else None,
        },
    )
    return Outcome(decision.outcome, decision.reason, decision.meeting_uid, row_id)


def _decide(
    session: Session,
    config: Config,
    inbound: imip.Inbound,
    inbound_id: int,
    now: datetime,
    video: VideoProvider,
    released: bool = False,
) -> _Decision:
    if inbound.kind in RECORDED_KINDS:
        return _Decision(RECORDED_KINDS[inbound.kind], inbound.quarantine_reason or "")
    msg = inbound.require_itip()
    mail = config.mail
    assert mail is not None  # the Applier refuses to exist without it
    applier = Applier(config, now=now, video=video)
    secret = signing_secret(session)
    # Ours are ASCII; the constant-time comparison refuses other text (a TypeError).
    ours = msg.uid.isascii() and trust.uid_is_ours(secret, msg.uid)
    if msg.method in (itip.Method.REQUEST, itip.Method.CANCEL) and not ours:
        # A parent organizes: a request to a teacher's booking address (DESIGN §3).
        _authenticated(inbound, mail)
        decided = booking_request(session, applier, inbound, msg, inbound_id, released=released)
        return _result(decided)
    if not ours:
        raise Unusable(QuarantineReason.UNKNOWN_UID, "UID not issued by this service")
    # The meeting with its guardians and teacher in one query.  FOR UPDATE OF meetings:
    # on PostgreSQL two workers with two answers for one meeting must take turns, or both
    # read "proposed" and both confirm (SQLite's BEGIN IMMEDIATE serialises anyway).  The
    # guardians' rows are locked too: the one who waited then reads their answers as the
    # first left them, not as they were when it began.
    found = session.execute(_MEETING_BY_UID, {"uid": msg.uid}).unique().one_or_none()
    if found is None:
        raise Unusable(QuarantineReason.UNKNOWN_UID, "no meeting with this UID")
    meeting = found[0]
    _authenticated(inbound, mail)
    if msg.method not in (itip.Method.REPLY, itip.Method.REFRESH, itip.Method.COUNTER):
        raise Unusable(
            QuarantineReason.UNSUPPORTED_METHOD, f"{msg.method} is not handled for our meetings"
        )
    view = applier.view(session, meeting)
    invited, attendee = _speaker(view, msg, inbound.sender or "", mail)
    if mail.plus_addressing:
        tokens = [
            token
            for token in (trust.token_from_address(a, mail.organizer) for a in inbound.recipients)
            if token is not None
        ]
        if tokens and not any(
            t.isascii() and trust.token_matches(secret, meeting.uid, t) for t in tokens
        ):
            raise Unusable(
                QuarantineReason.WRONG_TOKEN, "the reply was sent to another meeting's address"
            )
    event = _event(msg, invited, attendee, inbound_id)
    return _result(applier.handle(session, view, event, inbound_id=inbound_id))


def _authenticated(inbound: imip.Inbound, mail: MailConfig) -> None:
    """Where our own receiving server checked DMARC/DKIM, a failure quarantines (DESIGN §4)."""
    if mail.trusted_authserv_id:
        verdict = trust.authentication_verdict(
            inbound.authentication_results, mail.trusted_authserv_id
        )
        if verdict == "fail":
            raise Unusable(
                QuarantineReason.AUTHENTICATION_FAILED, "DMARC/DKIM failed at our mail server"
            )


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


def _result(decision: Decision) -> _Decision:
    if decision.outcome == QUARANTINED:
        raise Unusable(decision.reason, "")
    meeting = decision.after or decision.before
    if meeting is None or meeting.id is None:
        return _Decision(decision.outcome, _short(decision))
    return _Decision(decision.outcome, _short(decision), meeting.id, meeting.uid)


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


def _speaker(
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
