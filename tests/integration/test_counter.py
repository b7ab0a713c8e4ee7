"""Propose new time (COUNTER): granted when the time is free and fits the family's evening,
declined with up to three free alternatives otherwise (DESIGN §3, RFC 5546 §3.2.7-8)."""

from __future__ import annotations

from datetime import timedelta

from icalendar import Calendar

from ptm_sync.adapters.store import Database
from ptm_sync.core.model import Interval
from ptm_sync.demo import parents
from tests.support.booking import ADA, ALAN, PAT, SAM, TZ, SeededSchool, calendar_of, event_of

MINUTE = timedelta(minutes=1)


def _counter(school: SeededSchool, meeting_id: int, slot: Interval, comment: str = "") -> bytes:
    return parents.propose_new_time(
        school.latest_request(meeting_id),
        slot.start,
        slot.end,
        tz=TZ,
        now=school.now + 10 * MINUTE,
        comment=comment,
    )


def test_a_free_time_is_granted_and_the_meeting_confirmed_there(db: Database) -> None:
    school = SeededSchool.create(db)
    meeting = school.propose(ADA, PAT, slot=0)
    wanted = school.slot(4)
    outcome = school.deliver(_counter(school, meeting.id, wanted, "I finish work at 4"))
    assert (outcome.outcome, outcome.reason) == ("applied", "counter accepted")
    moved = school.meeting(meeting.id)
    assert (moved.start, moved.end, moved.state, moved.sequence) == (
        wanted.start,
        wanted.end,
        "confirmed",
        1,
    )
    assert moved.uid == meeting.uid
    last = school.history(meeting.id)[-1]
    assert (last.old_start, last.new_start, last.actor) == (meeting.start, wanted.start, "parent")
    assert "I finish work at 4" in last.reason
    # The parent's calendar moves too: a REQUEST at the new time, SEQUENCE 1, CONFIRMED.
    update = event_of(school.latest_request(meeting.id))
    assert update.start == wanted.start and int(update["SEQUENCE"]) == 1
    assert str(update["STATUS"]) == "CONFIRMED"
    # The old slot is free again, the new one is not.
    free = school.free_starts(ADA)
    assert meeting.start in free and wanted.start not in free
    assert school.outbox_rows(meeting.id, "calendar")


def _declined(school: SeededSchool, meeting_id: int) -> tuple[Calendar, str]:
    """The one DECLINECOUNTER sent for the meeting: its calendar and its text."""
    sent = [e for e in school.emails(meeting_id) if e.method == "DECLINECOUNTER"]
    assert len(sent) == 1
    body = sent[0].message.get_body(("plain",))
    cal = calendar_of(sent[0].raw)
    assert body is not None and cal is not None
    return cal, str(body.get_content())


def test_a_taken_time_is_declined_with_free_alternatives(db: Database) -> None:
    school = SeededSchool.create(db)
    sams = school.propose(ADA, SAM, slot=3)
    pats = school.propose(ADA, PAT, slot=0)
    outcome = school.deliver(_counter(school, pats.id, school.slot(3)))
    assert outcome.reason == "counter declined: the teacher is not free then"
    kept = school.meeting(pats.id)
    assert (kept.start, kept.state, kept.sequence) == (pats.start, "proposed", 0)
    assert school.meeting(sams.id).start == sams.start
    cal, text = _declined(school, pats.id)
    assert str(cal["METHOD"]) == "DECLINECOUNTER"
    assert str(cal.events[0]["UID"]) == pats.uid
    offered = [school.slot(i).start.astimezone(TZ).strftime("%H:%M") for i in (2, 4, 5)]
    for hhmm in offered:
        assert hhmm in text
    assert school.slot(3).start.astimezone(TZ).strftime("%H:%M–") not in text.split("free:")[1]


def test_a_time_too_close_to_the_familys_other_meeting_is_declined(db: Database) -> None:
    school = SeededSchool.create(db)
    school.propose(ALAN, PAT, slot=4)
    meeting = school.propose(ADA, PAT, slot=0)
    outcome = school.deliver(_counter(school, meeting.id, school.slot(5)))  # right after 4
    assert outcome.reason == "counter declined: it is too close to your other meetings that evening"
    assert school.meeting(meeting.id).start == meeting.start


def test_a_time_off_the_grid_is_declined(db: Database) -> None:
    school = SeededSchool.create(db)
    meeting = school.propose(ADA, PAT, slot=0)
    odd = school.slot(2)
    shifted = Interval(odd.start + 7 * MINUTE, odd.end + 7 * MINUTE)
    outcome = school.deliver(_counter(school, meeting.id, shifted))
    assert outcome.reason.startswith("counter declined: meetings are 15 minutes long")


def test_a_counter_from_somebody_else_is_quarantined(db: Database) -> None:
    school = SeededSchool.create(db)
    meeting = school.propose(ADA, PAT, slot=0)
    raw = _counter(school, meeting.id, school.slot(4)).replace(
        b"From: Pat Johnson <pat@example.net>", b"From: Mallory <mallory@evil.example>"
    )
    outcome = school.deliver(raw)
    assert (outcome.outcome, outcome.reason) == ("quarantined", "sender-not-attendee")
    assert school.meeting(meeting.id).start == meeting.start
