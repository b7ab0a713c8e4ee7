"""The calendar deliverer keeps the teacher's calendar in line with the meeting (Radicale).

Outbox rows say only "meeting N changed"; the deliverer reads the meeting as it is now and
creates, updates or deletes the teacher's event, remembering where it lives (href, etag).
The event never triggers server-side scheduling (DESIGN §4).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any, cast
from urllib.parse import urlsplit

import pytest
from icalendar import Calendar, Event

from connectors.base import CalendarConnector, CalendarRef, MeetingEvent, RemoteRef
from ptm_sync.adapters.store import Database, Meeting, Outbox
from ptm_sync.app import outbox
from ptm_sync.app.outbox.deliverers import CalendarDeliverer
from ptm_sync.app.sync import Connectors
from ptm_sync.core.booking.events import Answer, StaffCancel
from ptm_sync.core.booking.notices import email_of
from tests.support.booking import ADA, PAT, SeededSchool
from tests.support.caldav_servers import EmbeddedCalDAV, delete_href, make_calendar, put_ics

pytestmark = pytest.mark.radicale

SUMMARY = "PTC {student_first} / {guardian} / {teacher}"


class Teacher:
    """The test school with Ada's calendar on Radicale, and a way to run the outbox."""

    def __init__(self, db: Database, server: EmbeddedCalDAV) -> None:
        self.server = server
        self.calendar = make_calendar(server)
        self.school = SeededSchool.create(
            db,
            calendars={ADA: self.calendar},
            caldav_url=server.url,
            caldav_user=server.username,
            caldav_password=server.password or "",
            templates=f'summary = "{SUMMARY}"',
        )
        self.connectors = Connectors(self.school.config)
        self.sent: list[bytes] = []
        self.clock_at = self.school.now + timedelta(hours=1)

    def clock(self) -> datetime:
        return self.clock_at

    def deliverer(self, connectors: Connectors | None = None) -> CalendarDeliverer:
        return CalendarDeliverer(
            self.school.db, self.school.config, connectors or self.connectors, self.clock
        )

    def flush(self, connectors: Connectors | None = None) -> outbox.FlushReport:
        """Deliver every due row: emails to a list, calendar writes to Radicale.

        The clock moves on an hour first, past any lease a crashed delivery left behind.
        """
        self.clock_at += timedelta(hours=1)

        def email(row: Outbox) -> None:
            self.sent.append(email_of(outbox.payload(row)))

        return outbox.flush(
            self.school.db,
            {outbox.EMAIL: email, outbox.CALENDAR: self.deliverer(connectors)},
            clock=self.clock,
        )

    def confirmed(self, slot: int = 0) -> Meeting:
        meeting = self.school.propose(ADA, PAT, slot=slot)
        assert self.school.deliver(self.school.reply(meeting, "ACCEPTED")).reason == "accepted"
        return self.school.meeting(meeting.id)

    def events(self) -> dict[str, tuple[str, Event]]:
        """The calendar's events by UID: (href, event), read straight from the server."""
        connector = self.connectors.get("dav")
        changes = connector.changes(CalendarRef("dav", self.calendar), None)
        found: dict[str, tuple[str, Event]] = {}
        for remote in changes.changed:
            for event in Calendar.from_ical(remote.ics).events:
                assert str(event["UID"]) not in found, "two objects hold one UID"
                found[str(event["UID"])] = (urlsplit(remote.href).path, event)
        return found

    def changed(self, meeting: Meeting, note: str) -> None:
        """Something about a confirmed meeting changed: a calendar row to reconcile it."""
        with self.school.db.write() as session:
            live = session.get(Meeting, meeting.id)
            assert live is not None
            live.location = note
            outbox.enqueue(
                session,
                key=f"calendar:{meeting.uid}:test:{note}",
                kind=outbox.CALENDAR,
                payload={"meeting_id": meeting.id},
                now=self.clock_at,
                meeting_id=meeting.id,
            )

    def close(self) -> None:
        self.connectors.close()


@pytest.fixture
def teacher(db: Database, radicale_server: EmbeddedCalDAV) -> Iterator[Teacher]:
    t = Teacher(db, radicale_server)
    yield t
    t.close()


class Crash(BaseException):
    """The process dies: nothing after this point runs (not a PtmError the outbox handles)."""


class CrashingConnector:
    """The real connector, except that the process dies right after the server took a create."""

    def __init__(self, real: CalendarConnector) -> None:
        self.real = real

    def create_event(self, calendar: CalendarRef, event: MeetingEvent) -> RemoteRef:
        self.real.create_event(calendar, event)
        raise Crash

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


class CrashAfterCreate(Connectors):
    def get(self, account_id: str) -> CalendarConnector:
        return cast(CalendarConnector, CrashingConnector(super().get(account_id)))


