"""Requests to a teacher's booking address, decided like an Exchange room mailbox (DESIGN §3).

In process, on SQLite and PostgreSQL, with requests shaped like Gmail's and Outlook's
invitations (:mod:`ptm_sync.demo.organizers`).  The parent stays organizer, the meeting
keeps the parent's UID; granted → REPLY ACCEPTED, a follow-up with the video link and the
teacher's calendar; refused → REPLY DECLINED with the reason and free alternatives.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from ptm_sync.adapters.store import Database, Meeting
from ptm_sync.app import outbox
from ptm_sync.app.channels.replies import reprocess
from ptm_sync.core.model import Interval
from tests.support.booking import (
    ADA,
    ALAN,
    ALEX,
    BROWNS,
    CHRIS,
    FAMILIES,
    PAT,
    PERIODS,
    SAM,
    VIDEO_BASE,
    SeededSchool,
    SentEmail,
)
from tests.support.booking_address import address_of, booking_request


@pytest.fixture
def school(db: Database) -> SeededSchool:
    return SeededSchool.create(db)


def _with(db: Database, extra: str = "", **config: str) -> SeededSchool:
    return SeededSchool.create(db, periods=PERIODS + extra, **config)


def _only_meeting(school: SeededSchool) -> Meeting:
    with school.db.read() as session:
        return session.scalars(select(Meeting)).one()


def _answers(school: SeededSchool) -> list[SentEmail]:
    return [e for e in school.emails() if e.method == "REPLY"]


@pytest.mark.parametrize("client", ["gmail", "outlook"])
def test_a_request_for_a_free_time_is_accepted_and_the_parent_stays_organizer(
    school: SeededSchool, client: str
) -> None:
    outcome = school.deliver(booking_request(school, PAT, ADA, slot=2, client=client))

    assert (outcome.outcome, outcome.reason) == ("applied", "booked")
    meeting = _only_meeting(school)
    assert (meeting.state, meeting.origin, meeting.organizer) == (
        "confirmed",
        "booking_address",
        PAT,
    )
    assert meeting.uid == outcome.meeting_uid and not meeting.uid.endswith("lincoln.example.org")
    assert (meeting.start, meeting.end) == (school.slot(2).start, school.slot(2).end)
    [reply] = _answers(school)
    event = reply.event
    assert reply.to == [PAT] and str(event["UID"]) == meeting.uid
    [attendee] = event.attendees
    assert str(attendee).lower() == f"mailto:{address_of(ADA)}"
    assert attendee.params["PARTSTAT"] == "ACCEPTED"
    assert str(event["ORGANIZER"]).lower() == f"mailto:{PAT}"
    assert reply.message["From"].addresses[0].addr_spec == address_of(ADA)
    # The follow-up carries the video link; the teacher's calendar gets the event.
    details = [e for e in school.emails() if e.method is None]
    assert len(details) == 1 and VIDEO_BASE in details[0].message.get_body().get_content()
    assert len(school.outbox_rows(meeting.id, outbox.CALENDAR)) == 1
    assert school.slot(2).start not in school.free_starts(ADA)


@pytest.mark.parametrize(
    ("case", "why"),
    [
        ("busy", "the teacher is not free then"),
        ("off-grid", "meetings are 15 minutes long and start at the listed times"),
        ("too-long", "meetings are 15 minutes long"),
        ("not-their-teacher", "only the families of this teacher's students can book here"),
    ],
)
def test_a_request_that_breaks_a_rule_is_declined_with_the_reason_and_free_times(
    school: SeededSchool, case: str, why: str
) -> None:
    grid = school.slot(3)
    parent, teacher, slot = PAT, ADA, grid
    if case == "busy":
        school.propose(ADA, SAM, slot=3)
    elif case == "off-grid":
        slot = Interval(grid.start + timedelta(minutes=5), grid.end + timedelta(minutes=5))
    elif case == "too-long":
        slot = Interval(grid.start, grid.end + timedelta(minutes=15))
    else:
        parent, teacher = SAM, ALAN  # Sam's child is not in Alan's classes
    rows = len(school.outbox_rows())

    outcome = school.deliver(booking_request(school, parent, teacher, slot=slot))

    assert (outcome.outcome, outcome.reason) == ("applied", f"request declined: {why}")
    assert len(school.outbox_rows()) == rows + 1
    [reply] = _answers(school)
    [attendee] = reply.event.attendees
    assert attendee.params["PARTSTAT"] == "DECLINED"
    comment = str(reply.event["COMMENT"])
    assert why in comment
    if case != "not-their-teacher":
        assert "These times are free" in comment
    with school.db.read() as session:
        booked = session.scalars(select(Meeting).where(Meeting.organizer == parent)).all()
    assert booked == []


def test_a_request_after_booking_closed_is_declined(school: SeededSchool) -> None:
    closes = school.period("open-day").booking_closes
    assert closes is not None
    late = closes - school.now + timedelta(minutes=1)
    raw = booking_request(school, SAM, ADA, slot=0, period_id="open-day", at=late)
    outcome = school.deliver(raw, at=late)
    assert outcome.reason == "request declined: booking has closed"


def test_a_request_too_far_ahead_is_declined(db: Database) -> None:
    school = _with(db, "\n[booking_address]\nbooking_window_days = 7\n")
    outcome = school.deliver(booking_request(school, PAT, ADA, slot=2))
    assert outcome.reason == "request declined: bookings are taken up to 7 days ahead"


STRANGER = "someone@example.org"


def test_strangers_never_book_and_are_not_answered(school: SeededSchool) -> None:
    outcome = school.deliver(booking_request(school, STRANGER, ADA, slot=2))
    assert (outcome.outcome, outcome.reason) == ("quarantined", "stranger")
    assert school.emails() == []


def test_strangers_are_declined_when_external_messages_are_processed(db: Database) -> None:
    school = _with(db, "\n[booking_address]\nprocess_external_meeting_messages = true\n")
    outcome = school.deliver(booking_request(school, STRANGER, ADA, slot=2))
    assert outcome.reason.startswith("request declined: only the families")
    [reply] = _answers(school)
    assert reply.to == [STRANGER]
    assert len(school.emails()) == 1
    with school.db.read() as session:
        assert session.scalars(select(Meeting)).all() == []


def test_the_parents_update_moves_the_booking_and_their_cancel_ends_it(
    school: SeededSchool,
) -> None:
    first = school.deliver(booking_request(school, PAT, ADA, slot=2, uid="pat-1@example.net"))
    assert first.reason == "booked"

    moved = school.deliver(
        booking_request(school, PAT, ADA, slot=5, uid="pat-1@example.net", sequence=1,
                        at=timedelta(hours=1)),
        at=timedelta(hours=1),
    )  # fmt: skip
    assert moved.reason == "moved"
    meeting = _only_meeting(school)
    assert (meeting.start, meeting.sequence, meeting.state) == (
        school.slot(5).start,
        1,
        "confirmed",
    )
    assert school.slot(2).start in school.free_starts(ADA)

    cancelled = school.deliver(
        booking_request(school, PAT, ADA, slot=5, uid="pat-1@example.net", sequence=2,
                        method="CANCEL", at=timedelta(hours=2)),
        at=timedelta(hours=2),
    )  # fmt: skip
    assert cancelled.reason == "cancelled"
    assert _only_meeting(school).state == "cancelled"
    assert school.outbox_rows(meeting.id, outbox.CALENDAR)[-1].key.endswith(":cancelled")
    assert school.slot(5).start in school.free_starts(ADA)


def test_an_update_to_a_taken_time_is_declined_and_the_booking_stays(
    school: SeededSchool,
) -> None:
    school.deliver(booking_request(school, PAT, ADA, slot=2, uid="pat-1@example.net"))
    school.propose(ADA, SAM, slot=6)
    outcome = school.deliver(
        booking_request(school, PAT, ADA, slot=6, uid="pat-1@example.net", sequence=1,
                        at=timedelta(hours=1)),
        at=timedelta(hours=1),
    )  # fmt: skip
    assert outcome.reason == "request declined: the teacher is not free then"
    with school.db.read() as session:
        mine = session.scalars(select(Meeting).where(Meeting.organizer == PAT)).one()
    assert (mine.state, mine.start) == ("confirmed", school.slot(2).start)
    reply = _answers(school)[-1]
    # The answer is to the version asked for (its SEQUENCE and time), and names the booking
    # that stays.
    assert int(reply.event["SEQUENCE"]) == 1
    assert school.slot(6).start.astimezone(reply.event.DTSTART.tzinfo) == reply.event.DTSTART
    text = reply.message.get_body(("plain",)).get_content()
    assert "Your meeting stays at" in text and "These times are free" in text
    # Setting the time back is accepted again.
    back = school.deliver(
        booking_request(school, PAT, ADA, slot=2, uid="pat-1@example.net", sequence=2,
                        at=timedelta(hours=2)),
        at=timedelta(hours=2),
    )  # fmt: skip
    assert back.outcome == "applied" and _answers(school)[-1].method == "REPLY"


def test_a_family_may_book_the_very_time_it_was_offered(school: SeededSchool) -> None:
    offered = school.propose(ADA, PAT, slot=3)
    outcome = school.deliver(booking_request(school, PAT, ADA, slot=3))
    assert outcome.reason == "booked"
    assert school.meeting(offered.id).state == "superseded"
    with school.db.read() as session:
        mine = session.scalars(select(Meeting).where(Meeting.organizer == PAT)).one()
    assert (mine.state, mine.start) == ("confirmed", school.slot(3).start)


def test_a_stale_update_changes_nothing(school: SeededSchool) -> None:
    school.deliver(booking_request(school, PAT, ADA, slot=2, uid="pat-1@example.net", sequence=3))
    old = booking_request(school, PAT, ADA, slot=5, uid="pat-1@example.net", sequence=1)
    assert school.deliver(old, at=timedelta(hours=1)).outcome == "stale"
    assert _only_meeting(school).start == school.slot(2).start


def test_a_booking_supersedes_the_familys_unanswered_proposal(school: SeededSchool) -> None:
    offered = school.propose(ADA, PAT, slot=0)
    outcome = school.deliver(booking_request(school, PAT, ADA, slot=4))
    assert outcome.reason == "booked"
    assert school.meeting(offered.id).state == "superseded"
    cancel = school.emails(offered.id)[-1]
    assert cancel.method == "CANCEL" and cancel.to == [PAT]


def test_the_booking_address_follows_the_config_pattern(db: Database) -> None:
    school = _with(db, mail='booking_address = "meet-{teacher_key}@lincoln.example.org"')
    raw = booking_request(school, PAT, ADA, slot=2).replace(
        address_of(ADA).encode(), b"meet-ada@lincoln.example.org"
    )
    assert school.deliver(raw).reason == "booked"
    old = booking_request(school, PAT, ALAN, slot=3)  # book+alan@ is no address any more
    assert school.deliver(old, at=timedelta(hours=1)).reason == "not-for-a-booking-address"


def test_manual_processing_leaves_requests_to_staff_and_a_release_decides_them(
    db: Database,
) -> None:
    school = _with(db, '\n[booking_address]\nautomate_processing = "none"\n')
    outcome = school.deliver(booking_request(school, PAT, ADA, slot=2))
    assert (outcome.outcome, outcome.reason) == ("quarantined", "booking-address-manual")
    assert school.emails() == []

    released = reprocess(
        school.db, school.config, outcome.inbound_id or 0, now=school.now, video=school.video
    )

    assert (released.outcome, released.reason) == ("applied", "booked")
    assert [e.method for e in _answers(school)] == ["REPLY"]
    assert _only_meeting(school).state == "confirmed"


def test_the_additional_response_is_appended_to_every_answer(db: Database) -> None:
    school = _with(db, '\n[booking_address]\nadd_additional_response = "Parking: lot B."\n')
    school.deliver(booking_request(school, PAT, ADA, slot=2))
    [reply] = _answers(school)
    assert "Parking: lot B." in reply.message.get_body(("plain",)).get_content()


def test_a_joint_students_other_guardian_is_a_party_and_only_the_organizer_is_answered(
    db: Database,
) -> None:
    school = SeededSchool.create(db, families=FAMILIES + BROWNS)
    outcome = school.deliver(booking_request(school, ALEX, ADA, slot=2))
    assert outcome.reason == "booked"
    with school.db.read() as session:
        meeting = session.scalars(select(Meeting).where(Meeting.organizer == ALEX)).one()
        answers = {g.guardian.email: g.partstat for g in meeting.guardians}
    assert answers == {ALEX: "ACCEPTED", CHRIS: "NEEDS-ACTION"}
    assert {tuple(e.to) for e in school.emails()} == {(ALEX,)}
    # The family has its meeting with Ada: Chris books her no second time.
    again = school.deliver(booking_request(school, CHRIS, ADA, slot=5, at=timedelta(hours=1)))
    assert again.reason.startswith("request declined: the family already has a meeting")
