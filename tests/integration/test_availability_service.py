"""The availability service: what the store says a teacher's free times are."""

from __future__ import annotations

from datetime import UTC, datetime

from ptm_sync import config as config_mod
from ptm_sync.availability import period_matrix, period_slots
from ptm_sync.model import SlotStatus
from ptm_sync.store import Calendar, Database, Teacher

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
            s.add(
                Teacher(
                    email=f"{key}@s.test",
                    name=key,
                    key=key,
                    account="a",
                    calendar=key,
                    room="",
                    booking_address="",
                )
            )
        s.flush()
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
    assert {c.status for c in cells if c.teacher == "never@s.test"} == {SlotStatus.BUSY}


def test_slots_in_the_past_are_not_offered(db: Database) -> None:
    _teachers(db)
    period = CONFIG.period("p")
    during = datetime(2030, 3, 5, 15, 30, tzinfo=UTC)  # 16:30 in Berlin
    with db.read() as s:
        slots = period_slots(s, CONFIG, period, now=during)
    assert [r.start.strftime("%H:%M") for r in slots] == ["16:30", "16:45"]
