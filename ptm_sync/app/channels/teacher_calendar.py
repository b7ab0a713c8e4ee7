"""Teacher-side changes: what a sync found done to the events we wrote (DESIGN §3).

After a teacher's mirror is brought up to date, each confirmed meeting whose event we wrote
is compared with what the calendar now holds:

* the event is at another time → :class:`~ptm_sync.core.booking.events.TeacherMoved` (the
  parents get a REQUEST with the new time, PARTSTAT reset to NEEDS-ACTION);
* the event is gone or cancelled → :class:`~ptm_sync.core.booking.events.TeacherRemoved` (a
  CANCEL, and a new proposal).

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

from ptm_sync.adapters.store import BusyTime, Calendar, CalendarEvent, Database, Meeting, Outbox
from ptm_sync.adapters.video.providers import VideoProvider
from ptm_sync.app import outbox
from ptm_sync.app.booking.apply import CREATING, Applier
from ptm_sync.config.settings import Config
from ptm_sync.core.booking.decide import APPLIED
from ptm_sync.core.booking.events import TeacherMoved, TeacherRemoved
from ptm_sync.core.booking.teacher_sync import SeenEvent, teacher_change
from ptm_sync.core.errors import SlotTaken
from ptm_sync.core.model import Interval, MeetingState

log = logging.getLogger(__name__)

_OURS = select(Meeting.id, Meeting.uid, Meeting.start, Meeting.end, Meeting.remote_etag).where(
    Meeting.teacher_id == bindparam("teacher"),
    Meeting.state == MeetingState.CONFIRMED.value,
    Meeting.remote_href.is_not(None),
    Meeting.remote_href != CREATING,
)
_EVENTS = (
    select(CalendarEvent.uid, CalendarEvent.etag, func.min(BusyTime.start), func.max(BusyTime.end))
    .join(Calendar, Calendar.id == CalendarEvent.calendar_id)
    .outerjoin(BusyTime, BusyTime.event_id == CalendarEvent.id)
    .where(Calendar.teacher_id == bindparam("teacher"))
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
    event: TeacherMoved | TeacherRemoved,
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
