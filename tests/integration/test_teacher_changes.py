"""Teacher-side changes (DESIGN §3): the teacher drags or deletes our event in Radicale.

Sync notices it; a moved event moves the meeting (the parent gets a REQUEST with the new
time to answer again), a deleted one cancels it (a CANCEL, and a new proposal).  Our own
writes — delivered or still waiting in the outbox — are never taken for the teacher's.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from ptm_sync.adapters.store import Database, Meeting
from ptm_sync.app.sync import sync
from tests.integration.test_calendar_deliverer import Teacher
from tests.support.booking import PAT
from tests.support.caldav_servers import EmbeddedCalDAV, delete_href, put_ics

pytestmark = pytest.mark.radicale


@pytest.fixture
def teacher(db: Database, radicale_server: EmbeddedCalDAV) -> Iterator[Teacher]:
    t = Teacher(db, radicale_server)
    yield t
    t.close()


def _sync(teacher: Teacher) -> int:
    results = sync(
        teacher.school.db, teacher.school.config, teacher.connectors, now=teacher.clock()
    )
    return sum(r.followed for r in results if not r.error)


def _meetings(teacher: Teacher) -> list[Meeting]:
    with teacher.school.db.read() as session:
        return list(session.scalars(select(Meeting).order_by(Meeting.id)))


def test_our_own_event_is_not_taken_for_a_change(teacher: Teacher) -> None:
    meeting = teacher.confirmed(slot=0)
    assert _sync(teacher) == 0  # the write is still waiting in the outbox
    teacher.flush()
    assert _sync(teacher) == 0  # the event as we wrote it
    assert teacher.school.meeting(meeting.id).sequence == meeting.sequence


def test_a_dragged_event_moves_the_meeting_and_asks_the_parent_again(teacher: Teacher) -> None:
    meeting = teacher.confirmed(slot=0)
    teacher.flush()
    href, event = teacher.events()[meeting.uid]
    moved = teacher.school.slot(3)
    event["DTSTART"].dt, event["DTEND"].dt = moved.start, moved.end
    ics = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Teacher//EN\r\n"
    ics += event.to_ical().decode() + "END:VCALENDAR\r\n"
    put_ics(teacher.server, teacher.calendar, ics, name=urlsplit(href).path.rsplit("/", 1)[1])

    assert _sync(teacher) == 1

    after = teacher.school.meeting(meeting.id)
    assert (after.state, after.start, after.sequence) == (
        "confirmed",
        moved.start,
        meeting.sequence + 1,
    )
    update = teacher.school.emails(meeting.id)[-1]
    assert update.method == "REQUEST" and update.to == [PAT]
    [attendee] = update.event.attendees
    assert attendee.params["PARTSTAT"] == "NEEDS-ACTION"
    assert moved.start.astimezone(update.event.DTSTART.tzinfo) == update.event.DTSTART
    assert teacher.school.history(meeting.id)[-1].actor == "teacher"
    # Followed once: the next sync finds the teacher's version as the one we know.
    assert _sync(teacher) == 0


def test_a_deleted_event_cancels_the_meeting_and_proposes_another_time(teacher: Teacher) -> None:
    meeting = teacher.confirmed(slot=1)
    teacher.flush()
    href, _ = teacher.events()[meeting.uid]
    delete_href(teacher.server, href)
    teacher.clock_at += timedelta(minutes=5)

    assert _sync(teacher) == 1

    assert teacher.school.meeting(meeting.id).state == "cancelled"
    cancel = [e for e in teacher.school.emails(meeting.id) if e.method == "CANCEL"]
    assert cancel and cancel[-1].to == [PAT]
    proposals = [m for m in _meetings(teacher) if m.origin == "reproposal"]
    assert len(proposals) == 1 and proposals[0].state == "proposed"
    assert proposals[0].start != meeting.start
