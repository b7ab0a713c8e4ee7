"""Confirmed meetings that a busy event of the teacher's now overlaps (DESIGN §3
"Teacher-side changes": staff are told, nothing is moved silently).

A teacher who puts a new appointment over a confirmed meeting, or drags the event of one
meeting onto the time of another, leaves a meeting the families believe in at a time the
teacher has given away.  Sync keeps each teacher's busy times; this read finds, for every
confirmed meeting, the first busy event of the same teacher that overlaps it and is not the
meeting's own event.  ``meetings --conflicts`` lists them and the staff digest reports them.

Busy times of a teacher count only when they come with their event (the calendar is
mirrored: CalDAV, ICS feeds): a free/busy span without its event (Graph getSchedule, EWS,
Google freeBusy) cannot tell the meeting's own event from another one.  The school's events
feed (``blocks = "everyone"``) holds no meeting of ours: each of its busy spans counts for
every teacher.  Spans without data (``unknown``) are no conflict.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from ptm_sync.adapters.store import BusyTime, CalendarEvent, Meeting, SchoolBusy
from ptm_sync.core.model import Interval, MeetingState

_OVERLAPS = (
    select(Meeting.id, BusyTime.start, BusyTime.end)
    .join(
        BusyTime,
        and_(
            BusyTime.teacher_id == Meeting.teacher_id,
            BusyTime.start < Meeting.end,
            BusyTime.end > Meeting.start,
            BusyTime.unknown.is_(False),
        ),
    )
    .join(CalendarEvent, CalendarEvent.id == BusyTime.event_id)
    .where(Meeting.state == MeetingState.CONFIRMED, CalendarEvent.uid != Meeting.uid)
    .order_by(Meeting.id, BusyTime.start)
)


_SCHOOL_OVERLAPS = (
    select(Meeting.id, SchoolBusy.start, SchoolBusy.end)
    .join(SchoolBusy, and_(SchoolBusy.start < Meeting.end, SchoolBusy.end > Meeting.start))
    .where(Meeting.state == MeetingState.CONFIRMED)
    .order_by(Meeting.id, SchoolBusy.start)
)


def conflicts(session: Session, *, after: datetime | None = None) -> dict[int, Interval]:
    """Meeting id → the first busy span (UTC) that overlaps that confirmed meeting and is
    not its own event (the teacher's, or the school's events feed); ``after``: only meetings
    that end after it (today's and later)."""
    rows: list[tuple[int, datetime, datetime]] = []
    for query in (_OVERLAPS, _SCHOOL_OVERLAPS):
        found = session.execute(query if after is None else query.where(Meeting.end > after))
        rows += [(int(m), start, end) for m, start, end in found]
    return _first(sorted(rows, key=lambda row: (row[0], row[1])))


def _first(rows: Iterable[tuple[int, datetime, datetime]]) -> dict[int, Interval]:
    found: dict[int, Interval] = {}
    for meeting_id, start, end in rows:
        found.setdefault(meeting_id, Interval(start, end))
    return found
