"""What a sync saw done to our event, classified by the core (DESIGN §3 "Teacher-side
changes")."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from ptm_sync.core.booking.events import TeacherEdited, TeacherMoved, TeacherRemoved
from ptm_sync.core.booking.teacher_copy import TeachersText
from ptm_sync.core.booking.teacher_sync import SeenEvent, teacher_change, teachers_text
from tests.unit.booking_values import slot

MEETING = slot(2)
LATER = slot(5)
NY = ZoneInfo("America/New_York")


def seen(etag: str | None, at: object = MEETING) -> SeenEvent:
    span = at if at is not None else None
    return SeenEvent(etag, span.start if span else None, span.end if span else None)  # type: ignore[attr-defined]


def test_our_own_event_and_our_own_write_on_its_way_are_nothing() -> None:
    assert teacher_change(MEETING, "ours-1", seen("ours-1"), writing=False) is None
    assert teacher_change(MEETING, "ours-1", seen("teacher-2", LATER), writing=True) is None


def test_an_event_at_another_time_is_a_move_with_the_teachers_version() -> None:
    change = teacher_change(MEETING, "ours-1", seen("teacher-2", LATER), writing=False)
    assert change == TeacherMoved(slot=LATER.utc(), etag="teacher-2")


def test_an_event_gone_or_blocking_no_time_is_a_removal() -> None:
    assert teacher_change(MEETING, "ours-1", None, writing=False) == TeacherRemoved()
    cancelled = teacher_change(MEETING, "ours-1", seen("t-3", None), writing=False)
    assert cancelled == TeacherRemoved()


def test_an_edit_at_the_time_we_wrote_makes_the_teachers_version_the_one_we_know() -> None:
    edited = TeacherEdited(etag="teacher-2")
    assert teacher_change(MEETING, "ours-1", seen("teacher-2"), writing=False) == edited
    # The same instant written in another zone is the same time.
    same = SeenEvent("teacher-2", MEETING.start.astimezone(NY), MEETING.end.astimezone(NY))
    assert teacher_change(MEETING, "ours-1", same, writing=False) == edited


def test_the_time_we_wrote_decides_not_the_meetings_new_time() -> None:
    """A write of ours moving the meeting to LATER was refused (412): the event still at
    the time we wrote is the teacher's edit, not a move back; elsewhere it is a move."""
    written = MEETING
    assert teacher_change(written, "ours-1", seen("t-2"), writing=False) == TeacherEdited(
        etag="t-2"
    )
    elsewhere = teacher_change(written, "ours-1", seen("t-2", slot(7)), writing=False)
    assert elsewhere == TeacherMoved(slot=slot(7).utc(), etag="t-2")


def test_the_teachers_text_is_read_from_their_version_of_our_event() -> None:
    ics = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\n"
        "BEGIN:VEVENT\r\nUID:m-1\r\nDTSTAMP:20270101T000000Z\r\n"
        "DTSTART:20270412T193000Z\r\nDTEND:20270412T194500Z\r\n"
        "SUMMARY:Bring the report card\r\nDESCRIPTION:Room 12\\, upstairs\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    assert teachers_text(ics, "m-1") == TeachersText("Bring the report card", "Room 12, upstairs")
    assert teachers_text(ics, "other") is None
    # A change feed's object with no text (Graph, EWS, Google): ours is written.
    bare = ics.replace("SUMMARY:Bring the report card\r\n", "")
    assert teachers_text(bare, "m-1") is None
    assert teachers_text("not a calendar", "m-1") is None
