"""Conflicts read from the store (DESIGN §3 "Teacher-side changes", §7 ``meetings
--conflicts``): the school's events feed blocks every teacher, so its event over a
confirmed meeting is a conflict too; a proposal is none (nothing is booked yet)."""

from __future__ import annotations

from datetime import timedelta

from ptm_sync.adapters.store import Database, SchoolBusy, SchoolFeed
from ptm_sync.app.read.conflicts import conflicts
from ptm_sync.core.model import Interval
from tests.support.booking import ADA, PAT, SAM, SeededSchool


def test_a_school_event_over_a_confirmed_meeting_is_a_conflict(db: Database) -> None:
    school = SeededSchool.create(db)
    booked = school.propose(ADA, PAT, slot=0)
    assert school.deliver(school.reply(booked, "ACCEPTED")).outcome == "applied"
    pending = school.propose(ADA, SAM, slot=4)
    drill = school.slot(0)
    assembly = school.slot(4)
    with db.write() as session:
        session.add(SchoolFeed(account="events", url="https://school.example/events.ics"))
        session.flush()
        for span in (drill, assembly):
            start = span.start + timedelta(minutes=5)
            session.add(SchoolBusy(account="events", start=start, end=start + timedelta(hours=1)))
    with db.read() as session:
        found = conflicts(session)
    assert set(found) == {booked.id}  # the proposal is no booked meeting
    assert found[booked.id] == Interval(
        drill.start + timedelta(minutes=5), drill.start + timedelta(minutes=65)
    )
    assert pending.id not in found
    with db.read() as session:
        assert conflicts(session, after=drill.end + timedelta(days=1)) == {}
