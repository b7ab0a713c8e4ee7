"""The life cycle around a decline: stale replies, re-proposals, the waiting list, holds,
and separated parents (issue 6; DESIGN §3).  In process, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from ptm_sync.adapters.store import Database, Guardian, Meeting, MeetingGuardian
from ptm_sync.adapters.store import WaitlistEntry as WaitlistRow
from ptm_sync.app.channels.offers import invite
from ptm_sync.app.services import expire_holds
from tests.support.booking import (
    ADA,
    ALEX,
    BROWNS,
    CHRIS,
    FAMILIES,
    PAT,
    PERIODS,
    SAM,
    SeededSchool,
)

#: One short evening: Ada has two slots only.
TWO_SLOTS = """
[[periods]]
id = "spring"
title = "Spring conferences"
slot_minutes = 15
gap_minutes = 5
hold_hours = 48
max_reproposals = 2
format = "video"
windows = ["2027-04-12T15:00/15:30"]
"""
HOUR = timedelta(hours=1)


def _meetings(school: SeededSchool, guardian: str | None = None) -> list[Meeting]:
    with school.db.read() as session:
        query = select(Meeting).order_by(Meeting.id)
        if guardian is not None:
            query = query.where(Meeting.guardian_id.in_(_guardian_ids(school, guardian)))
        return list(session.scalars(query))


def _guardian_ids(school: SeededSchool, email: str) -> list[int]:
    with school.db.read() as session:
        return list(session.scalars(select(Guardian.id).where(Guardian.email == email)))


def _waiting(school: SeededSchool) -> list[tuple[int, str]]:
    with school.db.read() as session:
        rows = session.scalars(select(WaitlistRow).order_by(WaitlistRow.id))
        return [(r.guardian_id, r.state) for r in rows]


# --- the stale reply of ../shared/cases/README.md ----------------------------------------


def test_a_decline_of_the_original_after_a_granted_counter_changes_nothing(db: Database) -> None:
    school = SeededSchool.create(db)
    meeting = school.propose(ADA, PAT, slot=0)
    original = school.latest_request(meeting.id)  # SEQUENCE 0
    old_decline = school.reply(meeting, "DECLINED", invitation=original, at=timedelta(minutes=5))
    granted = school.deliver(school.counter(meeting, slot=3, at=timedelta(minutes=10)))
    assert granted.reason == "counter accepted"
    moved = school.meeting(meeting.id)
    assert (moved.state, moved.sequence) == ("confirmed", 1)

    # The decline answers SEQUENCE 0 and was stamped before the counter.
    outcome = school.deliver(old_decline, at=timedelta(minutes=20))

    assert outcome.outcome == "stale"
    after = school.meeting(meeting.id)
    assert (after.state, after.start, after.sequence) == ("confirmed", school.slot(3).start, 1)
    assert [h.to_state for h in school.history(meeting.id)] == ["proposed", "confirmed"]
    assert school.inbound(outcome.inbound_id or 0).outcome == "stale"


# --- re-proposals --------------------------------------------------------------------------


def test_a_decline_is_followed_by_the_next_best_time_until_max_reproposals(db: Database) -> None:
    school = SeededSchool.create(db)
    first = school.propose(ADA, PAT, slot=3)
    offers = [first]
    for round_ in range(3):
        latest = offers[-1]
        at = timedelta(hours=round_ + 1)
        school.deliver(school.reply(latest, "DECLINED", at=at), at=at)
        mine = _meetings(school, PAT)
        if round_ < 2:
            new = mine[-1]
            assert new.id != latest.id and new.state == "proposed"
            assert (new.origin, new.reproposals, new.replaces_id) == (
                "reproposal",
                round_ + 1,
                latest.id,
            )
            invitation = school.emails(new.id)[-1]
            assert invitation.method == "REQUEST" and invitation.subject.startswith(
                "New time proposed"
            )
            offers.append(new)
        else:  # max_reproposals (2) reached: told how else to book, nothing proposed
            assert mine[-1].id == latest.id and mine[-1].state == "declined"
            text = school.emails(latest.id)[-1].message.get_body(("plain",)).get_content()
            assert "book+ada@lincoln.example.org" in text
    # Never the same time twice.
    assert len({m.start for m in offers}) == 3


# --- the waiting list ------------------------------------------------------------------------


def test_a_family_without_a_time_waits_and_gets_the_first_freed_slot(db: Database) -> None:
    families = [  # three families for Ada's two slots
        ("S1", "Mia Johnson", PAT, "Pat Johnson", [ADA]),
        ("S3", "Ava Smith", SAM, "Sam Smith", [ADA]),
        ("S7", "Ivy Lee", "lee@example.org", "Jo Lee", [ADA]),
    ]
    school = SeededSchool.create(db, families=families, periods=TWO_SLOTS)
    result = invite(school.db, school.config, school.period(), now=school.now, video=school.video)
    with_ada = [m for m in result.proposed if m.teacher.email == ADA]
    assert len(with_ada) == 2 and result.waitlisted == 1
    [(waiting_guardian, state)] = _waiting(school)
    assert state == "waiting"
    declining = with_ada[0]

    school.deliver(school.reply(declining.id, "DECLINED", by=declining.parties[0].email))

    # The freed slot goes to the waiting family, with a hold, and it is told why.
    offered = [m for m in _meetings(school) if m.origin == "waitlist"]
    assert len(offered) == 1 and offered[0].guardian_id == waiting_guardian
    assert (offered[0].start, offered[0].state) == (declining.start, "proposed")
    assert offered[0].hold_until is not None
    assert school.emails(offered[0].id)[-1].subject.startswith("A time has become free")
    # The family that declined has no other time left: it now waits in its turn.
    assert _waiting(school) == [
        (waiting_guardian, "offered"),
        (declining.parties[0].guardian_id, "waiting"),
    ]


# --- holds -----------------------------------------------------------------------------------


def test_a_tentative_answer_keeps_the_hold_until_its_deadline(db: Database) -> None:
    school = SeededSchool.create(db)
    meeting = school.propose(ADA, PAT, slot=0)
    assert school.deliver(school.reply(meeting, "TENTATIVE")).reason == "tentative"
    held = school.meeting(meeting.id)
    assert (held.state, held.hold_until) == ("proposed", meeting.hold_until)
    assert (
        expire_holds(school.db, school.config, now=school.now + 47 * HOUR, video=school.video) == 0
    )
    assert (
        expire_holds(school.db, school.config, now=school.now + 48 * HOUR, video=school.video) == 1
    )
    assert school.meeting(meeting.id).state == "expired"


# --- separated parents ----------------------------------------------------------------------


@pytest.mark.parametrize("where", ["roster", "period"])
def test_separated_parents_each_get_their_own_meeting(db: Database, where: str) -> None:
    periods = None
    modes = {"S4": "separate"} if where == "roster" else None
    if where == "period":
        periods = PERIODS.replace('format = "video"', 'format = "video"\nmeeting_mode = "separate"')
    extra = {"periods": periods} if periods else {}
    school = SeededSchool.create(db, families=FAMILIES + BROWNS, modes=modes, **extra)

    result = invite(school.db, school.config, school.period(), now=school.now, video=school.video)

    zoe = [m for m in result.proposed if [s.student_id for s in m.students] == ["S4"]]
    assert sorted(m.parties[0].email for m in zoe) == sorted([CHRIS, ALEX])
    assert all(len(m.parties) == 1 for m in zoe)  # each guardian on their own
    assert zoe[0].start != zoe[1].start
    with school.db.read() as session:
        links = session.scalars(
            select(MeetingGuardian).where(MeetingGuardian.meeting_id.in_([m.id for m in zoe]))
        ).all()
    assert len(links) == 2
    # Each guardian's itinerary stays clash-free: the admission rule checks it per meeting.
    for m in zoe:
        invitation = [e for e in school.emails(m.id) if e.method == "REQUEST"]
        assert [e.to for e in invitation] == [[m.parties[0].email]]
    # One guardian's answer is theirs alone.
    school.deliver(school.reply(zoe[0].id, "ACCEPTED", by=zoe[0].parties[0].email))
    assert {school.meeting(m.id).state for m in zoe} == {"confirmed", "proposed"}
    assert SAM  # the other families are unaffected


# --- Gmail's "propose a new time" -----------------------------------------------------------


@pytest.mark.parametrize("client", ["gmail", "outlook"])
def test_a_proposed_time_is_granted_whichever_client_proposes_it(db: Database, client: str) -> None:
    school = SeededSchool.create(db)
    meeting = school.propose(ADA, PAT, slot=0)
    outcome = school.deliver(school.counter(meeting, slot=4, client=client, comment="after work"))
    assert outcome.reason == "counter accepted"
    moved = school.meeting(meeting.id)
    assert (moved.state, moved.start) == ("confirmed", school.slot(4).start)


def test_a_proposed_time_that_is_taken_is_declined_with_alternatives(db: Database) -> None:
    school = SeededSchool.create(db)
    meeting = school.propose(ADA, PAT, slot=0)
    school.propose(ADA, SAM, slot=4)
    outcome = school.deliver(school.counter(meeting, slot=4, client="gmail"))
    assert outcome.reason == "counter declined: the teacher is not free then"
    answer = school.emails(meeting.id)[-1]
    assert answer.method == "DECLINECOUNTER" and "These times are free" in str(
        answer.event["COMMENT"]
    )
    assert school.meeting(meeting.id).start == school.slot(0).start
