"""The calendar deliverer keeps the teacher's calendar in line with the meeting (Radicale).

Outbox rows say only "meeting N changed"; the deliverer reads the meeting as it is now and
creates, updates or deletes the teacher's event, remembering where it lives (href, etag).
The event never triggers server-side scheduling (DESIGN §4).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any, cast
from urllib.parse import urlsplit

import pytest
from icalendar import Calendar, Event
from sqlalchemy import select

from connectors.base import CalendarConnector, CalendarRef, MeetingEvent, RemoteRef
from ptm_sync.adapters.store import Database, Meeting, Outbox
from ptm_sync.app import outbox
from ptm_sync.app.outbox.deliverers import CalendarDeliverer
from ptm_sync.app.sync import Connectors
from ptm_sync.core.booking.events import Answer, StaffCancel
from ptm_sync.core.booking.notices import email_of
from tests.support.booking import ADA, PAT, SeededSchool
from tests.support.caldav_servers import EmbeddedCalDAV, delete_href, make_calendar, put_ics
from tests.support.school import calendar_part

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


def _teacher_rewrites(teacher: Teacher, meeting: Meeting, edit: Callable[[Event], None]) -> None:
    """The teacher edits our event in their calendar client: ``edit(event)`` changes it."""
    href, _ = teacher.events()[meeting.uid]
    ref = CalendarRef("dav", teacher.calendar)
    [remote] = teacher.connectors.get("dav").changes(ref, None).changed
    calendar = Calendar.from_ical(remote.ics)
    [event] = calendar.events
    edit(event)
    name = href.rsplit("/", 1)[1]
    put_ics(teacher.server, teacher.calendar, calendar.to_ical().decode(), name=name)


def _moved_by(later: timedelta) -> Callable[[Event], None]:
    """The teacher drags the event ``later``."""

    def move(event: Event) -> None:
        start, end = event.start, event.end
        del event["DTSTART"], event["DTEND"]
        event.add("DTSTART", start + later)
        event.add("DTEND", end + later)

    return move


def _emails_since(teacher: Teacher, before: int) -> list[str]:
    return [raw.decode(errors="replace") for raw in teacher.sent[before:]]


def test_an_event_the_teacher_edited_keeps_their_text_and_takes_our_write_on_their_version(
    teacher: Teacher,
) -> None:
    """DESIGN §3's 412 rule: our write is refused (the teacher edited the event), the
    calendar is read again, the edit is theirs to keep, and our change goes on their
    version: not a dead letter."""
    meeting = teacher.confirmed()
    teacher.flush()
    ours = teacher.school.meeting(meeting.id).remote_etag
    sent = len(teacher.sent)

    def note(event: Event) -> None:
        event["SUMMARY"] = "Bring the report card - " + str(event["SUMMARY"])
        event["DESCRIPTION"] = "Ask about the science project"
        del event["LOCATION"]  # and, by mistake, the video link

    _teacher_rewrites(teacher, meeting, note)

    teacher.changed(meeting, "Room 7")
    report = teacher.flush()

    assert (report.delivered, report.dead) == (1, 0)
    _, event = teacher.events()[meeting.uid]
    assert str(event["SUMMARY"]).startswith("Bring the report card - PTC ")
    assert str(event["DESCRIPTION"]) == "Ask about the science project"
    stored = teacher.school.meeting(meeting.id)
    assert str(event["LOCATION"]) == stored.video_url != ""  # the place is ours
    assert stored.remote_edited and stored.state == "confirmed"
    assert stored.remote_etag not in (None, ours)
    assert _emails_since(teacher, sent) == []  # an edit is nothing the parents hear of

    # The teacher's version is now the one we know: the next write of ours is not refused
    # and keeps their text too.
    teacher.changed(meeting, "Room 8")
    assert teacher.flush().delivered == 1
    _, event = teacher.events()[meeting.uid]
    assert str(event["DESCRIPTION"]) == "Ask about the science project"


def test_an_event_the_teacher_moved_while_our_write_waited_moves_the_meeting(
    teacher: Teacher,
) -> None:
    """A changed time found by the 412's re-read is the teacher-side move: the meeting goes
    to the teacher's time, the parents get the update, our pending change goes on top."""
    meeting = teacher.confirmed()
    teacher.flush()
    sent = len(teacher.sent)
    later = timedelta(hours=2)

    _teacher_rewrites(teacher, meeting, _moved_by(later))
    teacher.changed(meeting, "Room 7")
    report = teacher.flush()
    teacher.flush()  # the parents' update, queued by the move

    assert report.dead == 0
    stored = teacher.school.meeting(meeting.id)
    assert (stored.state, stored.start, stored.end) == (
        "confirmed",
        meeting.start + later,
        meeting.end + later,
    )
    assert stored.location == "Room 7"
    _, event = teacher.events()[meeting.uid]
    assert event.start == meeting.start + later
    updates = [m for m in _emails_since(teacher, sent) if "METHOD:REQUEST" in m]
    assert updates, "the parents were not told of the teacher's new time"


