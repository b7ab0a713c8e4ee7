"""Sync takes the path a connector's capabilities say, never its type name (issue 8, item 1):
a mirrored system is read as events, a server-free/busy one by asking for busy time — and
both give the same busy time.  The in-memory connector stands for each kind of system."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from connectors.base import Capability
from connectors.memory import MIRRORED_SYSTEM, SERVER_SYSTEM, MemoryCalendars, MemoryConnector
from ptm_sync.adapters.store import BusyTime, CalendarEvent, Database, Teacher
from ptm_sync.app.sync import Connectors, sync
from tests.support.booking import ADA, ALAN, SeededSchool


@pytest.mark.parametrize("system", [MIRRORED_SYSTEM, SERVER_SYSTEM], ids=["mirrored", "server"])
def test_sync_reads_busy_time_the_way_the_system_offers_it(
    db: Database, system: frozenset[Capability]
) -> None:
    school = SeededSchool.create(db)
    server = MemoryCalendars(tz=school.config.tz)
    with db.read() as session:
        calendars = {t.email: t.calendar for t in session.scalars(select(Teacher))}
    for calendar in calendars.values():
        server.add_calendar(calendar)
    start = school.slot(1).start
    server.add_busy(calendars[ADA], start, start + timedelta(minutes=45))
    connectors = Connectors(school.config)
    [account] = school.config.accounts
    connectors.provide(account.id, MemoryConnector(server, connectors.horizon, system))

    results = sync(db, school.config, connectors, now=school.now)

    assert sorted(r.teacher for r in results) == sorted([ADA, ALAN])
    assert [r.error for r in results] == ["", ""], results
    with db.read() as session:
        ada = session.scalars(select(Teacher).where(Teacher.email == ADA)).one()
        busy = session.execute(
            select(BusyTime.start, BusyTime.end).where(BusyTime.teacher_id == ada.id)
        ).all()
        mirrored = session.scalars(select(CalendarEvent.id)).all()
    assert [(s, e) for s, e in busy] == [(start, start + timedelta(minutes=45))]
    # Only a mirrored system's events are kept (to follow what the teacher does to ours).
    assert bool(mirrored) is (Capability.MIRRORED in system)
