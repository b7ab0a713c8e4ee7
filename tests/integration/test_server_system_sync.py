"""A teacher on a server free/busy system (Graph, EWS, Google: here the in-memory connector
with their capabilities): busy time asked for all teachers of an account at once, our own
events followed through the change feed, and nothing read that an idle pass does not need
(issue 8)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import select

from connectors.base import CalendarRef, ChangeSet, FreeBusyAnswer
from connectors.memory import SERVER_SYSTEM, MemoryCalendars, MemoryConnector
from ptm_sync.adapters.store import BusyTime, Database, MeetingHistory, Outbox, Teacher
from ptm_sync.app import outbox
from ptm_sync.app.outbox.deliverers import CalendarDeliverer
from ptm_sync.app.sync import Connectors, sync
from ptm_sync.core.booking.notices import email_of
from ptm_sync.core.model import MeetingState
from tests.support.booking import ADA, ALAN, PAT, SeededSchool


class CountingConnector(MemoryConnector):
    """The in-memory server system, counting the calls sync makes."""

    def __init__(self, *args: object) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self.free_busy_calls: list[int] = []
        self.change_calls: list[str] = []

    def free_busy(
        self, calendars: Sequence[CalendarRef], start: datetime, end: datetime
    ) -> FreeBusyAnswer:
        self.free_busy_calls.append(len(calendars))
        return super().free_busy(calendars, start, end)

    def changes(self, calendar: CalendarRef, token: str | None) -> ChangeSet:
        self.change_calls.append(calendar.calendar)
        return super().changes(calendar, token)


class School:
    def __init__(self, db: Database) -> None:
        self.school = SeededSchool.create(db)
        self.db = db
        self.server = MemoryCalendars(tz=self.school.config.tz)
        with db.read() as session:
            self.calendars = {t.email: t.calendar for t in session.scalars(select(Teacher))}
        for calendar in self.calendars.values():
            self.server.add_calendar(calendar)
        self.connectors = Connectors(self.school.config)
        [account] = self.school.config.accounts
        self.connector = CountingConnector(self.server, self.connectors.horizon, SERVER_SYSTEM)
        self.connectors.provide(account.id, self.connector)
        self.clock_at = self.school.now

    def sync(self) -> None:
        results = sync(self.db, self.school.config, self.connectors, now=self.clock_at)
        assert [r.error for r in results] == [""] * len(results), results

    def flush(self) -> None:
        self.clock_at += timedelta(hours=1)
        deliverer = CalendarDeliverer(
            self.db, self.school.config, self.connectors, lambda: self.clock_at
        )

        def email(row: Outbox) -> None:
            email_of(outbox.payload(row))

        outbox.flush(
            self.db, {outbox.EMAIL: email, outbox.CALENDAR: deliverer}, clock=lambda: self.clock_at
        )

    def server_busy(self, email: str) -> list[tuple[datetime, datetime]]:
        with self.db.read() as session:
            teacher = session.scalars(select(Teacher).where(Teacher.email == email)).one()
            rows = session.execute(
                select(BusyTime.start, BusyTime.end).where(
                    BusyTime.teacher_id == teacher.id, BusyTime.event_id.is_(None)
                )
            ).all()
        return sorted((s, e) for s, e in rows)


def test_an_idle_pass_asks_for_busy_time_once_per_account_and_reads_no_change_feed(
    db: Database,
) -> None:
    school = School(db)
    start = school.school.slot(2).start
    school.server.add_busy(school.calendars[ALAN], start, start + timedelta(minutes=30))

    school.sync()

    assert school.connector.free_busy_calls == [2]  # both teachers in one call
    assert school.connector.change_calls == []  # no events of ours anywhere yet
    assert school.server_busy(ALAN) == [(start, start + timedelta(minutes=30))]
    assert school.server_busy(ADA) == []


def test_our_event_is_not_the_teachers_busy_time_and_their_move_of_it_is_followed(
    db: Database,
) -> None:
    school = School(db)
    meeting = school.school.propose(ADA, PAT, slot=0)
    assert school.school.deliver(school.school.reply(meeting, "ACCEPTED")).reason == "accepted"
    school.flush()  # the event is written to Ada's calendar
    written = school.school.meeting(meeting.id)
    assert written.remote_href and written.remote_etag

    school.sync()
    assert school.connector.change_calls == [school.calendars[ADA]]  # only Ada has ours
    # The server counts our event as busy; it is the meeting, not another appointment.
    assert school.server_busy(ADA) == []

    later = school.school.slot(3)
    school.server.teacher_moves(school.calendars[ADA], written.remote_href, later.start, later.end)
    school.clock_at += timedelta(minutes=5)
    school.sync()

    moved = school.school.meeting(meeting.id)
    assert (moved.start, moved.end) == (later.start, later.end)
    assert moved.state == MeetingState.CONFIRMED.value
    with db.read() as session:
        actors = session.scalars(
            select(MeetingHistory.actor).where(MeetingHistory.meeting_id == meeting.id)
        ).all()
    assert "teacher" in actors
    assert school.server_busy(ADA) == []  # the moved event is still ours, not extra busy


def test_a_calendar_the_account_cannot_find_fails_alone(db: Database) -> None:
    school = School(db)
    del school.server.calendars[school.calendars[ALAN]]
    results = {
        r.teacher: r for r in sync(db, school.school.config, school.connectors, now=school.clock_at)
    }
    assert results[ADA].error == ""
    assert "not found" in results[ALAN].error
