"""Running late as the use case (:func:`ptm_sync.app.channels.late.run_late`) on SQLite and
PostgreSQL: what it loads decides the plan — a meeting the parent organizes through a
booking address cannot move (only the parent can), a proposal of the teacher holds its
time, a meeting of another day is no part of it, nor is one already started at ``now`` —
and what it writes is the applier's."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from ptm_sync.adapters.store import Database, Meeting
from ptm_sync.app.channels import staff
from ptm_sync.app.channels.late import run_late
from ptm_sync.core.booking.values import Decision, Origin
from ptm_sync.core.errors import BookingRefused
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


def test_only_meetings_not_started_at_now_move_or_are_told(db: Database) -> None:
    school = SeededSchool.create(db, families=FAMILIES + BROWNS)
    over, starting, later = book(school, PAT, 0), book(school, SAM, 1), book(school, CHRIS, 2)
    assert over.after and starting.after and later.after
    queued = {m: len(school.emails(m)) for m in (over.after.id, starting.after.id)}

    # Late "from" the evening's start, said when the first meeting is over: the one
    # starting this very minute has not started yet, and moves.
    result = run_late(
        db,
        school.config,
        teacher=ADA,
        minutes=10,
        since=school.slot(0).start,
        now=school.slot(1).start,
        video=school.video,
    )

    assert result.started == 1
    assert [(d.before.id if d.before else None, d.rule) for d in result.decisions] == [
        (starting.after.id, "late"),
        (later.after.id, "late"),
    ]
    assert school.meeting(over.after.id).start == school.slot(0).start
    assert len(school.emails(over.after.id)) == queued[over.after.id]  # not told
    assert len(school.emails(starting.after.id)) == queued[starting.after.id] + 1

    # A minute into the last meeting: all have started, nothing is decided or sent.
    emails = len(school.emails())
    none = run_late(
        db,
        school.config,
        teacher=ADA,
        minutes=10,
        since=school.slot(0).start,
        now=school.slot(2).start + TEN + timedelta(minutes=1),
        video=school.video,
    )
    assert (none.decisions, none.left, none.started) == ([], [], 3)
    assert len(school.emails()) == emails
    assert school.meeting(later.after.id).start == school.slot(2).start + TEN


def test_more_than_four_hours_late_is_refused(db: Database) -> None:
    school = SeededSchool.create(db)
    booked = book(school, PAT, 0)
    assert booked.after

    with pytest.raises(BookingRefused, match="cancel --teacher EMAIL --date DATE"):
        run_late(
            db,
            school.config,
            teacher=ADA,
            minutes=241,
            since=school.slot(0).start,
            now=school.now,
            video=school.video,
        )
    assert school.meeting(booked.after.id).start == school.slot(0).start
