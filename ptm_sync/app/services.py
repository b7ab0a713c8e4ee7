"""Wiring shared by the commands and the daemon: outbox delivery, mail passes, expiry."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import cast

from sqlalchemy import Table, select

from ptm_sync.adapters.mail.imap import ImapReader
from ptm_sync.adapters.store import Database, Meeting, Setting
from ptm_sync.adapters.store.insert import insert_new
from ptm_sync.adapters.video.providers import VideoProvider, provider_for
from ptm_sync.app import outbox
from ptm_sync.app.booking import load
from ptm_sync.app.booking.apply import Applier
from ptm_sync.app.channels.offers import invite
from ptm_sync.app.channels.replies import Outcome, process_batch
from ptm_sync.app.outbox.dispatch import THRESHOLD, Dispatcher
from ptm_sync.app.sync import Connectors, opened
from ptm_sync.config.settings import Config
from ptm_sync.core.booking.decide import APPLIED
from ptm_sync.core.booking.events import HoldExpired
from ptm_sync.core.errors import PtmError
from ptm_sync.core.model import MeetingState

_SETTINGS = cast(Table, Setting.__table__)

log = logging.getLogger(__name__)


def video_provider(config: Config) -> VideoProvider:
    return provider_for(config.video)


def flush_outbox(
    db: Database,
    config: Config,
    connectors: Connectors,
    clock: Callable[[], datetime],
    *,
    patience: int = THRESHOLD,
) -> outbox.FlushReport:
    """Deliver every due email and calendar write, each destination on its own (DESIGN §6);
    a destination stops after ``patience`` outages in a row (its rows wait, due)."""
    return Dispatcher(db, config, connectors, clock, patience=patience).flush()


def send_now(
    db: Database, config: Config, clock: Callable[[], datetime]
) -> outbox.FlushReport | None:
    """After a command changed meetings: deliver what it queued at once when ``[mail.smtp]``
    is configured (None when it is not: the daemon or `outbox flush` delivers later)."""
    if config.mail is None or config.mail.smtp is None:
        return None
    with opened(config) as connectors:
        # A person waits for the command: one timeout per server at most, not one per row.
        return flush_outbox(db, config, connectors, clock, patience=1)


def expire_holds(db: Database, config: Config, *, now: datetime, video: VideoProvider) -> int:
    """Proposals nobody answered by their hold deadline return their slot to the pool."""
    with db.read() as session:
        ids = list(
            session.scalars(
                select(Meeting.id).where(
                    Meeting.state == MeetingState.PROPOSED.value,
                    Meeting.hold_until.is_not(None),
                    Meeting.hold_until <= now,
                )
            )
        )
    if not ids:  # nothing to decide (and a school without [mail] has no proposals)
        return 0
    expired = 0
    applier = Applier(config, now=now, video=video)
    for meeting_id in ids:
        with db.write() as session:
            # Locked, then decided: a reply may have been applied since the query.
            meeting = session.get(Meeting, meeting_id, with_for_update=True)
            if meeting is None:
                continue
            if applier.handle(session, meeting, HoldExpired()).outcome == APPLIED:
                expired += 1
    return expired


def fetch_mail(
    db: Database, config: Config, *, clock: Callable[[], datetime], video: VideoProvider
) -> list[Outcome]:
    """One IMAP pass: each message is marked processed only after its effect committed."""
    if config.mail is None or config.mail.imap is None:
        raise PtmError("[mail.imap] is not configured: use `ptm-sync mail deliver` instead")
    with ImapReader(config.mail.imap) as reader:
        return process_inbox(reader, db, config, clock=clock, video=video)


#: Messages fetched and decided together on the IMAP path (DESIGN §9: group commit).
INBOX_BATCH = 50


def process_inbox(
    reader: ImapReader,
    db: Database,
    config: Config,
    *,
    clock: Callable[[], datetime],
    video: VideoProvider,
) -> list[Outcome]:
    """Every new message of an open inbox, marked processed only after it committed.

    Messages are fetched in batches of :data:`INBOX_BATCH` (one FETCH each) and decided in
    one transaction per batch (group commit: one durable commit for the batch, each message
    still all or nothing, :func:`ptm_sync.app.channels.replies.process_batch`), then marked with one
    STORE or MOVE.  A crash before the mark fetches the batch again; each message is then
    recognised by its digest and processed once.
    """
    outcomes: list[Outcome] = []
    for batch in reader.fetch_batches(INBOX_BATCH):
        outcomes += process_batch(db, config, [m.raw for m in batch], now=clock(), video=video)
        reader.mark_processed_many([m.uid for m in batch])
    return outcomes


def open_booking(db: Database, config: Config, *, now: datetime, video: VideoProvider) -> list[str]:
    """Send the invitations of every period whose ``booking_opens`` has come (daemon job).

    Each period is opened once: a settings row records it, so a restart does not invite
    again (and `invite` itself never proposes a need twice).  Families added to the roster
    later are invited by running `ptm-sync invite`.
    """
    done: list[str] = []
    for period in config.periods:
        opens = period.booking_opens
        if opens is None or now < opens or load.rules(config, period).closed(now):
            continue
        key = f"booking_opened:{period.id}"
        with db.read() as session:
            if session.get(Setting, key) is not None:
                continue
        result = invite(db, config, period, now=now, video=video)
        with db.write() as session:  # another replica may have opened it: either row stays
            insert_new(session, _SETTINGS, {"key": key, "value": now.isoformat()}, key="key")
        log.info(
            "booking opened for %s: %d meetings proposed, %d not placed",
            period.id,
            len(result.proposed),
            len(result.plan.unplaced),
        )
        done.append(period.id)
    return done
