"""What a sync saw done to the event we wrote in a teacher's calendar, as an event for the
booking core (DESIGN §3 "Teacher-side changes").  PURE.

The event is the teacher's change only when its ETag differs from the one our last write
got back and no write of ours for that meeting is still waiting in the outbox: our own
writes, delivered or in flight, are never mistaken for the teacher's.  Then:

* at another time → :class:`TeacherMoved` (the parents get the new time);
* gone, or cancelled (it blocks no time any more) → :class:`TeacherRemoved`;
* at the time we wrote → :class:`TeacherEdited` (a note, a colour): nothing the parents
  need to hear; the teacher's version becomes the one we know, so our next write goes on it
  and keeps their text.

"The time we wrote" is the meeting's ``remote_slot``, not its time: while a write of ours
moving the meeting waits, the event is still at the old time, and a write of ours refused
because the teacher edited the event (HTTP 412) is decided by the same rule once the event
is read again (DESIGN §3).

A new busy event over a confirmed meeting is not a change of our event: staff are told
(``meetings --conflicts``, the digest) and nothing is moved.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ptm_sync.core.booking.events import TeacherEdited, TeacherMoved, TeacherRemoved
from ptm_sync.core.booking.teacher_copy import TeachersText
from ptm_sync.core.errors import UnreadableCalendar
from ptm_sync.core.ical.parse import parse_calendar
from ptm_sync.core.model import Interval


@dataclass(frozen=True, slots=True)
class SeenEvent:
    """Our event as the sync's mirror holds it: its ETag and the span it blocks (``start``
    None: it blocks no time, e.g. cancelled)."""

    etag: str | None
    start: datetime | None
    end: datetime | None


def teacher_change(
    written: Interval,
    our_etag: str | None,
    seen: SeenEvent | None,
    *,
    writing: bool,
) -> TeacherMoved | TeacherRemoved | TeacherEdited | None:
    """The teacher's change to the event of a confirmed meeting, which our last known
    version has at ``written`` (UTC: the meeting's ``remote_slot``, else its time) as
    ``our_etag``; ``seen``: the event in the mirror (None: not there); ``writing``: a write
    of ours for the meeting waits in the outbox (its 412, if any, asks again with False).
    None: nothing the teacher did needs deciding."""
    if writing:
        return None  # our own write is on its way
    if seen is not None and seen.etag is not None and seen.etag == our_etag:
        return None  # the event as we know it
    if seen is None or seen.start is None or seen.end is None:
        return TeacherRemoved()
    moved = Interval(seen.start, seen.end).utc()
    if moved == written.utc():
        return TeacherEdited(etag=seen.etag)
    return TeacherMoved(slot=moved, etag=seen.etag)


def teachers_text(ics: str, uid: str) -> TeachersText | None:
    """The summary and description of the event ``uid`` (its master, not an exception of a
    series) in the teacher's version ``ics`` (RFC 5545 §3.8.1.12, §3.8.1.5); None when the
    object holds no SUMMARY (a server system's change feed lists only UID, times and
    STATUS) or cannot be read: then our text is written."""
    try:
        calendar = parse_calendar(ics)
    except UnreadableCalendar:
        return None
    for event in calendar.walk("VEVENT"):
        if str(event.get("UID", "")) != uid or "RECURRENCE-ID" in event:
            continue
        if "SUMMARY" not in event:
            return None
        return TeachersText(str(event["SUMMARY"]), str(event.get("DESCRIPTION", "")))
    return None
