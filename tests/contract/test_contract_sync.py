"""Calendar truth through a real sync pass, held against every calendar system (issue 14).

What the connector contract promises must reach the parents' slots: through
:func:`ptm_sync.app.sync.sync` and :func:`ptm_sync.app.read.availability.period_slots` on an SQLite
store, for each system of the contract suite, one calendar's error leaves the other
teachers' slots exact, a no-data answer offers no slot for that teacher in that span (the
matrix says ``not_synced``), and an invitation the teacher declined is free where the
calendar is ours to read.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from connectors.base import CalendarRef
from ptm_sync.adapters.store import Database, Teacher
from ptm_sync.app.read.availability import period_matrix, period_slots
from ptm_sync.app.sync import Connectors, SyncResult, sync
from ptm_sync.config.settings import Config, parse
from ptm_sync.core.errors import CalendarProblem
from ptm_sync.core.model import SlotStatus
from tests.contract.harness import START, System

SLOT = timedelta(minutes=15)
SLOTS = 12  # the window below: three hours of 15-minute slots from START
_teachers = itertools.count(1)


def config_for(account: str, database: Path) -> Config:
    """A school in UTC whose one period is the three hours from START, with one account of
    the system's id (its connector is provided, never opened from this entry)."""
    return parse(
        f"""
[school]
name = "Contract High"
timezone = "UTC"
contact = "office@school.test"
[database]
url = "sqlite:///{database}"
[[accounts]]
id = "{account}"
type = "caldav"
url = "https://127.0.0.1:9/unused/"
[[periods]]
id = "p"
title = "Conferences"
slot_minutes = 15
windows = ["{START:%Y-%m-%dT%H:%M}/{START + SLOTS * SLOT:%H:%M}"]
"""
    )


@dataclass
class School:
    system: System
    db: Database
    config: Config
    connectors: Connectors

    def teacher(self, cal: CalendarRef, email: str = "") -> str:
        number = next(_teachers)
        email = email or f"teacher{number}@school.test"
        with self.db.write() as session:
            session.add(
                Teacher(
                    email=email,
                    name=f"Teacher {number}",
                    key=f"t{number}",
                    account=cal.account,
                    calendar=cal.calendar,
                )
            )
        return email

    def sync(self) -> dict[str, SyncResult]:
        found = sync(self.db, self.config, self.connectors, now=START - timedelta(days=1))
        return {r.teacher: r for r in found}

    def starts(self, email: str) -> list[datetime]:
        with self.db.read() as session:
            rows = period_slots(
                session,
                self.config,
                self.config.period("p"),
                now=START - timedelta(days=1),
                teacher_email=email,
            )
        return [r.start for r in rows]

    def matrix(self, email: str) -> list[SlotStatus]:
        with self.db.read() as session:
            rows = period_matrix(session, self.config, self.config.period("p"), teacher_email=email)
        return [r.status for r in rows]


@pytest.fixture
def school(system: System, tmp_path: Path) -> Iterator[School]:
    probe = system.calendar("probe")
    config = config_for(probe.account, tmp_path / "school.db")
    db = Database(config.database.url)
    db.migrate()
    connectors = Connectors(config)
    connectors.provide(probe.account, system.connector)
    try:
        yield School(system, db, config, connectors)
    finally:
        db.dispose()


def at(i: int) -> datetime:
    return START + i * SLOT


ALL = [at(i) for i in range(SLOTS)]


def test_one_calendars_error_leaves_the_other_teachers_slots_exact(school: School) -> None:
    system = school.system
    ada_cal, bob_cal, carol_cal = (system.calendar(n) for n in ("ada", "bob", "carol"))
    system.add_busy(ada_cal, at(2), at(3))
    system.add_busy(bob_cal, at(5), at(7), tentative=True)
    if not system.fail_free_busy(carol_cal, CalendarProblem.UNAVAILABLE):
        carol_cal = replace(carol_cal, calendar=_missing(carol_cal.calendar))  # NotFound
    ada, bob, carol = (school.teacher(c) for c in (ada_cal, bob_cal, carol_cal))

    results = school.sync()

    assert results[ada].error == "" and results[bob].error == ""
    assert results[carol].error and results[carol].problem in {
        CalendarProblem.UNAVAILABLE,
        CalendarProblem.NOT_FOUND,
    }
    assert ada_cal.calendar not in results[carol].error
    assert bob_cal.calendar not in results[carol].error
    assert school.starts(ada) == [s for s in ALL if s != at(2)]
    assert school.starts(bob) == [s for s in ALL if s not in (at(5), at(6))]
    assert school.starts(carol) == []  # never read: nothing offered
    assert set(school.matrix(carol)) == {SlotStatus.NOT_SYNCED}


def test_a_no_data_answer_offers_no_slot_there_and_the_matrix_says_not_synced(
    school: School,
) -> None:
    system = school.system
    dan_cal, eve_cal = system.calendar("dan"), system.calendar("eve")
    system.add_busy(dan_cal, at(0), at(1))
    if not system.no_data(dan_cal, at(6), at(9)):
        pytest.skip(f"{system.name} always has its data: busy time is computed from the events")
    dan, eve = school.teacher(dan_cal), school.teacher(eve_cal)

    results = school.sync()

    assert results[dan].error == "" and results[dan].problem == CalendarProblem.NO_DATA
    offered = school.starts(dan)
    statuses = school.matrix(dan)
    assert statuses[6:9] == [SlotStatus.NOT_SYNCED] * 3
    assert not any(at(6) <= s < at(9) for s in offered)
    assert at(0) not in offered and statuses[0] in (SlotStatus.BUSY, SlotStatus.NOT_SYNCED)
    # Every slot is either offered or said to be without data or busy; where the system
    # places its no-data span exactly, the slots beside it stay offered.
    for i, status in enumerate(statuses):
        assert (at(i) in offered) is (status == SlotStatus.AVAILABLE)
    if statuses[1] != SlotStatus.NOT_SYNCED:  # not a whole-range no-data answer
        assert [at(i) for i in (1, 2, 3, 4, 5, 9, 10, 11)] == [
            s for s in offered if s in {at(i) for i in (1, 2, 3, 4, 5, 9, 10, 11)}
        ]
        assert len(offered) == 8
    assert school.starts(eve) == ALL  # the other teacher keeps every slot


def test_an_invitation_the_teacher_declined_frees_the_time(school: School) -> None:
    system = school.system
    cal = system.calendar("fay")
    declined = system.add_invitation(cal, at(3), at(4), partstat="DECLINED")
    if declined is None:
        pytest.skip(f"{system.name} computes free/busy itself: the vendor counts invitations")
    system.add_invitation(cal, at(8), at(9), partstat="NEEDS-ACTION")
    fay = school.teacher(cal, email=declined)

    assert school.sync()[fay].error == ""

    assert school.starts(fay) == [s for s in ALL if s != at(8)]


def _missing(calendar: str) -> str:
    if calendar.startswith("http") or calendar.startswith("/"):
        return calendar.rstrip("/") + "-gone/"
    if "@" in calendar:
        local, _, domain = calendar.partition("@")
        return f"{local}-gone@{domain}"
    return calendar + "-gone"
