"""Running late as the use case (:func:`ptm_sync.app.channels.late.run_late`) on SQLite and
PostgreSQL: what it loads decides the plan — a meeting the parent organizes through a
booking address cannot move (only the parent can), a proposal of the teacher holds its
time, a meeting of another day is no part of it — and what it writes is the applier's."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from ptm_sync.adapters.store import Database, Meeting
from ptm_sync.app.channels import staff
from ptm_sync.app.channels.late import run_late
from ptm_sync.core.booking.values import Decision, Origin
from tests.support.booking import ADA, BROWNS, CHRIS, FAMILIES, PAT, SAM, TZ, SeededSchool
from tests.support.booking_address import booking_request

TEN = timedelta(minutes=10)
KAI = "kai@example.org"
#: Ada's families, and one more who meets her on the period's other evening.
PEOPLE = [*FAMILIES, *BROWNS, ("S9", "Ivy Lee", KAI, "Kai Lee", [ADA])]


def book(school: SeededSchool, guardian: str, slot: int) -> Decision:
    return staff.book(
        school.db,
        school.config,
        guardian=guardian,
        teacher=ADA,
        start=school.slot(slot).start.astimezone(TZ),
        now=school.now,
        video=school.video,
    )


def test_a_parents_booking_stays_and_stops_the_earlier_ones_a_later_one_moves(
    db: Database,
) -> None:
    school = SeededSchool.create(db, families=PEOPLE)
    first = book(school, PAT, 0)
    # Sam books Ada's 15:15 by inviting her booking address: Sam organizes that event.
    outcome = school.deliver(booking_request(school, SAM, ADA, slot=1))
    assert outcome.outcome == "applied"
    last = book(school, CHRIS, 2)
    friday = book(school, KAI, 8)  # the period's other evening
    assert first.after and last.after and friday.after
    with db.read() as session:
        parents = session.scalars(
            select(Meeting).where(Meeting.origin == Origin.BOOKING_ADDRESS.value)
        ).one()

    result = run_late(
        db,
        school.config,
        teacher=ADA.upper(),
        minutes=10,
        since=school.slot(0).start,
        now=school.now,
        video=school.video,
    )

    assert [(d.before.id if d.before else None, d.rule) for d in result.decisions] == [
        (first.after.id, "late-told"),
        (parents.id, "late-told"),
        (last.after.id, "late"),
    ]
    assert school.meeting(last.after.id).start == school.slot(2).start + TEN
    assert school.meeting(parents.id).start == school.slot(1).start
    assert school.meeting(friday.after.id).start == school.slot(8).start
    [history] = [h for h in school.history(last.after.id) if h.reason.startswith("the teacher")]
    assert history.old_start == school.slot(2).start and history.actor == "staff"


def test_a_proposal_of_the_teacher_holds_its_time(db: Database) -> None:
    school = SeededSchool.create(db, families=FAMILIES + BROWNS)
    booked = book(school, PAT, 0)
    school.propose(ADA, SAM, slot=1)  # unanswered: it holds 15:15
    assert booked.after

    result = run_late(
        db,
        school.config,
        teacher=ADA,
        minutes=5,
        since=school.slot(0).start,
        now=school.now,
        video=school.video,
    )

    assert [d.rule for d in result.decisions] == ["late-told"]
    assert school.meeting(booked.after.id).start == school.slot(0).start