def _attendees(event: Event) -> list[object]:
    value = event.get("ATTENDEE")
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def test_a_confirmed_meeting_appears_in_the_teachers_calendar_private_with_the_video_link(
    teacher: Teacher,
) -> None:
    meeting = teacher.confirmed()

    report = teacher.flush()

    assert (report.dead, report.retried) == (0, 0)
    events = teacher.events()
    assert list(events) == [meeting.uid]
    href, event = events[meeting.uid]
    assert str(event["SUMMARY"]) == "PTC Mia / Pat Johnson / Ada Lovelace"
    assert str(event["CLASS"]) == "PRIVATE"
    assert event.start == meeting.start and event.end == meeting.end
    assert meeting.video_url in str(event["DESCRIPTION"])
    assert meeting.video_url in str(event["LOCATION"])
    assert "pat@example.net" in str(event["DESCRIPTION"])
    for attendee in _attendees(event):
        assert attendee.params.get("SCHEDULE-AGENT") == "CLIENT"  # type: ignore[attr-defined]
    stored = teacher.school.meeting(meeting.id)
    assert stored.remote_href == href and stored.remote_etag


def test_a_calendar_write_delivered_twice_leaves_one_event(teacher: Teacher) -> None:
    meeting = teacher.confirmed()
    teacher.flush()
    [row] = teacher.school.outbox_rows(meeting.id, outbox.CALENDAR)

    # At least once: the same row again, e.g. after a lease ran out mid-delivery ...
    teacher.deliverer()(row)
    # ... or after a crash between the server's answer and our commit of the href.
    with teacher.school.db.write() as session:
        live = session.get(Meeting, meeting.id)
        assert live is not None
        live.remote_href = live.remote_etag = None
    teacher.deliverer()(row)

    events = teacher.events()
    assert list(events) == [meeting.uid]
    assert teacher.school.meeting(meeting.id).remote_href == events[meeting.uid][0]


def test_a_cancelled_meeting_is_removed_from_the_calendar_and_forgotten(teacher: Teacher) -> None:
    meeting = teacher.confirmed()
    teacher.flush()
    assert meeting.uid in teacher.events()

    with teacher.school.db.write() as session:
        live = session.get(Meeting, meeting.id)
        assert live is not None
        teacher.school.applier().handle(session, live, StaffCancel(reason="teacher is ill"))
    report = teacher.flush()

    assert report.dead == 0
    assert teacher.events() == {}
    stored = teacher.school.meeting(meeting.id)
    assert (stored.remote_href, stored.remote_etag) == (None, None)


def test_an_event_the_teacher_changed_is_not_overwritten_and_the_write_is_dead_lettered(
    teacher: Teacher,
) -> None:
    meeting = teacher.confirmed()
    teacher.flush()
    href, _ = teacher.events()[meeting.uid]
    etag = teacher.school.meeting(meeting.id).remote_etag
    ics = teacher.connectors.get("dav").changes(CalendarRef("dav", teacher.calendar), None)
    [remote] = ics.changed
    edited = remote.ics.replace("SUMMARY:", "SUMMARY:Moved by Ada - ", 1)
    put_ics(teacher.server, teacher.calendar, edited, name=href.rsplit("/", 1)[1])

    teacher.changed(meeting, "Room 7")
    report = teacher.flush()

    assert (report.delivered, report.dead) == (0, 1)
    [dead] = [r for r in teacher.school.outbox_rows(meeting.id) if r.state == outbox.DEAD]
    assert "changed in the teacher's calendar" in dead.last_error
    assert str(teacher.events()[meeting.uid][1]["SUMMARY"]).startswith("Moved by Ada - ")
    assert teacher.school.meeting(meeting.id).remote_etag == etag


def test_an_event_deleted_on_the_server_is_created_again_on_the_next_update(
    teacher: Teacher,
) -> None:
    meeting = teacher.confirmed()
    teacher.flush()
    href, _ = teacher.events()[meeting.uid]
    delete_href(teacher.server, href)
    assert teacher.events() == {}

    teacher.changed(meeting, "Room 7")
    report = teacher.flush()

    assert (report.delivered, report.dead) == (1, 0)
    events = teacher.events()
    assert list(events) == [meeting.uid]
    stored = teacher.school.meeting(meeting.id)
    assert stored.remote_href == events[meeting.uid][0] and stored.remote_etag


@pytest.mark.parametrize("then", ["confirmed", "cancelled"])
def test_a_create_interrupted_after_the_server_took_it_converges_on_the_meeting(
    teacher: Teacher, then: str
) -> None:
    meeting = teacher.confirmed()
    crashing = CrashAfterCreate(teacher.school.config)
    with pytest.raises(Crash):
        teacher.flush(crashing)
    crashing.close()
    assert meeting.uid in teacher.events()  # the server has it; we never learnt its href
    if then == "cancelled":
        with teacher.school.db.write() as session:
            live = session.get(Meeting, meeting.id)
            assert live is not None
            decline = Answer(
                guardian_id=live.guardian_id,
                partstat="DECLINED",
                sequence=live.sequence,
                dtstamp=teacher.school.now + timedelta(hours=1),
            )
            teacher.school.applier().handle(session, live, decline)

    report = teacher.flush()

    assert report.dead == 0
    stored = teacher.school.meeting(meeting.id)
    events = teacher.events()
    if then == "confirmed":
        assert list(events) == [meeting.uid]
        assert stored.remote_href == events[meeting.uid][0]
    else:
        assert events == {}, "a cancelled meeting was left in the teacher's calendar"
        assert stored.remote_href is None
