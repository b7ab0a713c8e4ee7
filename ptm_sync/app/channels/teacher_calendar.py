"""Teacher-side changes: what a sync found done to the events we wrote (DESIGN §3).

After a teacher's mirror is brought up to date, each confirmed meeting whose event we wrote
is compared with what the calendar now holds:

* the event is at another time → :class:`~ptm_sync.core.booking.events.TeacherMoved` (the
  parents get a REQUEST with the new time, PARTSTAT reset to NEEDS-ACTION);
* the event is gone or cancelled → :class:`~ptm_sync.core.booking.events.TeacherRemoved` (a
  CANCEL, and a new proposal);
* the event was edited at the time we wrote →
  :class:`~ptm_sync.core.booking.events.TeacherEdited` (their version is the one we know).

A write of ours that the calendar refused because the teacher changed the event (HTTP 412)
is reconciled by :func:`refused_write`: the event is read again and the same rule decides.

What counts as the teacher's change is decided by the core
(:func:`~ptm_sync.core.booking.teacher_sync.teacher_change`: our own writes, delivered or in
flight, are never mistaken for the teacher's).  The events come from
the local mirror: the whole calendar where the connector mirrors it (``Capability.MIRRORED``:
CalDAV), or the events of ours its change feed lists (``Capability.CHANGE_FEED``: Graph
delta, EWS SyncFolderItems, Google sync tokens).
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from ptm_sync.adapters.store import BusyTime, Calendar, CalendarEvent, Database, Meeting, Outbox
from ptm_sync.adapters.video.providers import VideoProvider
from ptm_sync.app import outbox
from ptm_sync.app.booking.apply import CREATING, Applier
from ptm_sync.config.settings import Config
from ptm_sync.core.booking.decide import APPLIED
from ptm_sync.core.booking.events import (
    CalendarWritten,
    TeacherEdited,
    TeacherMoved,
    TeacherRemoved,
)
from ptm_sync.core.booking.teacher_copy import MeetingEvent, TeachersText
from ptm_sync.core.booking.teacher_sync import SeenEvent, teacher_change, teachers_text
from ptm_sync.core.errors import SlotTaken
from ptm_sync.core.model import Interval, MeetingState

log = logging.getLogger(__name__)

#: A confirmed meeting's event as we know it: where it was at when we knew its version (the
#: meeting's time for meetings written before that was recorded) and that version's ETag.
_KNOWN = (
    Meeting.id,
    Meeting.uid,
    func.coalesce(Meeting.remote_start, Meeting.start),
    func.coalesce(Meeting.remote_end, Meeting.end),
    Meeting.remote_etag,
)
_WRITTEN = (
    Meeting.state == MeetingState.CONFIRMED.value,
    Meeting.remote_href.is_not(None),
    Meeting.remote_href != CREATING,
)
_OURS = select(*_KNOWN).where(Meeting.teacher_id == bindparam("teacher"), *_WRITTEN)
_ONE = select(*_KNOWN, Meeting.teacher_id).where(Meeting.id == bindparam("meeting"), *_WRITTEN)
_EVENTS = (
    select(CalendarEvent.uid, CalendarEvent.etag, func.min(BusyTime.start), func.max(BusyTime.end))
    .join(Calendar, Calendar.id == CalendarEvent.calendar_id)
    .outerjoin(BusyTime, BusyTime.event_id == CalendarEvent.id)
    .where(Calendar.teacher_id == bindparam("teacher"))
    .group_by(CalendarEvent.id)
)
#: One event of ours in a teacher's mirror, by UID: where it lives, its text and its span.
_ONE_EVENT = (
    select(
        CalendarEvent.href,
        CalendarEvent.ics,
        CalendarEvent.etag,
        func.min(BusyTime.start),
        func.max(BusyTime.end),
    )
    .join(Calendar, Calendar.id == CalendarEvent.calendar_id)
    .outerjoin(BusyTime, BusyTime.event_id == CalendarEvent.id)
    .where(Calendar.teacher_id == bindparam("teacher"), CalendarEvent.uid == bindparam("uid"))
    .group_by(CalendarEvent.id)
)
_WAITING = select(Outbox.meeting_id).where(
    Outbox.kind == outbox.CALENDAR,
    Outbox.state == outbox.PENDING,
    Outbox.meeting_id.in_(bindparam("meetings", expanding=True)),
)


def follow(
    db: Database, config: Config, teacher_id: int, *, now: datetime, video: VideoProvider
) -> int:
    """Decide every change the teacher made to our events; returns how many were applied."""
    with db.read() as session:
        ours = session.execute(_OURS, {"teacher": teacher_id}).all()
        if not ours:
            return 0
        events = {
            uid: SeenEvent(etag, start, end)
            for uid, etag, start, end in session.execute(_EVENTS, {"teacher": teacher_id})
        }
        waiting = set(session.scalars(_WAITING, {"meetings": [m[0] for m in ours]}))
    changed = 0
    for meeting_id, uid, start, end, our_etag in ours:
        event = teacher_change(
            Interval(start, end), our_etag, events.get(uid), writing=meeting_id in waiting
        )
        if event is None:
            continue
        try:
            changed += _decide(db, config, meeting_id, event, now=now, video=video)
        except SlotTaken:
            # Moved onto a time another meeting holds: nothing moves; the moved event now
            # overlaps that meeting, which `meetings --conflicts` and the digest report.
            log.warning(
                "meeting %d: the teacher moved its event onto a time another meeting holds; "
                "nothing moved (see `ptm-sync meetings --conflicts`)",
                meeting_id,
            )
    return changed


def _decide(
    db: Database,
    config: Config,
    meeting_id: int,
    event: TeacherMoved | TeacherRemoved | TeacherEdited,
    *,
    now: datetime,
    video: VideoProvider,
) -> int:
    with db.write() as session:
        meeting = session.get(Meeting, meeting_id, with_for_update=True)
        if meeting is None or meeting.state != MeetingState.CONFIRMED.value:
            return 0
        decision = Applier(config, now=now, video=video).handle(session, meeting, event)
        if decision.outcome == APPLIED:
            # The teacher's version (its ETag, or no event) is now the one we know: the
            # decision says so.
            log.info("meeting %d: %s in the teacher's calendar", meeting_id, decision.rule)
            return 1
    return 0


def refused_write(
    db: Database, config: Config, meeting_id: int, *, now: datetime, video: VideoProvider
) -> bool:
    """Decide what the teacher did to the event of meeting ``meeting_id`` after a write of
    ours was refused for it (HTTP 412 Precondition Failed, Graph/Google 412, EWS
    ErrorIrresolvableConflict: DESIGN §3).  The caller has just read the teacher's calendar
    again into the mirror; the rule of :func:`follow` decides, our refused write no longer
    counted as on its way: moved or removed → the teacher-side change (our pending change
    is decided again on top of it); edited at the time we wrote → their version is the one
    we know, and the caller writes ours on it.  True when a change was applied; False when
    the mirror shows nothing new (the caller retries later)."""
    with db.read() as session:
        found = session.execute(_ONE, {"meeting": meeting_id}).one_or_none()
        if found is None:
            return False  # no longer confirmed, or no event: nothing to reconcile
        _, uid, start, end, our_etag, teacher_id = found
        mirrored = _mirrored(session, teacher_id, uid)
    seen = mirrored[2] if mirrored is not None else None
    event = teacher_change(Interval(start, end), our_etag, seen, writing=False)
    if event is None:
        return False
    return _decide(db, config, meeting_id, event, now=now, video=video) > 0


def kept_text(session: Session, meeting: Meeting) -> TeachersText | None:
    """The text of the teacher's version of ``meeting``'s event, as the mirror holds it
    (:func:`~ptm_sync.core.booking.teacher_sync.teachers_text`); None when the mirror has
    no such object or no text of it."""
    ics = session.scalars(
        select(CalendarEvent.ics)
        .join(Calendar, Calendar.id == CalendarEvent.calendar_id)
        .where(Calendar.teacher_id == meeting.teacher_id, CalendarEvent.uid == meeting.uid)
    ).first()
    return teachers_text(ics, meeting.uid) if ics else None


def found_after_crash(
    db: Database,
    config: Config,
    meeting_id: int,
    ours: MeetingEvent,
    *,
    written: Interval,
    now: datetime,
    video: VideoProvider,
) -> bool:
    """A create of the meeting's event was cut off (a crash after the server may have taken
    it, before its href was stored); the teacher's calendar has just been read again.  When
    the mirror holds an object with the meeting's UID, it is the meeting's event: as we
    created it (``ours``, at ``written``, UTC) it is recorded as our version; otherwise the
    teacher changed it meanwhile and DESIGN §3 decides as for a refused write (a move, a
    removal, an edit whose text stays).  False when no such object is there: the create
    never arrived (a deletion in that window cannot be told from it) and is sent again."""
    with db.read() as session:
        meeting = session.get(Meeting, meeting_id)
        mirrored = _mirrored(session, meeting.teacher_id, meeting.uid) if meeting else None
    if mirrored is None:
        return False
    href, ics, seen = mirrored
    etag, start, end = seen.etag, seen.start, seen.end
    same_time = (
        start is not None and end is not None and Interval(start, end).utc() == written.utc()
    )
    as_created = same_time and teachers_text(ics, ours.uid) == TeachersText(
        ours.summary, ours.description
    )
    # Where the event lives; its version is ours only when it says what we created.
    written_event = CalendarWritten(href=href, etag=etag if as_created else None, slot=written)
    with db.write() as session:
        locked = session.get(Meeting, meeting_id, with_for_update=True)
        if locked is None:
            return False
        Applier(config, now=now, video=video).handle(session, locked, written_event)
    if not as_created:
        refused_write(db, config, meeting_id, now=now, video=video)
    return True


def _mirrored(session: Session, teacher_id: int, uid: str) -> tuple[str, str, SeenEvent] | None:
    """The event ``uid`` in the teacher's mirror: its href, its iCalendar text and what it
    blocks; None when the mirror has no such object."""
    found = session.execute(_ONE_EVENT, {"teacher": teacher_id, "uid": uid}).first()
    if found is None:
        return None
    href, ics, etag, start, end = found
    return href, ics, SeenEvent(etag, start, end)
