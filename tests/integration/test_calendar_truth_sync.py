"""Calendar truth through a sync pass (issue 14, DESIGN §5): one calendar's error stays its
own and is asked again once, batched; "no data" is never "free"; a whole read that failed
keeps the last known busy times; an invitation the teacher declined frees the time.

The in-memory connector takes a server system's path (Graph, EWS, Google: free/busy asked
for every teacher of the account at once) or a mirrored one's (CalDAV); the vendors' shapes
of the same answers are their connectors' own tests and the contract suite's.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import select

from connectors.base import CalendarRef, Capability, FreeBusyAnswer
from connectors.memory import MIRRORED_SYSTEM, SERVER_SYSTEM, MemoryCalendars, MemoryConnector
from ptm_sync.adapters.store import Calendar, Database, Teacher
from ptm_sync.app.read.availability import period_matrix
from ptm_sync.app.read.health import problems, read_state
from ptm_sync.app.sync import Connectors, SyncResult, sync
from ptm_sync.core.errors import AccessDenied, AuthFailed, CalendarProblem, Unavailable
from ptm_sync.core.model import Interval, SlotStatus
from ptm_sync.ops.metrics import CALENDAR_PROBLEMS, ProcessMetrics
from tests.support.booking import ADA, ALAN, SeededSchool


class CountingConnector(MemoryConnector):
    """The in-memory system, counting the calendars of each free/busy call."""

    def __init__(self, *args: object) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self.free_busy_calls: list[int] = []
        #: The account's refusal of our credentials, raised by every call when set.
        self.refusal: AuthFailed | None = None

    def free_busy(
        self, calendars: Sequence[CalendarRef], start: datetime, end: datetime
    ) -> FreeBusyAnswer:
        self.free_busy_calls.append(len(calendars))
        if self.refusal is not None:
            raise self.refusal
        return super().free_busy(calendars, start, end)


class School:
    def __init__(self, db: Database, capabilities: frozenset[Capability] = SERVER_SYSTEM) -> None:
        self.school = SeededSchool.create(db)
        self.db = db
        self.server = MemoryCalendars(tz=self.school.config.tz)
        with db.read() as session:
            self.calendars = {t.email: t.calendar for t in session.scalars(select(Teacher))}
        for calendar in self.calendars.values():
            self.server.add_calendar(calendar)
        self.connectors = Connectors(self.school.config)
        [account] = self.school.config.accounts
        self.connector = CountingConnector(self.server, self.connectors.horizon, capabilities)
        self.connectors.provide(account.id, self.connector)

    def sync(self) -> dict[str, SyncResult]:
        found = sync(self.db, self.school.config, self.connectors, now=self.school.now)
        return {r.teacher: r for r in found}

    def slot(self, index: int) -> Interval:
        return self.school.slot(index)

    def all_starts(self) -> list[datetime]:
        return [self.slot(i).start for i in range(12)]  # spring: 8 + 4 slots of 15 minutes

    def calendar_row(self, email: str) -> Calendar:
        with self.db.read() as session:
            teacher = session.scalars(select(Teacher).where(Teacher.email == email)).one()
            return session.scalars(select(Calendar).where(Calendar.teacher_id == teacher.id)).one()

    def matrix(self, email: str) -> list[SlotStatus]:
        with self.db.read() as session:
            rows = period_matrix(
                session, self.school.config, self.school.period(), teacher_email=email
            )
        return [r.status for r in rows]


def test_one_calendars_retryable_error_is_asked_again_once_batched_and_stays_its_own(
    db: Database,
) -> None:
    school = School(db)
    busy = school.slot(2)
    school.server.add_busy(school.calendars[ALAN], busy.start, busy.end)
    school.server.calendars[school.calendars[ADA]].failing = Unavailable(
        f"calendar {school.calendars[ADA]!r}: its server failed", 30
    )

    results = school.sync()

    assert school.connector.free_busy_calls == [2, 1]  # everybody, then Ada once more
    assert results[ALAN].error == "" and results[ALAN].problem is None
    assert results[ADA].problem == CalendarProblem.UNAVAILABLE
    assert school.calendars[ADA] in results[ADA].error
    assert school.calendars[ALAN] not in results[ADA].error
    assert school.school.free_starts(ALAN) == [s for s in school.all_starts() if s != busy.start]
    row = school.calendar_row(ADA)
    assert row.problem == "unavailable" and row.error

    school.sync()  # the next pass: every calendar in the normal batch again
    assert school.connector.free_busy_calls == [2, 1, 2, 1]


def test_an_error_that_is_not_retryable_is_not_asked_again_in_the_pass(db: Database) -> None:
    school = School(db)
    with db.write() as session:  # no calendar was ever read
        for row in session.scalars(select(Calendar)):
            session.delete(row)
    school.server.calendars[school.calendars[ADA]].failing = AccessDenied(
        f"calendar {school.calendars[ADA]!r} shares no free/busy"
    )
    results = school.sync()
    assert school.connector.free_busy_calls == [2]
    assert results[ADA].problem == CalendarProblem.ACCESS_DENIED
    assert school.school.free_starts(ADA) == []  # never read: nothing offered
    assert school.school.free_starts(ALAN) == school.all_starts()


def test_a_failed_read_keeps_the_last_known_busy_times(db: Database) -> None:
    school = School(db)
    busy = school.slot(0)
    school.server.add_busy(school.calendars[ADA], busy.start, busy.end)
    assert school.sync()[ADA].error == ""
    school.server.calendars[school.calendars[ADA]].failing = Unavailable("its server failed")
    assert school.sync()[ADA].problem == CalendarProblem.UNAVAILABLE
    assert school.school.free_starts(ADA) == school.all_starts()[1:]
    assert school.matrix(ADA)[0] == SlotStatus.BUSY


def test_spans_without_data_offer_no_slot_and_show_not_synced(db: Database) -> None:
    school = School(db)
    gap = Interval(school.slot(3).start, school.slot(5).end)
    school.server.calendars[school.calendars[ADA]].no_data.append(gap)

    result = school.sync()[ADA]

    assert result.error == "" and result.problem == CalendarProblem.NO_DATA
    assert result.unknown == 45
    starts = school.all_starts()
    assert school.school.free_starts(ADA) == starts[:3] + starts[6:]
    statuses = school.matrix(ADA)
    assert statuses[3:6] == [SlotStatus.NOT_SYNCED] * 3
    assert set(statuses[:3] + statuses[6:]) == {SlotStatus.AVAILABLE}
    assert school.calendar_row(ADA).problem == "no_data"

    school.server.calendars[school.calendars[ADA]].no_data.clear()  # the data came back
    assert school.sync()[ADA].problem is None
    assert school.school.free_starts(ADA) == starts
    assert school.calendar_row(ADA).problem is None


def test_no_data_outside_every_window_is_no_problem(db: Database) -> None:
    school = School(db)
    morning = school.slot(0).start - timedelta(hours=6)  # the same day, hours before
    school.server.calendars[school.calendars[ADA]].no_data.append(
        Interval(morning, morning + timedelta(hours=2))
    )
    result = school.sync()[ADA]
    assert result.problem is None and result.unknown == 0
    assert school.school.free_starts(ADA) == school.all_starts()
    assert school.calendar_row(ADA).problem is None


def test_a_failure_of_the_whole_account_is_every_teachers_own_line(db: Database) -> None:
    school = School(db)
    school.server.down = True
    results = school.sync()
    assert school.connector.free_busy_calls == [2]
    assert {r.problem for r in results.values()} == {CalendarProblem.UNAVAILABLE}


def test_healthz_and_metrics_count_per_account_and_kind_naming_no_teacher(
    db: Database,
) -> None:
    school = School(db)
    school.server.calendars[school.calendars[ADA]].failing = AccessDenied(
        f"calendar {school.calendars[ADA]!r} shares no free/busy"
    )
    school.server.calendars[school.calendars[ALAN]].no_data.append(
        Interval(school.slot(0).start, school.slot(1).end)
    )
    school.sync()
    with db.read() as session:
        state = read_state(session)
    [(_account, sync_state)] = state.accounts.items()
    assert sync_state.problems == {"access_denied": 1, "no_data": 1}
    lines = problems(state, ProcessMetrics())
    text = "\n".join(lines)
    assert "access_denied: 1" in text and "no_data" in text
    assert ADA not in text and ALAN not in text
    for calendar in school.calendars.values():
        assert calendar not in text


def test_a_refused_login_is_told_once_for_the_account_in_healthz(db: Database) -> None:
    school = School(db)
    sentence = (
        "account 'dav' (dav.lincoln.example.org): the server accepts only OAuth tokens "
        "(Bearer), not a user name and password (Basic): for Google Calendar use an account "
        'of type = "google"'
    )
    school.connector.refusal = AuthFailed(sentence)
    results = school.sync()
    assert {r.problem for r in results.values()} == {CalendarProblem.AUTH}
    assert {r.error for r in results.values()} == {sentence}  # sync says it per teacher
    with db.read() as session:
        state = read_state(session)
    lines = problems(state, ProcessMetrics())
    assert lines[0] == sentence  # the sentence sync told, the account named once
    assert any("2 calendars failing on account 'dav' (auth: 2;" in line for line in lines)


def test_the_sync_counts_problems_by_account_and_kind() -> None:
    metrics = ProcessMetrics()
    metrics.count(CALENDAR_PROBLEMS, account="m365", problem="not_found")
    assert metrics.counts(CALENDAR_PROBLEMS) == {(("account", "m365"), ("problem", "not_found")): 1}


# --- the teacher's own answer (mirrored calendars: CalDAV) -----------------------------


def test_an_invitation_the_teacher_declined_is_free_and_an_unanswered_one_busy(
    db: Database,
) -> None:
    school = School(db, MIRRORED_SYSTEM)
    declined, unanswered = school.slot(1), school.slot(4)
    school.server.add_invitation(
        school.calendars[ADA], declined.start, declined.end, attendee=ADA, partstat="DECLINED"
    )
    school.server.add_invitation(
        school.calendars[ADA],
        unanswered.start,
        unanswered.end,
        attendee=ADA.upper(),
        partstat="NEEDS-ACTION",
    )
    assert school.sync()[ADA].error == ""
    starts = school.all_starts()
    assert school.school.free_starts(ADA) == [s for s in starts if s != unanswered.start]


def test_the_servers_addresses_of_the_owner_know_the_teacher_by_another_address(
    db: Database,
) -> None:
    school = School(db, MIRRORED_SYSTEM)
    other = "a.lovelace@staff.lincoln.example.org"
    declined = school.slot(2)
    school.server.add_invitation(
        school.calendars[ADA], declined.start, declined.end, attendee=other, partstat="DECLINED"
    )
    assert school.sync()[ADA].error == ""
    assert declined.start not in school.school.free_starts(ADA)  # not known as Ada yet

    # The server names the owner's calendar-user addresses (RFC 6638): every stored event is
    # read again with them, though none of them changed.
    school.server.calendars[school.calendars[ADA]].owner = frozenset({other})
    school.server.forgotten_before = 10**6  # a full listing gives the addresses
    assert school.sync()[ADA].error == ""
    assert declined.start in school.school.free_starts(ADA)
    assert school.calendar_row(ADA).owner_addresses == other
