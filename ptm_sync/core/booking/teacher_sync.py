"""What a sync saw done to the event we wrote in a teacher's calendar, as an event for the
booking core (DESIGN §3 "Teacher-side changes").  PURE.

The event is the teacher's change only when its ETag differs from the one our last write
got back and no write of ours for that meeting is still waiting in the outbox: our own
writes, delivered or in flight, are never mistaken for the teacher's.  Then:

* at another time → :class:`TeacherMoved` (the parents get the new time);
* gone, or cancelled (it blocks no time any more) → :class:`TeacherRemoved`;
* at the same time → edited only (a note, a colour): nothing the parents need to hear.

A new busy event over a confirmed meeting is not a change of our event: staff are told
(``meetings --conflicts``, the digest) and nothing is moved.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ptm_sync.core.booking.events import TeacherMoved, TeacherRemoved
from ptm_sync.core.model import Interval


@dataclass(frozen=True, slots=True)
class SeenEvent:
    """Our event as the sync's mirror holds it: its ETag and the span it blocks (``start``
    None: it blocks no time, e.g. cancelled)."""

    etag: str | None
    start: datetime | None
    end: datetime | None


def teacher_change(
    meeting: Interval, our_etag: str | None, seen: SeenEvent | None, *, writing: bool
) -> TeacherMoved | TeacherRemoved | None:
    """The teacher's change to the event of a confirmed meeting at ``meeting`` (UTC), whose
    last write of ours got ``our_etag`` back; ``seen``: the event in the mirror (None: not
    there); ``writing``: a write of ours for the meeting waits in the outbox.  None: nothing
    the teacher did needs deciding."""
    if writing:
        return None  # our own write is on its way
    if seen is not None and seen.etag is not None and seen.etag == our_etag:
        return None  # the event as we wrote it
    if seen is None or seen.start is None or seen.end is None:
        return TeacherRemoved()
    moved = Interval(seen.start, seen.end).utc()
    if moved == meeting.utc():
        return None  # edited, not moved
    return TeacherMoved(slot=moved, etag=seen.etag)
