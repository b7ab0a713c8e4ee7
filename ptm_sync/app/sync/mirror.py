"""The local mirror of a teacher's calendar: its ``calendars`` row, the changes since the
stored sync token, and the mirrored events with the busy times expanded from them.

The calendars of connectors that mirror events (CalDAV, ICS feeds) are read here; the server
free/busy systems (:mod:`.free_busy`) apply their change feed here to follow the events we
wrote.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable
from datetime import datetime
from typing import cast
from zoneinfo import ZoneInfo

from sqlalchemy import Table, delete, select
from sqlalchemy.orm import Session

from connectors.base import CalendarConnector, CalendarRef, ChangeSet, Horizon
from ptm_sync.adapters.store import BusyTime, Calendar, CalendarEvent, Database, Teacher
from ptm_sync.adapters.store.insert import insert_new
from ptm_sync.app.sync.accounts import Connectors
from ptm_sync.app.sync.result import SyncResult
from ptm_sync.config.settings import Config
from ptm_sync.core.errors import PtmError, SyncTokenInvalid
from ptm_sync.core.ical import busy as busy_mod

# The pass's one logger, named as before the split (the daemon's log, REPORTED_BY_COMMANDS).
log = logging.getLogger("ptm_sync.app.sync")
_CALENDARS = cast(Table, Calendar.__table__)


def calendar_row(session: Session, teacher: Teacher, url: str) -> Calendar:
    """The teacher's calendar row, made on first use with ``INSERT … ON CONFLICT DO
    NOTHING`` (a sync pass of the daemon and one by hand may meet here) and read back."""
    query = select(Calendar).where(Calendar.teacher_id == teacher.id)
    row = session.scalars(query).one_or_none()
    if row is None:
        values = {"teacher_id": teacher.id, "account": teacher.account, "url": url}
        insert_new(session, _CALENDARS, values, key="teacher_id")
        return session.scalars(query).one()
    if row.account != teacher.account or row.url != url:
        # The roster moved the teacher to another calendar: forget the old mirror.
        session.execute(delete(CalendarEvent).where(CalendarEvent.calendar_id == row.id))
        row.account, row.url, row.sync_token, row.ctag = teacher.account, url, None, None
        row.owner_addresses = None
    return row


def changes_since_last(
    db: Database, connector: CalendarConnector, teacher: Teacher, span: Horizon
) -> ChangeSet:
    """The teacher's calendar's changes since the stored sync token; everything when there
    is none, when the token is for another calendar or window, or when the server no longer
    takes it (``SyncTokenInvalid``: a full resync)."""
    with db.read() as session:
        row = session.scalars(
            select(Calendar).where(Calendar.teacher_id == teacher.id)
        ).one_or_none()
    here = (teacher.account, teacher.calendar, span.start, span.end)
    same = row is not None and (row.account, row.url, row.window_start, row.window_end) == here
    token = row.sync_token if row is not None and same else None
    ref = CalendarRef(teacher.account, teacher.calendar)
    try:
        return connector.changes(ref, token)
    except SyncTokenInvalid:
        log.info("sync token of %s no longer valid: full resync", teacher.email)
        return connector.changes(ref, None)


def sync_teacher(
    db: Database, config: Config, connectors: Connectors, teacher: Teacher, now: datetime
) -> SyncResult:
    """Read the changes of ``teacher``'s mirrored calendar into the mirror and their busy
    times, in one write transaction after the network read."""
    account = config.account(teacher.account)
    connector = connectors.get(account.id)
    span = connectors.horizon
    changes = changes_since_last(db, connector, teacher, span)
    with db.write() as session:
        cal = calendar_row(session, teacher, teacher.calendar)
        known = _addresses(cal.owner_addresses)
        named = frozenset(a.lower() for a in changes.owner_addresses)
        if named and named != known:
            # The server named the owner's addresses (anew): every stored event is read
            # again with them, not only the changed ones (a declined invitation frees time).
            cal.owner_addresses = " ".join(sorted(named))
            _reexpand(session, cal, teacher, span, config.tz)
        owner = {teacher.email, *_addresses(cal.owner_addresses)}
        count = apply_changes(session, cal, teacher.id, changes, span, config.tz, owner=owner)
        cal.sync_token = changes.token
        cal.window_start, cal.window_end, cal.synced_at, cal.error = (
            span.start,
            span.end,
            now,
            None,
        )
        cal.problem = None
    return SyncResult(
        teacher.email,
        changed=len(changes.changed),
        removed=len(changes.removed),
        full=changes.full,
        busy=count,
    )


def apply_changes(
    session: Session,
    cal: Calendar,
    teacher_id: int,
    changes: ChangeSet,
    span: Horizon,
    tz: ZoneInfo,
    *,
    owner: Collection[str] = (),
) -> int:
    """Apply a change set to the mirror; return the number of busy intervals written.

    ``owner``: the teacher's addresses (roster email, the server's calendar-user addresses):
    an invitation they declined is free (:func:`ptm_sync.core.ical.busy.busy_times`)."""
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
        written += _expand(event, teacher_id, span, tz, owner)
    return written


def _expand(
    event: CalendarEvent, teacher_id: int, span: Horizon, tz: ZoneInfo, owner: Collection[str]
) -> int:
    """(Re)write the busy intervals of one mirrored event from its iCalendar text; how many."""
    event.busy.clear()
    try:
        event.uid = busy_mod.event_uid(event.ics)
        intervals = busy_mod.busy_times(event.ics, span.start, span.end, tz, owner=owner)
    except PtmError as exc:
        # One bad object must not stop the teacher's sync; it blocks nothing.
        # The reason's class only: its text can quote the teacher's private event.
        log.warning("ignoring unreadable event %s (%s)", event.href, type(exc).__name__)
        event.uid = event.uid or ""
        return 0
    for b in intervals:
        event.busy.append(
            BusyTime(teacher_id=teacher_id, start=b.start, end=b.end, tentative=b.tentative)
        )
    return len(intervals)


def _reexpand(
    session: Session, cal: Calendar, teacher: Teacher, span: Horizon, tz: ZoneInfo
) -> None:
    """Every stored event of ``cal`` expanded again with the owner's current addresses."""
    owner = {teacher.email, *_addresses(cal.owner_addresses)}
    for event in session.scalars(select(CalendarEvent).where(CalendarEvent.calendar_id == cal.id)):
        _expand(event, teacher.id, span, tz, owner)


def _addresses(stored: str | None) -> frozenset[str]:
    return frozenset((stored or "").split())
