"""One sync pass: each teacher's calendar → the local mirror and busy times.

Network calls happen outside database transactions; each teacher's result is then applied
in one short write transaction, so a failure halfway leaves every other teacher's state
intact and the next pass resumes from the last stored sync token (vdirsyncer's "plan, then
act": the change set is the plan, the transaction the act).

For connectors that mirror events (CalDAV, ICS feeds) busy times are computed locally from
the events with :func:`ptm_sync.busy.busy_times`; for the others the server's free/busy
answer is stored as it comes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from connectors.base import (
    CalendarConnector,
    CalendarRef,
    Capability,
    ChangeSet,
    Horizon,
    open_connector,
)
from ptm_sync import busy as busy_mod
from ptm_sync import teacher_changes
from ptm_sync.config import Config
from ptm_sync.errors import ConfigError, NotFoundError, PtmError, SyncTokenInvalid
from ptm_sync.model import Busy
from ptm_sync.periods import ensure_periods, horizon
from ptm_sync.store import BusyTime, Calendar, CalendarEvent, Database, Teacher
from ptm_sync.video import VideoProvider, provider_for

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SyncResult:
    """What one teacher's pass did."""

    teacher: str
    changed: int = 0
    removed: int = 0
    full: bool = False
    busy: int = 0
    error: str = ""
    followed: int = 0  # changes the teacher made to our events, decided (teacher_changes)


