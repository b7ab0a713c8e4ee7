"""What a sync saw done to our event, classified by the core (DESIGN §3 "Teacher-side
changes")."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from ptm_sync.core.booking.events import TeacherMoved, TeacherRemoved
from ptm_sync.core.booking.teacher_sync import SeenEvent, teacher_change
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


def test_an_edit_at_the_same_time_is_nothing_the_parents_need_to_hear() -> None:
    assert teacher_change(MEETING, "ours-1", seen("teacher-2"), writing=False) is None
    # The same instant written in another zone is the same time.
    same = SeenEvent("teacher-2", MEETING.start.astimezone(NY), MEETING.end.astimezone(NY))
    assert teacher_change(MEETING, "ours-1", same, writing=False) is None