def test_an_event_the_teacher_deleted_while_our_write_waited_cancels_the_meeting(
    teacher: Teacher,
) -> None:
    """A deletion found by the refused write is the teacher-side removal (DESIGN §3): the
    parents get a CANCEL and a new time is proposed; the event is not put back behind the
    teacher's back."""
    meeting = teacher.confirmed()
    teacher.flush()
    sent = len(teacher.sent)
    href, _ = teacher.events()[meeting.uid]
    delete_href(teacher.server, href)

    teacher.changed(meeting, "Room 7")
    report = teacher.flush()
    teacher.flush()

    assert report.dead == 0
    assert meeting.uid not in teacher.events()
    stored = teacher.school.meeting(meeting.id)
    assert (stored.state, stored.remote_href) == ("cancelled", None)
    assert any("METHOD:CANCEL" in m for m in _emails_since(teacher, sent))
    with teacher.school.db.read() as session:
        again = session.scalars(select(Meeting).where(Meeting.replaces_id == meeting.id)).all()
    assert [m.state for m in again] == ["proposed"]  # DESIGN §3: a new proposal
    # ... that says why, and never that the family turned the time down.
    [proposal] = [m for m in _emails_since(teacher, sent) if "New time proposed" in m]
    assert "The teacher can no longer meet at this time. We have reserved" in proposal
    assert "did not suit you" not in proposal
    [made] = teacher.school.history(again[0].id)
    assert made.reason == (
        f"proposed after meeting {meeting.id} was removed from the teacher's calendar"
    )


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


@pytest.mark.parametrize("change", ["moved", "edited", "none"])
def test_a_create_cut_off_by_a_crash_never_overwrites_what_the_teacher_did_meanwhile(
    teacher: Teacher, change: str
) -> None:
    """The server took our create, the process died before storing where it lives, and the
    teacher changed the event before the restart: the resumed write reads the calendar
    again first, and the teacher's change is decided as for a refused write (DESIGN §3)."""
    meeting = teacher.confirmed()
    crashing = CrashAfterCreate(teacher.school.config)
    with pytest.raises(Crash):
        teacher.flush(crashing)
    crashing.close()
    sent = len(teacher.sent)
    later = timedelta(hours=2)

    def note(event: Event) -> None:
        event["DESCRIPTION"] = "Ask about the science project"

    if change != "none":
        _teacher_rewrites(teacher, meeting, _moved_by(later) if change == "moved" else note)

    report = teacher.flush()
    teacher.flush()

    assert report.dead == 0
    stored = teacher.school.meeting(meeting.id)
    [(uid, (href, event))] = teacher.events().items()
    assert (uid, stored.remote_href, stored.state) == (meeting.uid, href, "confirmed")
    told = {  # the times the parents' REQUESTs (confirmation, update) carried
        calendar_part(raw).events[0].start
        for raw in teacher.sent[sent:]
        if b"METHOD:REQUEST" in raw
    }
    if change == "moved":
        assert (stored.start, event.start) == (meeting.start + later, meeting.start + later)
        assert meeting.start + later in told, "the parents were not told the teacher's time"
    else:
        assert (stored.start, event.start) == (meeting.start, meeting.start)
        assert told == {meeting.start}
    assert stored.remote_edited == (change == "edited")
    if change == "edited":
        assert str(event["DESCRIPTION"]) == "Ask about the science project"