class Connectors:
    """Opened connectors by account id, kept for the life of a pass (or of the daemon)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.horizon: Horizon = horizon(config)
        self._open: dict[str, CalendarConnector] = {}

    def get(self, account_id: str) -> CalendarConnector:
        if account_id not in self._open:
            account = self.config.account(account_id)
            self._open[account_id] = open_connector(account, self.config.tz, self.horizon)
        return self._open[account_id]

    def provide(self, account_id: str, connector: CalendarConnector) -> None:
        """Use ``connector``, opened by the caller, for ``account_id`` (an in-memory one in
        pure tests; a caller that opened the account itself).  It is closed with the rest."""
        self._open[account_id] = connector

    def close(self) -> None:
        for connector in self._open.values():
            with suppress(PtmError):  # closing is best effort
                connector.close()
        self._open.clear()


@contextmanager
def opened(config: Config) -> Iterator[Connectors]:
    connectors = Connectors(config)
    try:
        yield connectors
    finally:
        connectors.close()


def sync(
    db: Database,
    config: Config,
    connectors: Connectors,
    *,
    now: datetime,
    teacher_email: str | None = None,
    video: VideoProvider | None = None,
) -> list[SyncResult]:
    """Sync every teacher's calendar (or one teacher's), returning one result per teacher.

    Where the calendar is mirrored, the changes the teacher made to the events of our
    meetings are then decided (:mod:`ptm_sync.teacher_changes`); ``video`` makes the rooms
    of the new proposals that follow a deleted meeting.
    """
    video = video or provider_for(config.video)
    with db.write() as session:
        ensure_periods(session, config)
    with db.read() as session:
        query = select(Teacher).order_by(Teacher.email)
        if teacher_email:
            query = query.where(Teacher.email == teacher_email.strip().lower())
        teachers = list(session.scalars(query))
    if teacher_email and not teachers:
        raise NotFoundError(f"no teacher {teacher_email!r} in the roster")
    known = {a.id for a in config.accounts}
    for account_id in sorted({t.account for t in teachers} & known):
        # Open each account first: a secret that cannot be read (an unset *_env) is a
        # configuration error that stops the pass with one line, not one failure per teacher.
        try:
            connectors.get(account_id)
        except ConfigError:
            raise
        except PtmError:
            pass  # reported for each of the account's teachers below
    results = []
    for teacher in teachers:
        try:
            result = _sync_teacher(db, config, connectors, teacher, now)
            if Capability.MIRRORED in connectors.get(teacher.account).capabilities:
                followed = teacher_changes.follow(db, config, teacher.id, now=now, video=video)
                result = replace(result, followed=followed)
            results.append(result)
        except PtmError as exc:
            log.warning("sync of %s failed: %s", teacher.email, exc)
            _record_error(db, teacher, str(exc))
            results.append(SyncResult(teacher.email, error=str(exc)))
    return results


def _calendar_row(session: Session, teacher: Teacher, url: str) -> Calendar:
    row = session.scalars(select(Calendar).where(Calendar.teacher_id == teacher.id)).one_or_none()
    if row is None:
        row = Calendar(teacher_id=teacher.id, account=teacher.account, url=url)
        session.add(row)
        session.flush()
    elif row.account != teacher.account or row.url != url:
        # The roster moved the teacher to another calendar: forget the old mirror.
        session.execute(delete(CalendarEvent).where(CalendarEvent.calendar_id == row.id))
        row.account, row.url, row.sync_token, row.ctag = teacher.account, url, None, None
    return row


def _sync_teacher(
    db: Database, config: Config, connectors: Connectors, teacher: Teacher, now: datetime
) -> SyncResult:
    account = config.account(teacher.account)
    connector = connectors.get(account.id)
    ref = CalendarRef(account.id, teacher.calendar)
    span = connectors.horizon
    with db.read() as session:
        row = session.scalars(
            select(Calendar).where(Calendar.teacher_id == teacher.id)
        ).one_or_none()
        same_place = row is not None and (row.account, row.url) == (account.id, teacher.calendar)
        same_span = row is not None and (row.window_start, row.window_end) == (span.start, span.end)
        token = row.sync_token if row is not None and same_place and same_span else None

    if Capability.MIRRORED not in connector.capabilities:
        found = connector.free_busy([ref], span.start, span.end).get(ref, [])
        with db.write() as session:
            cal = _calendar_row(session, teacher, teacher.calendar)
            _replace_server_busy(session, teacher.id, found)
            cal.window_start, cal.window_end, cal.synced_at, cal.error = (
                span.start,
                span.end,
                now,
                None,
            )
        return SyncResult(teacher.email, full=True, busy=len(found))

    try:
        changes = connector.changes(ref, token)
    except SyncTokenInvalid:
        log.info("sync token of %s no longer valid: full resync", teacher.email)
        changes = connector.changes(ref, None)
    with db.write() as session:
        cal = _calendar_row(session, teacher, teacher.calendar)
        count = _apply(session, cal, teacher.id, changes, span, config.tz)
        cal.sync_token = changes.token
        cal.window_start, cal.window_end, cal.synced_at, cal.error = (
            span.start,
            span.end,
            now,
            None,
        )
    return SyncResult(
        teacher.email,
        changed=len(changes.changed),
        removed=len(changes.removed),
        full=changes.full,
        busy=count,
    )


def _apply(
    session: Session,
    cal: Calendar,
    teacher_id: int,
    changes: ChangeSet,
    span: Horizon,
    tz: ZoneInfo,
) -> int:
    """Apply a change set to the mirror; return the number of busy intervals written."""
    existing = {
        e.href: e
        for e in session.scalars(select(CalendarEvent).where(CalendarEvent.calendar_id == cal.id))
    }
    gone: Iterable[str] = changes.removed
    if changes.full:
        listed = {c.href for c in changes.changed}
        gone = [href for href in existing if href not in listed]
    for href in gone:
        event = existing.pop(href, None)
        if event is not None:
            session.delete(event)
    written = 0
    for remote in changes.changed:
        event = existing.get(remote.href)
        if event is not None and event.etag == remote.etag and remote.etag is not None:
            continue  # unchanged object in a full listing
        if event is None:
            event = CalendarEvent(calendar_id=cal.id, href=remote.href, etag=remote.etag)
            session.add(event)
        event.etag, event.ics = remote.etag, remote.ics
        event.busy.clear()
        try:
            event.uid = busy_mod.event_uid(remote.ics)
            intervals = busy_mod.busy_times(remote.ics, span.start, span.end, tz)
        except PtmError as exc:
            # One bad object must not stop the teacher's sync; it blocks nothing.
            # The reason's class only: its text can quote the teacher's private event.
            log.warning("ignoring unreadable event %s (%s)", remote.href, type(exc).__name__)
            event.uid = event.uid or ""
            continue
        for b in intervals:
            event.busy.append(
                BusyTime(teacher_id=teacher_id, start=b.start, end=b.end, tentative=b.tentative)
            )
        written += len(intervals)
    return written


def _replace_server_busy(session: Session, teacher_id: int, found: list[Busy]) -> None:
    session.execute(
        delete(BusyTime).where(BusyTime.teacher_id == teacher_id, BusyTime.event_id.is_(None))
    )
    for b in found:
        session.add(
            BusyTime(teacher_id=teacher_id, start=b.start, end=b.end, tentative=b.tentative)
        )


def _record_error(db: Database, teacher: Teacher, message: str) -> None:
    try:
        with db.write() as session:
            row = session.scalars(
                select(Calendar).where(Calendar.teacher_id == teacher.id)
            ).one_or_none()
            if row is not None:
                row.error = message[:2000]
    except PtmError:  # pragma: no cover - the error itself was already logged
        pass
