"""The inbound pipeline: one email in, one recorded decision out.

`mail deliver` (stdin) and `mail fetch` (IMAP) both call :func:`process`; `quarantine
release` calls :func:`reprocess` on a message kept in quarantine.  The message is read
(:mod:`.reply_reading`), recognised as a duplicate by its digest, checked against the
meeting it names (:mod:`.reply_matching`) and decided by the booking engine
(:mod:`.reply_decision`), or recorded as the answer to a feedback request
(:mod:`.feedback`) — all in one write transaction together with its
:class:`~ptm_sync.adapters.store.Inbound` record (:mod:`.reply_record`), so a message's
effect and the fact that it was processed commit together or not at all.

A message we cannot use changes nothing and goes to quarantine with a short, stable reason.
Bounces, auto-replies and read receipts are recorded as what they are, never mistaken for
replies (DESIGN §4).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.exc import DataError, DBAPIError
from sqlalchemy.orm import Session

from ptm_sync.adapters.store import Database, Inbound
from ptm_sync.adapters.video.providers import VideoProvider
from ptm_sync.app.channels import feedback
from ptm_sync.app.channels.reply_decision import decide
from ptm_sync.app.channels.reply_reading import extract, read
from ptm_sync.app.channels.reply_record import (
    UNSTORABLE,
    InboundDecision,
    Outcome,
    insert,
    quarantine,
    write_decision,
)
from ptm_sync.config.settings import Config
from ptm_sync.core import imip
from ptm_sync.core.booking.decide import DUPLICATE, QUARANTINED
from ptm_sync.core.errors import ConfigError, NotFoundError, Unusable, UserError
from ptm_sync.core.imip.limits import TOO_LARGE
from ptm_sync.ops.crashpoints import crash_point
from ptm_sync.ops.metrics import INBOUND_DECISIONS, PROCESS

log = logging.getLogger(__name__)


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
    messages = [(raw, *read(raw, config)) for raw in raws]
    outcomes: list[Outcome] = []
    with db.write() as session:
        for raw, inbound, early, digest in messages:
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
    inbound, early, digest = read(raw, config)
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
    return quarantine(session, raw, inbound, digest, now, "internal-error")


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
        return quarantine(session, raw, inbound, digest, now, why)
    try:
        with session.begin_nested():
            # The unique digest decides: a message seen before is not recorded again.
            row_id = insert(session, digest, now, inbound, "", None)
            if row_id is None:
                return Outcome(DUPLICATE, "already processed")
            # A reply to a feedback request is recorded as feedback, never decided as iTIP.
            decision = feedback.recorded(session, config, inbound, raw, row_id, now) or decide(
                session, config, inbound, row_id, now, video
            )
            crash_point("after-decide")
            return write_decision(session, raw, row_id, decision)
    except Unusable as exc:
        return quarantine(session, raw, inbound, digest, now, exc.reason)
    except DataError as exc:
        # A value of this message the database refuses (the savepoint is rolled back):
        # refused again on every try, so quarantined, not deferred.  Recorded without its
        # header values, one of which may be the value refused.  No SQL or parameters in
        # the log: they hold a family's data.
        log.warning("inbound message holds a value the database refuses (%s)", _kind(exc))
        return quarantine(session, raw, None, digest, now, UNSTORABLE)


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
        inbound, early = extract(raw, config)
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
        decision = InboundDecision(QUARANTINED, early.reason if early else "not-an-email")
    else:
        try:
            # A savepoint: a message that ends in quarantine changes nothing, even what
            # the decision had begun to change before it found the problem.
            with session.begin_nested():
                decision = feedback.recorded(session, config, inbound, raw, row_id, now) or decide(
                    session, config, inbound, row_id, now, video, released
                )
        except Unusable as exc:
            decision = InboundDecision(QUARANTINED, exc.reason)
    return write_decision(session, raw, row_id, decision)
