"""The availability service: what the store says a teacher's free times are."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ptm_sync.adapters.store import Calendar, Database, Teacher
from ptm_sync.app.read.availability import period_matrix, period_slots
from ptm_sync.config import settings as config_mod
from ptm_sync.core.model import SlotStatus
from tests.support.factories import make_guardian, make_meeting, make_period, make_teacher

CONFIG = config_mod.parse(
    """
[school]
name = "S"
timezone = "Europe/Berlin"
contact = "office@s.test"
[[periods]]
id = "p"
title = "P"
windows = ["2030-03-05T16:00/17:00"]
"""
)
NOW = datetime(2030, 1, 1, tzinfo=UTC)


def _teachers(db: Database) -> None:
    with db.write() as s:
        for key in ("read", "never"):
            make_teacher(s, key, email=f"{key}@s.test", name=key)
        read = s.query(Teacher).filter_by(key="read").one()
        s.add(Calendar(teacher_id=read.id, account="a", url="read", synced_at=NOW))


def test_a_teacher_whose_calendar_was_never_read_offers_nothing(db: Database) -> None:
    _teachers(db)
    period = CONFIG.period("p")
    with db.read() as s:
        slots = period_slots(s, CONFIG, period, now=NOW)
        cells = period_matrix(s, CONFIG, period)
    assert {r.teacher for r in slots} == {"read@s.test"}
    assert len(slots) == 4
    assert {c.status for c in cells if c.teacher == "never@s.test"} == {SlotStatus.NOT_SYNCED}


def test_slots_in_the_past_are_not_offered(db: Database) -> None:
    _teachers(db)
    period = CONFIG.period("p")
    during = datetime(2030, 3, 5, 15, 30, tzinfo=UTC)  # 16:30 in Berlin
    with db.read() as s:
        slots = period_slots(s, CONFIG, period, now=during)
    assert [r.start.strftime("%H:%M") for r in slots] == ["16:30", "16:45"]


def test_our_event_where_we_wrote_it_is_the_meeting_but_moved_elsewhere_it_is_busy(
    db: Database,
) -> None:
    from ptm_sync.adapters.store import BusyTime, CalendarEvent

    _teachers(db)
    period = CONFIG.period("p")
    at = datetime(2030, 3, 5, 15, 0, tzinfo=UTC)  # 16:00 in Berlin
    quarter = timedelta(minutes=15)
    with db.write() as s:
        teacher = s.query(Teacher).filter_by(key="read").one()
        calendar = s.query(Calendar).filter_by(teacher_id=teacher.id).one()
        guardian = make_guardian(s, "g@h.test")
        make_period(s)
        make_meeting(
            s,
            uid="ours@s.test",
            teacher=teacher,
            guardian=guardian,
            start=at,
            state="confirmed",
            now=NOW,
            sequence=1,
            partstat="ACCEPTED",
        )
        where_we_wrote = CalendarEvent(
            calendar_id=calendar.id, href="a.ics", uid="ours@s.test", ics=""
        )
        s.add(where_we_wrote)
        s.flush()
        s.add(
            BusyTime(
                event_id=where_we_wrote.id,
                teacher_id=teacher.id,
                start=at,
                end=at + quarter,
                tentative=False,
            )
        )
    with db.read() as s:
        cells = {
            c.start.strftime("%H:%M"): c.status
            for c in period_matrix(s, CONFIG, period)
            if c.teacher == "read@s.test"
        }
    assert cells["16:00"] == SlotStatus.BOOKED and cells["16:30"] == SlotStatus.AVAILABLE
    # The teacher drags our event to 16:30: that time is now busy too.
    with db.write() as s:
        busy = s.query(BusyTime).one()
        busy.start, busy.end = at + 2 * quarter, at + 3 * quarter
    with db.read() as s:
        cells = {
            c.start.strftime("%H:%M"): c.status
            for c in period_matrix(s, CONFIG, period)
            if c.teacher == "read@s.test"
        }
    assert cells["16:00"] == SlotStatus.BOOKED and cells["16:30"] == SlotStatus.BUSY
